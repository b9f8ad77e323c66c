"""Notebook CI: every solution runs end to end, every learner notebook runs up to its first stub.

Solutions run in milestone order in one LAB_HOME, because each builds on the state the earlier
ones left (bronze before silver). Before each solution runs, that LAB_HOME is copied: the copy
is the state at the start of the milestone, where its learner notebook runs. Iceberg metadata
holds absolute paths, so a copy's existing tables still point at the original's files; new
files and commits of the copy never reach the original's catalog.

The notebooks run in their own kernels (papermill); this process never starts Spark.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from lab_env import exercises
from lab_env.checks import CHECK_MARKER
from lab_env.cli import main
from lab_env.config import load_settings
from lab_env.runner import StepFailed, execute_notebook, kernel_env

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((REPO / "solutions").glob("*.ipynb"))
LEARNER = sorted((REPO / "notebooks").glob("*.ipynb"))
_STUB_ERROR = re.compile(r"^Exercise [\w.-]+:")


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


class SolutionRuns:
    """Runs the solution notebooks once each, in order, in one LAB_HOME, on demand."""

    def __init__(self, root: Path) -> None:
        self.home = root / "lakehouse"
        self.snapshots = root / "snapshots"
        self.outputs = root / "executed"
        self.results: dict[str, nbformat.NotebookNode | StepFailed] = {}

    def _execute(self, notebook: Path) -> nbformat.NotebookNode | StepFailed:
        settings = load_settings(home=self.home)
        try:
            with kernel_env(settings):
                return execute_notebook(notebook, self.outputs / notebook.name)
        except StepFailed as exc:
            return exc

    def _run_before(self, notebook: Path) -> None:
        for earlier in SOLUTIONS[: SOLUTIONS.index(notebook)]:
            self.run(earlier)

    def run(self, notebook: Path) -> nbformat.NotebookNode | StepFailed:
        """The executed solution, or how it failed; runs the earlier solutions first."""
        if notebook.name not in self.results:
            self._run_before(notebook)
            self.snapshot_before(notebook)
            self.results[notebook.name] = self._execute(notebook)
        return self.results[notebook.name]

    def snapshot_before(self, notebook: Path) -> Path:
        """A copy of LAB_HOME as it was just before this solution ran."""
        snapshot = self.snapshots / notebook.stem
        if not snapshot.exists():
            self._run_before(notebook)
            self.home.mkdir(parents=True, exist_ok=True)
            shutil.copytree(self.home, snapshot)
        return snapshot


@pytest.fixture(scope="module")
def solution_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SolutionRuns]:
    yield SolutionRuns(tmp_path_factory.mktemp("notebook-ci"))


def _stdout(nb: nbformat.NotebookNode) -> str:
    return "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.output_type == "stream"
    )


def _code(notebook: Path) -> list[str]:
    cells = nbformat.read(str(notebook), as_version=4).cells
    return [c.source for c in cells if c.cell_type == "code"]


def _has_exercises(notebook: Path) -> bool:
    _, stubs = exercises.learner_notebook(notebook)
    nb = nbformat.read(str(notebook), as_version=4)
    return stubs > 0 or any(
        exercises.checked_exercises(c.source) for c in nb.cells if c.cell_type == "code"
    )


def test_there_are_solution_notebooks() -> None:
    assert SOLUTIONS, f"no notebooks in {REPO / 'solutions'}: the course needs at least one"


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", SOLUTIONS, ids=_ids(SOLUTIONS))
def test_solution_runs_and_passes_its_checks(
    notebook: Path, solution_runs: SolutionRuns
) -> None:
    result = solution_runs.run(notebook)
    if isinstance(result, StepFailed):
        pytest.fail(str(result), pytrace=False)
    lines = [line for line in _stdout(result).splitlines() if line.startswith(CHECK_MARKER)]
    failed = [line for line in lines if " FAIL " in line]
    assert not failed, "a solution must pass its own checks:\n" + "\n".join(failed)
    if _has_exercises(notebook):
        assert any(" PASS " in line for line in lines), f"{notebook.name} printed no passing check"


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", LEARNER, ids=_ids(LEARNER))
def test_learner_notebook_runs_up_to_its_first_stub(
    notebook: Path, solution_runs: SolutionRuns, tmp_path: Path
) -> None:
    solution = REPO / "solutions" / notebook.name
    assert solution in SOLUTIONS, f"{notebook.name} has no solution: run `lab build-exercises`"
    if _code(notebook) == _code(solution):
        # no exercises: the same code already ran as the solution, in the same starting state
        result = solution_runs.run(solution)
        assert not isinstance(result, StepFailed), str(result)
        return
    # Iceberg metadata holds absolute paths, so a snapshot only works at the path it was
    # taken from: put it back in the shared LAB_HOME, once every solution has run there.
    solution_runs.run(SOLUTIONS[-1])
    snapshot = solution_runs.snapshot_before(solution)
    home = solution_runs.home
    shutil.rmtree(home)
    shutil.copytree(snapshot, home)
    output = tmp_path / notebook.name
    try:
        # stop at the first error: it must be a stub's, and nothing after it matters
        with kernel_env(load_settings(home=home)):
            execute_notebook(notebook, output)
        return
    except StepFailed:
        pass
    executed = nbformat.read(str(output), as_version=4)
    index, error = next(
        (i, out)
        for i, cell in enumerate(executed.cells)
        for out in cell.get("outputs", [])
        if out.output_type == "error"
    )
    assert error.ename == "NotImplementedError" and _STUB_ERROR.match(error.evalue), (
        f"{notebook.name} cell {index} raised {error.ename}: {error.evalue} before any stub; "
        f"see {output}"
    )


def _repo_notebooks() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.ipynb"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()
    return [REPO / name for name in listed]


def test_repository_notebooks_carry_no_outputs() -> None:
    notebooks = _repo_notebooks()
    assert notebooks, "git lists no notebooks"
    dirty = []
    for path in notebooks:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for index, cell in enumerate(cells):
            if cell.get("outputs") or cell.get("execution_count") is not None:
                dirty.append(f"{path.relative_to(REPO)} cell {index}")
    assert not dirty, (
        "notebooks must be committed without outputs (run `nbstripout <file>`, or "
        "`pre-commit install` once): " + ", ".join(dirty)
    )


def _literal_assignment(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Assign):
        targets, value = stmt.targets, stmt.value
    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        targets, value = [stmt.target], stmt.value
    else:
        return False
    try:
        ast.literal_eval(value)
    except ValueError:
        return False
    return all(isinstance(t, ast.Name) for t in targets)


@pytest.mark.parametrize("notebook", SOLUTIONS, ids=_ids(SOLUTIONS))
def test_solution_shape(notebook: Path) -> None:
    cells = nbformat.read(str(notebook), as_version=4).cells
    assert cells and cells[0].cell_type == "markdown", "the first cell must be markdown"
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"expected one `parameters`-tagged cell, found {len(tagged)}"
    assert tagged[0].cell_type == "code"
    body = ast.parse(tagged[0].source).body
    bad = [ast.unparse(s) for s in body if not _literal_assignment(s)]
    assert body and not bad, f"the parameters cell may hold only `name = literal` lines: {bad}"


def test_build_exercises_check_passes_and_catches_an_edited_solution(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert SOLUTIONS, "solutions/ is empty"
    assert main(["build-exercises", "--check", "--root", str(REPO)]) == 0, capsys.readouterr().out

    for folder in ("solutions", "notebooks"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    edited = tmp_path / "solutions" / SOLUTIONS[-1].name
    nb = nbformat.read(str(edited), as_version=4)
    nb.cells[0].source += "\n\nAn edit the learner's copy does not have yet."
    nbformat.write(nb, str(edited))
    capsys.readouterr()
    assert main(["build-exercises", "--check", "--root", str(tmp_path)]) == 1
    assert f"notebooks/{edited.name}: out of date" in capsys.readouterr().out
