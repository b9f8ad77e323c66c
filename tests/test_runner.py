"""The papermill runner behind `lab run` and the DAG, on small real notebooks."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import nbformat
import pytest

from lab_env.cli.jobs import render_summary
from lab_env.jobs.runner import (
    LESSON_TAG,
    Step,
    StepFailed,
    execute_notebook,
    run_pipeline,
)

pytestmark = pytest.mark.notebook
REPO = Path(__file__).resolve().parents[1]


def make_notebook(path: Path, *body: str) -> Path:
    """A notebook with a `parameters` cell (start_date, end_date, run_id) and ``body`` cells."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'start_date = "2025-01-01"\nend_date = "2025-01-01"\nrun_id = "manual"'
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), params]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in body]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def spark_in_a_kernel(home: Path) -> str:
    """A cell's first lines: the kernel's Spark on LAB_HOME ``home``, with the catalog's JDBC
    driver loaded, and ``tmp``, the JVM's temp folder."""
    return (
        "import os\n"
        f"os.environ['LAB_HOME'] = {str(home)!r}\n"
        "from lab_env.lake.spark import get_spark\n"
        "spark = get_spark()\n"
        "spark.sql('SHOW NAMESPACES').collect()  # the catalog's JDBC driver is loaded\n"
        "tmp = spark.sparkContext._jvm.java.lang.System.getProperty('java.io.tmpdir')\n"
    )


def test_parameters_reach_the_notebook_and_unknown_ones_are_dropped(tmp_path: Path) -> None:
    nb = make_notebook(tmp_path / "step.ipynb", "print(start_date, end_date, run_id)")
    out = execute_notebook(
        nb,
        tmp_path / "out" / "step.ipynb",
        {
            "start_date": "2025-02-01",
            "end_date": "2025-02-03",
            "run_id": "r1",
            "full_refresh": True,
        },
    )
    printed = "".join(o.get("text", "") for c in out.cells for o in c.get("outputs", []))
    assert "2025-02-01 2025-02-03 r1" in printed
    assert (tmp_path / "out" / "step.ipynb").is_file()
    assert "full_refresh" not in json.dumps(out.cells[2].source)


def test_a_failing_cell_is_named_with_the_executed_copy(tmp_path: Path) -> None:
    nb = make_notebook(
        tmp_path / "bad.ipynb", "x = 1", "raise ValueError('no prices for 2025-02-30')"
    )
    with pytest.raises(StepFailed) as info:
        execute_notebook(nb, tmp_path / "runs" / "bad.ipynb")
    message = str(info.value)
    assert "bad.ipynb failed at cell" in message
    assert "ValueError: no prices for 2025-02-30" in message
    assert str(tmp_path / "runs" / "bad.ipynb") in message
    assert "\n" not in message


