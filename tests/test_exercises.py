"""``lab build-exercises``: stubs, markdown answers, exact output, --check drift, bad markers,
--record-outputs."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_markdown_cell, new_output
from notebook_builders import code, write_notebook

import lab_env.course.checks
from lab_env.cli import main
from lab_env.course import exercises
from lab_env.errors import LabError


def learner(solution: Path) -> nbformat.NotebookNode:
    text, _ = exercises.learner_notebook(solution)
    return nbformat.reads(text, as_version=4)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A tiny repository: one solution notebook with a code exercise, a markdown answer, a check."""
    write_notebook(
        tmp_path / "solutions" / "07_demo.ipynb",
        new_markdown_cell("# Demo\nGoal: double numbers."),
        code('n = 3', metadata={"tags": ["parameters"]}),
        code('''
            def double(x):
                """Twice x."""
                ### BEGIN SOLUTION
                # Write: return x times two.
                return x * 2
                ### END SOLUTION

            print(double(n))
        '''),
        new_markdown_cell("Why is doubling linear?\n### BEGIN SOLUTION\nBecause 2(a+b) = 2a+2b.\n"
                          "### END SOLUTION\nNext, a check."),
        code('''
            from lab_env.course.checks import exercise, ok, fail

            @exercise("07.4", "double doubles")
            def check_double():
                return ok("double(2) is 4") if double(2) == 4 else fail("multiply by two")

            check_double()
        '''),
    )
    return tmp_path


def test_code_region_becomes_an_indented_stub_named_after_the_next_check(repo: Path) -> None:
    cell = learner(repo / "solutions" / "07_demo.ipynb").cells[2]
    assert cell.source == textwrap.dedent('''
        def double(x):
            """Twice x."""
            # Write: return x times two.
            raise NotImplementedError("Exercise 07.4: replace this stub with your solution")

        print(double(n))
    ''').strip("\n")
    namespace: dict[str, object] = {"n": 1}
    with pytest.raises(NotImplementedError, match=r"^Exercise 07\.4: replace this stub"):
        exec(compile(cell.source, "cell", "exec"), namespace)


def test_markdown_region_becomes_an_answer_prompt(repo: Path) -> None:
    cell = learner(repo / "solutions" / "07_demo.ipynb").cells[3]
    assert cell.source == "Why is doubling linear?\n*Your answer here.*\nNext, a check."


def test_everything_outside_the_regions_is_kept_and_outputs_are_stripped(repo: Path) -> None:
    solution = repo / "solutions" / "07_demo.ipynb"
    nb = nbformat.read(str(solution), as_version=4)
    nb.cells[1].outputs = [new_output("stream", name="stdout", text="left over\n")]
    nb.cells[1].execution_count = 5
    nb.cells[1].metadata["custom"] = {"keep": True}
    nbformat.write(nb, str(solution))

    out = learner(solution)
    assert [c.id for c in out.cells] == [c.id for c in nb.cells]
    assert out.metadata == nb.metadata
    assert out.cells[1].metadata == {"tags": ["parameters"], "custom": {"keep": True}}
    assert out.cells[1].outputs == [] and out.cells[1].execution_count is None
    assert out.cells[0].source == nb.cells[0].source
    assert out.cells[4].source == nb.cells[4].source


def test_generic_stub_and_position_numbering_without_a_comment_or_check(tmp_path: Path) -> None:
    solution = write_notebook(
        tmp_path / "solutions" / "03_plain.ipynb",
        new_markdown_cell("# Plain"),
        code("a = 1\n### BEGIN SOLUTION\nb = a + 1\n### END SOLUTION"),
        code("for i in range(2):\n    ### BEGIN SOLUTION\n    a += i\n    ### END SOLUTION"),
        code("### BEGIN SOLUTION\n# Write: c, the sum\n# of a and b.\nc = a + b\n### END SOLUTION"),
    )
    out = learner(solution)
    assert out.cells[1].source == (
        "a = 1\n# Write your solution here.\n"
        'raise NotImplementedError("Exercise 03.1: replace this stub with your solution")'
    )
    assert out.cells[2].source.splitlines() == [
        "for i in range(2):",
        "    # Write your solution here.",
        '    raise NotImplementedError("Exercise 03.2: replace this stub with your solution")',
    ]
    ast.parse(out.cells[2].source)
    assert out.cells[3].source.splitlines() == [
        "# Write: c, the sum",
        "# of a and b.",
        'raise NotImplementedError("Exercise 03.3: replace this stub with your solution")',
    ]


def test_stub_id_comes_from_a_checks_module_decorator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module_dir = tmp_path / "checkmods"
    module_dir.mkdir()
    (module_dir / "demo_layer_ex.py").write_text(textwrap.dedent('''
        from lab_env.course.checks import exercise, ok

        @exercise("05.2", "Rows land")
        def rows_land():
            return ok("fine")
    '''))
    checks_package = lab_env.course.checks
    monkeypatch.setattr(checks_package, "__path__", [*checks_package.__path__, str(module_dir)])
    exercises._module_exercises.cache_clear()
    solution = write_notebook(
        tmp_path / "solutions" / "05_mod.ipynb",
        new_markdown_cell("# Mod"),
        code("### BEGIN SOLUTION\nrows = 3\n### END SOLUTION"),
        code("from lab_env import checks\nchecks.demo_layer_ex.rows_land()"),
    )
    try:
        assert exercises.checked_exercises("checks.demo_layer_ex.rows_land()") == ["05.2"]
        assert exercises.check_titles("checks.demo_layer_ex.rows_land()") == {"05.2": "Rows land"}
        assert "Exercise 05.2:" in learner(solution).cells[1].source
    finally:
        exercises._module_exercises.cache_clear()


