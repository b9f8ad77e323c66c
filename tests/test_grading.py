"""``lab check``, ``lab progress`` and ``lab restore`` on tiny notebooks run by a real kernel.

The notebooks define their checks inline with ``lab_env.course.checks.exercise``, so no Spark
starts.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_markdown_cell
from notebook_builders import code, write_notebook

from lab_env.cli import main
from lab_env.config import Settings, get_settings, load_settings
from lab_env.course import grading
from lab_env.course.checks import load_results
from lab_env.course.grading import kernel_env
from lab_env.lake.lock import LOCK_FILE

pytestmark = pytest.mark.notebook

CHECK_IMPORT = "from lab_env.course.checks import exercise, ok, fail"


def inline_check(exercise_id: str, title: str, condition: str, hint: str, call: str = "") -> str:
    return textwrap.dedent(f'''
        {CHECK_IMPORT}

        @exercise("{exercise_id}", "{title}")
        def check(*args):
            return ok("right") if {condition} else fail("{hint}")

        check({call})
    ''')


def exercise_notebook(path: Path, heading: str, cell: str, check: str) -> Path:
    """A notebook at ``path`` of one exercise: ``heading``, the learner's ``cell``, ``check``."""
    return write_notebook(path, new_markdown_cell(heading), code(cell), code(check))


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """A learner notebook with one exercise in each state ``lab check`` knows."""
    return write_notebook(
        tmp_path / "notebooks" / "99_mixed.ipynb",
        new_markdown_cell("# Mixed"),
        code("target = 2", metadata={"tags": ["parameters"]}),
        code("x = 2"),
        code(inline_check("99.1", "x holds the target", "x == target", "set x to the target")),
        code("y = 3"),
        code(inline_check("99.2", "y doubles x", "y == 2 * x", "y should be x * 2")),
        code('# Write: z = x + y\nraise NotImplementedError("Exercise 99.3: z = x + y")'),
        code(inline_check("99.3", "z adds up", "z == x + y", "z should be x + y")),
        code('def triple(v):\n    raise NotImplementedError("Exercise 99.4: return v * 3")'),
        code(inline_check("99.4", "triple triples", "triple(1) == 3", "multiply by three")),
        code(inline_check("99.5", "w is set", "True", "set w", call="w")),
        code('def quad(v):\n    raise NotImplementedError("Exercise 99.6: replace this stub")'),
        code(inline_check("99.6", "quad works", "quad(1) == 4", "x4", call="undefined_q")),
    )