def test_the_kernel_process_writes_its_own_output_to_the_log_not_the_terminal(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    nb = make_notebook(
        tmp_path / "noisy.ipynb",
        "import os, sys\n"
        "os.write(2, b'jvm-style noise on fd 2\\n')\n"
        "print('cell output')\n"
        "print('cell warning', file=sys.stderr)",
    )
    log = tmp_path / "runs" / "noisy.log"
    out = execute_notebook(nb, tmp_path / "runs" / "noisy.ipynb", kernel_log=log)
    terminal = capfd.readouterr()
    assert "jvm-style noise on fd 2" in log.read_text()
    assert "jvm-style noise" not in terminal.err + terminal.out
    cell_output = "".join(o.get("text", "") for c in out.cells for o in c.get("outputs", []))
    assert "cell output" in cell_output and "cell warning" in cell_output  # cells keep theirs


def test_spark_temp_folders_of_a_kernel_go_when_it_ends(tmp_path: Path) -> None:
    """A kernel (and its JVM) is killed after its notebooks, before Spark's exit hooks could
    clean up: Spark's local folder is the kernel's own scratch folder, deleted with it."""
    nb = make_notebook(
        tmp_path / "scratch.ipynb",
        "import os, pathlib\n"
        "scratch = pathlib.Path(os.environ['SPARK_LOCAL_DIRS'])\n"
        "(scratch / 'blockmgr-1').mkdir()\n"
        "print(scratch)",
    )
    out = execute_notebook(nb, tmp_path / "runs" / "scratch.ipynb")
    scratch = Path("".join(o.get("text", "") for o in out.cells[2].outputs).strip())
    assert scratch.name.startswith("lab-kernel-") and scratch.parent != tmp_path
    assert not scratch.exists()


@pytest.mark.spark
def test_the_jvm_of_a_kernel_unpacks_its_native_libraries_into_the_scratch_folder(
    tmp_path: Path,
) -> None:
    """sqlite-jdbc (and snappy, lz4) unpack a native library at every JVM start and delete it
    at exit, which a killed JVM never reaches: they go in the kernel's scratch folder."""
    nb = make_notebook(
        tmp_path / "jvm.ipynb",
        spark_in_a_kernel(tmp_path / "lakehouse")
        + "print(tmp, sorted(n for n in os.listdir(tmp) if n.endswith('.so')))",
    )
    out = execute_notebook(nb, tmp_path / "runs" / "jvm.ipynb")
    printed = "".join(o.get("text", "") for o in out.cells[2].outputs).strip()
    tmp, libraries = printed.split(" ", 1)
    assert Path(tmp).name.startswith("lab-kernel-") and "libsqlitejdbc.so" in libraries, printed
    assert not Path(tmp).exists()


@pytest.mark.spark
def test_exit_jvm_lets_the_kernels_jvm_end_the_normal_way(tmp_path: Path) -> None:
    """How the class archive's training ends (a JVM writes the archive only at a normal exit):
    the JVM exits with status 0 and its exit hooks run, so sqlite-jdbc deletes the native
    library it unpacked, which a JVM killed with its kernel leaves behind."""
    nb = make_notebook(
        tmp_path / "exit.ipynb",
        spark_in_a_kernel(tmp_path / "lakehouse")
        + "from pyspark import SparkContext\n"
        "from lab_env.lake.spark import exit_jvm\n"
        "jvm = SparkContext._gateway.proc\n"
        "def sqlite_library():\n"
        "    return any(n.endswith('libsqlitejdbc.so') for n in os.listdir(tmp))\n"
        "unpacked = sqlite_library()\n"
        "exit_jvm()\n"
        "print(jvm.returncode, unpacked, sqlite_library())",
    )
    out = execute_notebook(nb, tmp_path / "runs" / "exit.ipynb")
    printed = "".join(o.get("text", "") for o in out.cells[2].outputs).strip()
    assert printed == "0 True False", printed


def test_pipeline_stops_at_a_failure_and_keeps_every_executed_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_COINCAP_URL", "http://127.0.0.1:9/v3")  # no replay server needed
    from lab_env.config import get_settings

    get_settings.cache_clear()
    steps = [
        Step("first", make_notebook(tmp_path / "01.ipynb", "print('first ran')")),
        Step("second", make_notebook(tmp_path / "02.ipynb", "1 / 0")),
        Step("third", make_notebook(tmp_path / "03.ipynb", "print('third ran')")),
    ]
    summary = run_pipeline(dt.date(2025, 1, 1), dt.date(2025, 1, 2), steps=steps, run_id="t-1",
                           progress=print)
    get_settings.cache_clear()
    assert [s.name for s in summary.steps] == ["first", "second"]
    assert summary.steps[0].ok and not summary.steps[1].ok
    assert "ZeroDivisionError" in summary.steps[1].error
    folder = Path(summary.folder)
    assert folder.name == "t-1" and folder.parent.name == "2025-01-01_2025-01-02"
    assert {p.name for p in folder.iterdir()} == {
        "01.ipynb", "02.ipynb", "kernel.log", "summary.json"
    }
    out = capsys.readouterr().out
    assert "not run (depend on second): third" in out
    render_summary(summary)
    assert "Run failed." in capsys.readouterr().out


def test_a_run_loads_what_the_next_step_waits_for_while_a_step_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quality step's slow import (Great Expectations) happens in the run's kernel while
    the step before it works; a step with nothing to preload after it starts nothing."""
    monkeypatch.setenv("LAB_COINCAP_URL", "http://127.0.0.1:9/v3")  # no replay server needed
    from lab_env.config import load_settings
    from lab_env.jobs.runner import step_named

    settings = load_settings(home=tmp_path / "lakehouse")
    waits = make_notebook(
        tmp_path / "waits.ipynb",
        "import sys, threading, time\n"
        "deadline = time.monotonic() + 120\n"
        "while 'great_expectations' not in sys.modules and time.monotonic() < deadline:\n"
        "    time.sleep(0.2)\n"
        "print('gx imported:', 'great_expectations' in sys.modules)\n"
        "print('by:', [t.name for t in threading.enumerate() if t.name.startswith('lab-')])",
    )
    looks = make_notebook(
        tmp_path / "looks.ipynb",
        "import sys\nprint('gx imported:', 'great_expectations' in sys.modules)",
    )
    uses = make_notebook(
        tmp_path / "uses.ipynb",
        "from lab_env.quality.suites import load_gx\nprint('gx', load_gx().__name__)",
    )

    def printed(output: str) -> str:
        nb = nbformat.read(output, as_version=4)
        return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))

    day = dt.date(2025, 1, 1)
    quality = step_named("quality")
    assert quality.preload == "lab_env.quality.suites:load_gx"
    steps = [Step("first", waits), Step("second", uses, preload=quality.preload)]
    warm = run_pipeline(day, day, steps=steps, run_id="warm", settings=settings)
    assert warm.ok, [s.error for s in warm.steps]
    assert "gx imported: True" in printed(warm.steps[0].output)
    assert "lab-preload-load_gx" in printed(warm.steps[0].output)  # on its own thread
    assert "gx great_expectations" in printed(warm.steps[1].output)
    cold = run_pipeline(day, day, steps=[Step("first", looks), Step("second", uses)],
                        run_id="cold", settings=settings)
    assert cold.ok and "gx imported: False" in printed(cold.steps[0].output)


def test_a_range_that_ends_before_it_starts_is_refused() -> None:
    from lab_env.errors import LabError

    with pytest.raises(LabError, match="swap --start and --end"):
        run_pipeline(dt.date(2025, 2, 1), dt.date(2025, 1, 1), steps=[])


def test_only_a_gold_step_followed_by_the_gate_writes_to_the_audit_branch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.setenv("LAB_COINCAP_URL", "http://127.0.0.1:9/v3")  # no replay server needed
    monkeypatch.delenv("LAB_WAP_BRANCH", raising=False)
    from lab_env.config import get_settings

    get_settings.cache_clear()
    probe = "import os\nprint('WAP', os.environ.get('LAB_WAP_BRANCH'))"
    gold = Step("gold", make_notebook(tmp_path / "gold.ipynb", probe))
    gate = Step("quality", make_notebook(tmp_path / "gate.ipynb", probe))
    day = dt.date(2025, 1, 1)
    gated = run_pipeline(day, day, steps=[gold, gate], run_id="r:1+x")
    ungated = run_pipeline(day, day, steps=[gold], run_id="r2")
    get_settings.cache_clear()

    def printed(output: str) -> str:
        nb = nbformat.read(output, as_version=4)
        return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))

    assert gated.ok and ungated.ok
    assert "WAP audit_r_1_x" in printed(gated.steps[0].output)  # gold, with the gate after it
    assert "WAP None" in printed(gated.steps[1].output)  # the gate itself reads, it never writes
    assert "WAP None" in printed(ungated.steps[0].output)  # no gate: gold writes main
    assert "LAB_WAP_BRANCH" not in os.environ


def _bound_and_read(source: str) -> tuple[set[str], set[str]]:
    """The names a cell binds at the notebook's top level, and the names it reads that nothing
    in the cell binds (a function's own arguments and locals are not read from the notebook)."""
    import ast

    # IPython's `%magic` and `!shell` lines are not Python
    tree = ast.parse("\n".join(line for line in source.splitlines()
                               if not line.lstrip().startswith(("%", "!"))))
    bound: set[str] = set()

    def top_level(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                bound.add(child.name)
                continue  # its body's names are its own
            if isinstance(child, ast.Import | ast.ImportFrom):
                bound.update((a.asname or a.name).split(".")[0] for a in child.names)
            elif isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                bound.add(child.id)
            if not isinstance(child, ast.Lambda | ast.comprehension):
                top_level(child)

    top_level(tree)
    names = [n for n in ast.walk(tree) if isinstance(n, ast.Name)]
    local = {n.id for n in names if not isinstance(n.ctx, ast.Load)}
    local |= {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
    read = {n.id for n in names if isinstance(n.ctx, ast.Load)} - local - bound
    return bound, read


@pytest.mark.parametrize(
    "notebook", sorted((REPO / "solutions").glob("*.ipynb")), ids=lambda p: p.stem
)
def test_a_job_never_reads_a_name_only_a_lesson_cell_defines(notebook: Path) -> None:
    """Jobs (`lab run`, `lab restore`, the first `lab check` of a milestone) leave the cells
    tagged `lesson` out: a cell they keep must not need a helper or a value that only a lesson
    cell defines, or the job fails where the lesson passes (08 did: `lab restore 9` stopped at
    `NameError: name 'read_marts' is not defined`)."""
    job_defined: set[str] = set()
    lesson_only: dict[str, int] = {}
    problems = []
    for index, cell in enumerate(nbformat.read(str(notebook), as_version=4).cells):
        if cell.cell_type != "code":
            continue
        bound, read = _bound_and_read(cell.source)
        if LESSON_TAG in cell.metadata.get("tags", []):
            lesson_only.update({name: index for name in bound - job_defined})
            continue
        problems += [f"cell {index} reads {name!r}, defined only by lesson cell {lesson_only[name]}"
                     for name in sorted(read - job_defined) if name in lesson_only]
        job_defined |= bound
    assert not problems, f"{notebook.name}: " + "; ".join(problems)