def test_notebook_without_markers_is_copied_as_it_is(tmp_path: Path) -> None:
    solution = write_notebook(
        tmp_path / "solutions" / "00_welcome.ipynb",
        new_markdown_cell("# Welcome"),
        code("print('hello')"),
    )
    text, stubs = exercises.learner_notebook(solution)
    assert stubs == 0
    assert text == solution.read_text(encoding="utf-8")


def test_build_is_deterministic_and_check_is_clean_after_it(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build-exercises", "--root", str(repo)]) == 0
    built = (repo / "notebooks" / "07_demo.ipynb").read_bytes()
    assert built.endswith(b"}\n")
    assert main(["build-exercises", "--root", str(repo)]) == 0
    assert (repo / "notebooks" / "07_demo.ipynb").read_bytes() == built
    assert "already up to date" in capsys.readouterr().out
    assert main(["build-exercises", "--check", "--root", str(repo)]) == 0


def test_generated_notebooks_are_already_what_nbstripout_commits(repo: Path) -> None:
    nbstripout = str(Path(sys.executable).parent / "nbstripout")
    solution = repo / "solutions" / "07_demo.ipynb"
    subprocess.run([nbstripout, str(solution)], check=True)
    assert exercises.build(repo)
    verify = subprocess.run(
        [nbstripout, "--verify", str(repo / "notebooks" / "07_demo.ipynb")],
        capture_output=True, text=True, check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_check_lists_out_of_date_missing_and_orphan_notebooks(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build-exercises", "--root", str(repo)]) == 0
    solution = repo / "solutions" / "07_demo.ipynb"
    nb = nbformat.read(str(solution), as_version=4)
    nb.cells[0].source += "\nNow with more prose."
    nbformat.write(nb, str(solution))
    write_notebook(repo / "solutions" / "08_next.ipynb", new_markdown_cell("# Next"))
    write_notebook(repo / "notebooks" / "99_gone.ipynb", new_markdown_cell("# Gone"))
    capsys.readouterr()

    assert main(["build-exercises", "--check", "--root", str(repo)]) == 1
    out = capsys.readouterr().out
    assert "notebooks/07_demo.ipynb: out of date" in out
    assert "notebooks/08_next.ipynb: missing" in out
    assert "notebooks/99_gone.ipynb: orphan" in out
    assert "Fix: run `lab build-exercises`" in out

    assert main(["build-exercises", "--root", str(repo)]) == 0
    assert not (repo / "notebooks" / "99_gone.ipynb").exists()
    assert main(["build-exercises", "--check", "--root", str(repo)]) == 0


@pytest.mark.parametrize(
    ("source", "detail"),
    [
        ("### BEGIN SOLUTION\nx = 1", "line 1 is never closed"),
        ("x = 1\n### END SOLUTION", "line 2 has no ### BEGIN SOLUTION"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "a second ### BEGIN"),
    ],
)
def test_unbalanced_markers_name_the_notebook_and_cell(
    tmp_path: Path, source: str, detail: str
) -> None:
    solution = write_notebook(
        tmp_path / "solutions" / "04_bad.ipynb", new_markdown_cell("# Bad"), code(source)
    )
    cell_id = nbformat.read(str(solution), as_version=4).cells[1].id
    with pytest.raises(LabError, match=rf"04_bad\.ipynb cell 1 \(id {cell_id}\): .*{detail}"):
        exercises.learner_notebook(solution)


def test_unbalanced_markdown_markers_are_an_error_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_notebook(
        tmp_path / "solutions" / "04_bad.ipynb",
        new_markdown_cell("# Bad"),
        new_markdown_cell("Answer:\n### BEGIN SOLUTION\nforty-two"),
    )
    assert main(["build-exercises", "--root", str(tmp_path)]) == 2
    assert "04_bad.ipynb cell 1" in capsys.readouterr().err


def test_missing_solutions_folder_is_an_actionable_error(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="No solutions/ folder"):
        exercises.build(tmp_path)


def test_record_outputs_copies_the_reference_cells_outputs_from_an_executed_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    solution = write_notebook(
        tmp_path / "solutions" / "06_facts.ipynb",
        new_markdown_cell("# Facts"),
        code("print('rows: 3')\n3", metadata={"tags": [exercises.REFERENCE_TAG]}),
        code("print('a timing')"),
    )
    executed = tmp_path / "executed"
    nb = nbformat.read(str(solution), as_version=4)
    nb.cells[1].outputs = [
        new_output("stream", name="stdout", text="rows: "),
        new_output("stream", name="stdout", text="3\n"),
        new_output("execute_result", data={"text/plain": "3"}, execution_count=7),
    ]
    nb.cells[2].outputs = [new_output("stream", name="stdout", text="0.42 s\n")]
    write_notebook(executed / "06_facts.ipynb", *nb.cells)
    record = ["build-exercises", "--record-outputs", str(executed), "--root", str(tmp_path)]

    assert main(record) == 0
    assert "recorded the reference output of 06_facts.ipynb cell 1" in capsys.readouterr().out
    cells = nbformat.read(str(solution), as_version=4).cells
    assert [o.get("text") for o in cells[1].outputs] == ["rows: 3\n", None]  # streams joined
    assert cells[1].outputs[1].execution_count is None
    assert cells[1].metadata["keep_output"] is True
    assert cells[2].outputs == []  # not a reference cell

    assert main(record) == 0
    assert "recorded" not in capsys.readouterr().out  # already recorded: nothing changes