def test_check_reports_passed_failed_and_not_attempted(
    mixed: Path, fresh_settings: Settings, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    assert main(["check", str(mixed)]) == 1
    out = capsys.readouterr().out
    assert "1/6 exercises passed." in out
    for text in ("passed", "failed", "not attempted", "y should be x * 2"):
        assert text in out

    executed = fresh_settings.runs_dir / "checks" / "99_mixed.ipynb"
    assert f"Executed copy: {executed}" in out
    rows = {r.exercise: r for r in grading.grade(nbformat.read(str(executed), as_version=4))}
    assert list(rows) == ["99.1", "99.2", "99.3", "99.4", "99.5", "99.6"]
    assert rows["99.1"].status == grading.PASSED
    assert (rows["99.2"].status, rows["99.2"].detail) == (grading.FAILED, "y should be x * 2")
    assert rows["99.2"].title == "y doubles x"
    assert rows["99.3"].status == grading.NOT_ATTEMPTED  # the stub cell raised
    assert rows["99.4"].status == grading.NOT_ATTEMPTED  # the check met the stub
    assert rows["99.5"].status == grading.FAILED
    assert "NameError" in rows["99.5"].detail
    assert rows["99.5"].title == "w is set"  # read from the check cell's source
    assert rows["99.6"].status == grading.NOT_ATTEMPTED  # its stub is still in the notebook

    # the kernel recorded each verdict under the same LAB_HOME, which `lab progress` reads
    assert main(["progress", "--root", str(mixed.parents[1])]) == 0
    assert "99_mixed.ipynb" in capsys.readouterr().out
    assert grading.progress(mixed.parent) == [
        ("99_mixed.ipynb", 1, 6, ["99.2", "99.3", "99.4", "99.5", "99.6"])
    ]


def test_check_exits_zero_when_every_exercise_passes(
    tmp_path: Path, fresh_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = exercise_notebook(tmp_path / "98_done.ipynb", "# Done", "x = 2",
                                 inline_check("98.1", "x is two", "x == 2", "set x to 2"))
    assert main(["check", str(notebook)]) == 0
    assert "1/1 exercises passed." in capsys.readouterr().out


def test_check_cells_after_a_dead_kernel_count_as_not_attempted(
    tmp_path: Path, fresh_settings: Settings
) -> None:
    notebook = exercise_notebook(tmp_path / "97_dies.ipynb", "# Dies", "import os\nos._exit(1)",
                                 inline_check("97.1", "never checked", "True", "unreachable"))
    run = grading.check_notebook(notebook)
    assert "kernel died" in run.problem
    assert [(r.exercise, r.status) for r in run.results] == [("97.1", grading.NOT_ATTEMPTED)]


def test_restore_runs_earlier_solutions_in_order_except_no_restore(
    tmp_path: Path, fresh_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    solutions = tmp_path / "solutions"
    writes = textwrap.dedent('''
        from lab_env.config import get_settings
        home = get_settings().lab_home
        home.mkdir(parents=True, exist_ok=True)
        with (home / "restored.txt").open("a") as out:
            out.write("{name}\\n")

        from lab_env.course.checks import exercise, ok

        @exercise("{name}.1", "a solution's own check")
        def check():
            return ok("solved")

        check()
    ''')
    write_notebook(solutions / "00_welcome.ipynb",
                   new_markdown_cell("# Welcome", metadata={"tags": ["no-restore"]}),
                   code(writes.format(name="00")))
    for name in ("01_first", "02_second", "03_third"):
        write_notebook(solutions / f"{name}.ipynb", new_markdown_cell(f"# {name}"),
                       code(writes.format(name=name[:2])))

    assert grading.restore_plan(3, solutions) == [
        solutions / "01_first.ipynb", solutions / "02_second.ipynb"
    ]
    assert main(["restore", "3", "--root", str(tmp_path)]) == 0
    assert (fresh_settings.lab_home / "restored.txt").read_text() == "01\n02\n"
    assert load_results() == {}, "restoring must not mark the learner's exercises as passed"
    out = capsys.readouterr().out
    assert "[1/2] 01_first.ipynb" in out and "[2/2] 02_second.ipynb" in out


def test_a_later_start_is_built_on_the_kept_start_before_it(
    tmp_path: Path, fresh_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A learner going in order: the start of 06 is the kept start of 05 plus the 05 solution,
    not every solution again. Starts built with other parameters (before 04, bronze and silver
    hold two days, not the whole sample) are never a base for a later one."""
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    writes = textwrap.dedent('''
        from lab_env.config import get_settings
        raw = get_settings().lab_home / "raw"  # kept in a start state, with the warehouse
        raw.mkdir(parents=True, exist_ok=True)
        with (raw / "restored.txt").open("a") as out:
            out.write("{name}\\n")
    ''')
    for name in ("01_a", "02_b", "03_c", "04_d", "05_e", "06_f"):
        write_notebook(solutions / f"{name}.ipynb", new_markdown_cell(f"# {name}"),
                       code(writes.format(name=name[:2])))
    restored = fresh_settings.lab_home / "raw" / "restored.txt"

    def restore(milestone: int) -> tuple[list[str], str]:
        capsys.readouterr()
        assert main(["restore", str(milestone), "--root", str(tmp_path)]) == 0
        return restored.read_text().split(), " ".join(capsys.readouterr().out.split())

    assert restore(5)[0] == ["01", "02", "03", "04"]
    ran, out = restore(6)  # on the kept start of 05: only the 05 solution runs
    assert ran == ["01", "02", "03", "04", "05"]
    assert "[1/1] 05_e.ipynb" in out and "on the kept start of milestone 05" in out
    ran, out = restore(3)  # 05 and 06 are later: built from nothing
    assert ran == ["01", "02"] and "[2/2] 02_b.ipynb" in out
    ran, out = restore(4)  # 03 was built for two days, 04 needs the whole sample
    assert ran == ["01", "02", "03"] and "[3/3] 03_c.ipynb" in out
    assert "kept start" not in out


def test_restore_fresh_clears_local_state_but_keeps_progress(
    tmp_path: Path, fresh_settings: Settings
) -> None:
    home = fresh_settings.lab_home
    for folder in ("raw/bronze", "warehouse/silver", "progress"):
        (home / folder).mkdir(parents=True)
    fresh_settings.catalog_db.write_text("")
    (tmp_path / "solutions").mkdir()
    assert main(["restore", "1", "--fresh", "--root", str(tmp_path)]) == 0
    # the one-writer lock (lab_env/lake/lock.py) stays: it is held while restore runs; and the start
    # of milestone 01 (nothing, here) is kept for the next restore or check
    assert sorted(p.name for p in home.iterdir() if p.name != LOCK_FILE) == ["progress", "states"]
    assert sorted(p.name for p in (home / "states" / "01").iterdir()) == ["state.json"]
    assert not (home / "raw").exists() and not fresh_settings.catalog_db.exists()


def test_restore_on_the_compose_stack_runs_earlier_solutions_on_what_it_holds(
    tmp_path: Path, fresh_settings: Settings, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing is cleared there and no start state is kept; --fresh, which would clear, is
    refused with what to do by hand."""
    monkeypatch.setenv("LAB_PROFILE", "compose")
    get_settings.cache_clear()
    home = fresh_settings.lab_home
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    assert main(["restore", "2", "--root", str(tmp_path)]) == 0
    assert "Nothing to run: no solution notebook before milestone 2." in capsys.readouterr().out

    (home / "raw").mkdir(parents=True)
    write_notebook(solutions / "01_first.ipynb", new_markdown_cell("# First"), code(
        "from lab_env.config import get_settings\n"
        "(get_settings().lab_home / 'raw' / 'restored.txt').write_text('01')"
    ))
    assert main(["restore", "2", "--root", str(tmp_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "[1/1] 01_first.ipynb" in out and "Ready for milestone 02. Executed:" in out
    assert (home / "raw" / "restored.txt").read_text() == "01"
    assert not (home / "states").exists()

    assert main(["restore", "2", "--fresh", "--root", str(tmp_path)]) == 2
    assert "kept on the local profile only" in capsys.readouterr().err
    assert (home / "raw" / "restored.txt").is_file()


def test_kernel_env_points_kernels_at_the_given_lab_home(
    tmp_path: Path, fresh_settings: Settings
) -> None:
    from lab_env.jobs.runner import execute_notebook

    notebook = write_notebook(
        tmp_path / "96_where.ipynb",
        new_markdown_cell("# Where"),
        code("import os\nfrom lab_env.config import get_settings\n"
             "print('home', get_settings().lab_home)\nprint('url', os.environ['LAB_COINCAP_URL'])"),
    )
    other = load_settings(home=tmp_path / "other")
    environ = dict(os.environ)
    with kernel_env(other) as env:
        executed = execute_notebook(notebook, tmp_path / "out.ipynb", env=env)
        assert dict(os.environ) == environ  # handed to the kernel, not set in this process
    printed = executed.cells[1].outputs[0].text
    assert f"home {other.lab_home}\n" in printed
    assert "url http://127.0.0.1:" in printed
    assert get_settings().lab_home == fresh_settings.lab_home


def test_a_check_that_fails_again_names_the_earlier_attempt_until_a_reset(
    fresh_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """In JupyterLab nothing resets the lakehouse between attempts: a check that fails after an
    earlier failed attempt says what may be left over, and the command that starts clean."""
    from lab_env.course import states
    from lab_env.course.checks import exercise, fail

    @exercise("03.1", "Snapshot values are typed exactly")
    def typed() -> object:
        return fail("snapshot_at has values in the year -8321: use F.timestamp_millis.")

    @exercise("01.1", "Namespaces exist")
    def namespaces() -> object:
        return fail("create the namespaces with IF NOT EXISTS.")

    first = typed()
    assert not first.passed and "earlier attempt" not in first.message
    again = typed()  # the learner changed the cell and ran it again: rows of the first remain
    assert not again.passed
    assert again.message.startswith("snapshot_at has values in the year -8321")
    assert "an earlier attempt at 03.1 failed too" in again.message
    assert "`lab restore 3`" in again.message and "Restart Kernel" in again.message
    assert "`lab restore 3`" in capsys.readouterr().out  # the printed [check] line says it too

    states.mark_start(fresh_settings, 3)  # what `lab restore 3` and `lab check` record
    after_reset = typed()
    assert "earlier attempt" not in after_reset.message, "the reset removed what it wrote"
    assert states.last_start(fresh_settings) is not None

    typed()
    with pytest.MonkeyPatch.context() as mp:  # a production run: its checks are no attempts
        mp.setenv("LAB_RECORD_PROGRESS", "false")
        get_settings.cache_clear()
        assert "earlier attempt" not in typed().message
    get_settings.cache_clear()
    assert "earlier attempt" in typed().message

    namespaces()
    # 01 writes nothing an attempt can leave behind (namespaces only): no note
    assert "earlier attempt" not in namespaces().message


def test_a_kept_state_holds_the_catalog_commits_still_in_its_wal_and_loads_clean(
    fresh_settings: Settings,
) -> None:
    """The SQLite catalog runs in WAL mode: while a process holds it open, new commits sit in
    catalog.db-wal. A kept state must hold them, and a WAL left from later work must not be
    replayed into the catalog put back (it resurrected tables whose files were gone)."""
    import pyarrow as pa

    from lab_env.course import states
    from lab_env.lake.catalog import ensure_namespaces, get_catalog

    catalog = get_catalog(fresh_settings)  # stays open, as in `lab check`'s process
    ensure_namespaces(catalog)
    schema = pa.schema([("asset_id", pa.string())])
    catalog.create_table("silver.kept", schema=schema)
    home = fresh_settings.lab_home
    assert (home / "catalog.db-wal").stat().st_size > 0, "the commit is expected in the WAL"

    states.save(fresh_settings, 3, "test")
    kept = sqlite3_tables(states.state_dir(fresh_settings, 3) / "catalog.db")
    assert ("silver", "kept") in kept

    catalog.create_table("silver.later", schema=schema)  # what an attempt at 03 writes
    for _ in range(2):  # every load gives the same catalog, whatever was left beside it
        assert states.load(fresh_settings, 3)
        assert sqlite3_tables(home / "catalog.db") == kept
        fresh = get_catalog(load_settings(home=home))
        assert {t[1] for t in fresh.list_tables("silver")} == {"kept"}
        fresh.create_table("silver.later", schema=schema)  # the next attempt writes again


def sqlite3_tables(db: Path) -> set[tuple[str, str]]:
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT table_namespace, table_name FROM iceberg_tables").fetchall()
    return {(ns, name) for ns, name in rows}
