"""Notebook CI: every solution runs end to end, every learner notebook runs up to its first stub.

Solutions run in milestone order in one LAB_HOME, because each builds on the state the earlier
ones left (bronze before silver). In a whole-suite run nbval has already executed them cell by
cell (tests/notebook_ci.py); run alone, this module executes them with papermill. Before each
solution runs, that LAB_HOME is copied: the copy is the state at the start of the milestone,
where its learner notebook runs. Iceberg metadata holds absolute paths, so a copy's existing
tables still point at the original's files; new files and commits of the copy never reach the
original's catalog.

The notebooks run in their own kernels; this process never starts Spark.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from lab_env.cli import main
from lab_env.config import load_settings
from lab_env.course import exercises, states
from lab_env.course.checks import CHECK_MARKER
from lab_env.jobs.runner import StepFailed, execute_notebook, kernel_env
from lab_env.lake.catalog import get_catalog
from lab_env.streaming import broker
from tests.notebook_ci import NotebookCI, has_exercises, notebook_ci
from tests.retries import Retry, retry_after_a_mistake

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((REPO / "solutions").glob("*.ipynb"))
LEARNER = sorted((REPO / "notebooks").glob("*.ipynb"))
_STUB_ERROR = re.compile(r"^Exercise [\w.-]+:")


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


class SolutionRuns:
    """Runs the solution notebooks once each, in order, in one LAB_HOME, on demand.

    With ``nbval``, the nbval run of this session already did: its LAB_HOME and copies are used,
    and a solution's result is what its cells did there.
    """

    def __init__(self, root: Path, nbval: NotebookCI | None = None) -> None:
        self.home = root / "lakehouse"
        self.snapshots = root / "snapshots"
        self.outputs = root / "executed"
        self.nbval = nbval
        self.results: dict[str, nbformat.NotebookNode | StepFailed] = {}

    def _execute(self, notebook: Path) -> nbformat.NotebookNode | StepFailed:
        if self.nbval is not None:
            return self._nbval_result(notebook)
        settings = load_settings(home=self.home)
        try:
            with kernel_env(settings) as env:
                return execute_notebook(notebook, self.outputs / notebook.name, env=env)
        except StepFailed as exc:
            return exc

    def _nbval_result(self, notebook: Path) -> nbformat.NotebookNode | StepFailed:
        assert self.nbval is not None
        stem = notebook.stem
        if stem not in self.nbval.finished:
            return StepFailed(notebook, notebook, None, "nbval did not run it to its last cell")
        if failed := self.nbval.failures.get(stem):
            return StepFailed(notebook, notebook, None, f"nbval items failed: {', '.join(failed)}")
        return nbformat.v4.new_notebook()  # nbval checked what it printed, cell by cell

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
def solution_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SolutionRuns]:
    state = notebook_ci(request.config)
    if state is not None and state.started == [p.stem for p in SOLUTIONS]:
        yield SolutionRuns(state.root, nbval=state)
    else:
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
    if has_exercises(notebook) and solution_runs.nbval is None:
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
    settings = load_settings(home=home)
    try:
        # stop at the first error: it must be a stub's, and nothing after it matters
        with kernel_env(settings) as env:
            execute_notebook(notebook, output, env=env)
        return
    except StepFailed:
        pass
    finally:
        # 09 starts a Kafka broker tied to its kernel, and the stub stops the notebook before the
        # cell that stops it: the kernel's end sent it SIGTERM, and it may still be shutting down
        # in this LAB_HOME. Wait for it, or the next test's copy races the broker's last writes.
        broker.stop(settings)
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


def bad_prices_current(home: Path) -> bool:
    """07.3's bad write (prices of zero and below) is still sandbox.prices' current state."""
    table = get_catalog(load_settings(home=home)).load_table("sandbox.prices")
    return table.scan(row_filter="price_usd <= 0").count() > 0


# One typical mistake per milestone from 05 on (docs/mistakes.md); 00-04 are in
# tests/test_clean_retries.py, where each case builds its start state from the earlier solutions.
LATE_RETRIES = [
    Retry("05_production.ipynb", "05.1", "range((last - first).days + 1)]",
          "range((last - first).days)]", "end_date is inclusive"),  # exclusive-end
    Retry("06_quality.ipynb", "06.1", 'column="price_usd", min_value=0, strict_min=True, meta=',
          'column="price_usd", min_value=0, meta=', "lets a zero price through"),  # zero-allowed
    Retry("07_maintenance.ipynb", "07.3",
          "spark.sql(f\"CALL {CATALOG}.system.rollback_to_snapshot('sandbox.prices', {good})\")",
          "print('nothing to roll back?', good)", "the bad write is current",
          bad_prices_current),  # bad-write-current
    Retry("08_dbt.ipynb", "08.1", 'unique_key = ["asset_id", "trade_date"]',
          'unique_key = "asset_id"', "is not unique"),  # asset-id-only
    Retry("09_streaming.ipynb", "09.2",
          'batch.dropDuplicates(["event_id"]).createOrReplaceTempView("incoming")',
          'batch.createOrReplaceTempView("incoming")', "twice"),  # merge-without-dedupe
    Retry("10_dashboard.ipynb", "10.2", "(today - latest_day).days > 1",
          "(today - latest_day).days > 0", "got 'stale'"),  # off-by-one-age
]


@pytest.mark.notebook
@pytest.mark.parametrize("retry", LATE_RETRIES, ids=[r.notebook[:2] for r in LATE_RETRIES])
def test_a_fixed_answer_passes_the_next_check_from_the_kept_start(
    retry: Retry, solution_runs: SolutionRuns, tmp_path: Path
) -> None:
    """A learner's retry in milestones 05-10: the start of the milestone is the copy of LAB_HOME
    taken before its solution ran, kept as `lab check` keeps one; the check of a wrong answer
    fails, and the fixed answer's next check passes from that kept start."""
    solution = REPO / "solutions" / retry.notebook
    solution_runs.run(SOLUTIONS[-1])  # the copies work only at the shared LAB_HOME's path
    home = solution_runs.home
    shutil.rmtree(home)
    shutil.copytree(solution_runs.snapshot_before(solution), home)
    settings = load_settings(home=home)
    states.save(settings, int(retry.notebook[:2]), "notebook CI")
    try:
        retry_after_a_mistake(home, tmp_path, retry, "kept state")
    finally:
        broker.stop(settings)  # 09's broker, tied to the check's kernel


def _repo_notebooks() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.ipynb"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()
    return [REPO / name for name in listed]


def _reference_cell(path: Path, cell: dict) -> bool:
    """A solution cell whose output nbval compares: tagged, and kept by nbstripout."""
    meta = cell.get("metadata", {})
    return (
        path.parent == REPO / "solutions"
        and exercises.REFERENCE_TAG in meta.get("tags", [])
        and meta.get("keep_output") is True
    )


def test_repository_notebooks_carry_no_outputs() -> None:
    notebooks = _repo_notebooks()
    assert notebooks, "git lists no notebooks"
    dirty = []
    for path in notebooks:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for index, cell in enumerate(cells):
            kept = _reference_cell(path, cell) and cell.get("execution_count") is None
            if (cell.get("outputs") or cell.get("execution_count") is not None) and not kept:
                dirty.append(f"{path.relative_to(REPO)} cell {index}")
    assert not dirty, (
        "notebooks must be committed without outputs (run `nbstripout <file>`, or "
        "`pre-commit install` once), except the reference outputs of solution cells tagged "
        f"{exercises.REFERENCE_TAG} with keep_output: " + ", ".join(dirty)
    )


def test_every_reference_cell_has_its_reference_output() -> None:
    missing = [
        f"{path.name} cell {index}"
        for path in SOLUTIONS
        for index, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"])
        if exercises.REFERENCE_TAG in cell.get("metadata", {}).get("tags", [])
        and not (cell.get("outputs") and cell.get("metadata", {}).get("keep_output"))
    ]
    assert not missing, (
        "record them: bench/notebook_suite.py --keep, then "
        "lab build-exercises --record-outputs <kept>/executed: " + ", ".join(missing)
    )


@pytest.mark.notebook
def test_nbval_fails_when_a_reference_output_changes(tmp_path: Path) -> None:
    """A moved count fails CI with nbval's diff: the same notebook passes, then an edit fails."""
    source = REPO / "solutions" / "00_welcome.ipynb"
    nb = nbformat.read(str(source), as_version=4)
    reference = [c for c in nb.cells if _reference_cell(source, c)]
    assert reference, f"{source.name} has no {exercises.REFERENCE_TAG} cell to test with"
    folder = tmp_path / "solutions"
    folder.mkdir()
    shutil.copy(REPO / "milestones.md", tmp_path)  # the notebook reads the roadmap one level up
    copy = folder / source.name

    def nbval(notebook: nbformat.NotebookNode) -> subprocess.CompletedProcess[str]:
        nbformat.write(notebook, str(copy))
        return subprocess.run(  # nbval with this project's plugin, outside the repository
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
             "-p", "tests.notebook_ci", "--rootdir", str(tmp_path), "-c", "/dev/null", str(copy)],
            cwd=tmp_path, env=os.environ | {"PYTHONPATH": str(REPO)},
            capture_output=True, text=True, timeout=600, check=False,
        )

    same = nbval(nb)
    assert same.returncode == 0, same.stdout[-3000:]
    stream = next(o for o in reference[0].outputs if o.output_type == "stream")
    stream.text = stream.text.replace("1", "2", 1) if "1" in stream.text else stream.text + "!"
    moved = nbval(nb)
    assert moved.returncode == 1, moved.stdout[-3000:]
    assert "nbval" in moved.stdout.lower() or "mismatch" in moved.stdout.lower()
    assert f"{copy.name}::Cell" in moved.stdout, moved.stdout[-3000:]


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


def test_xdist_work_units_keep_the_notebook_chain_whole_and_split_long_independent_tests() -> None:
    from tests.notebook_ci import work_unit

    assert work_unit("solutions/03_silver.ipynb::Cell 4") == "notebooks"
    assert work_unit("tests/test_notebooks.py::test_solution_shape[03_silver]") == "notebooks"
    assert work_unit("tests/test_production.py::test_a[x]") == "tests/test_production.py"
    retry = "tests/test_clean_retries.py::test_a_fixed_answer[04]"
    assert work_unit(retry) == retry


def test_the_longest_work_units_are_handed_out_first_each_kept_in_its_order() -> None:
    """The Airflow backfill (one test, minutes long) starts early, not last and alone."""
    from types import SimpleNamespace

    from tests.notebook_ci import longest_units_first

    nodeids = [
        "solutions/00_welcome.ipynb::Cell 0", "solutions/00_welcome.ipynb::Cell 1",
        "tests/test_notebooks.py::test_learner_notebook[00]",
        "tests/test_config.py::test_a", "tests/test_config.py::test_b",
        "tests/test_clean_retries.py::test_fix[01]", "tests/test_backfill.py::test_backfill",
        "tests/test_production.py::test_twice", "tests/test_production.py::test_dag",
    ]
    items = [SimpleNamespace(nodeid=n) for n in nodeids]
    ordered = [item.nodeid for item in longest_units_first(items)]  # type: ignore[arg-type]
    assert ordered == [
        *nodeids[:3],  # the notebooks, in their order (solutions before the learner tests)
        *nodeids[7:],  # production
        nodeids[6],  # the backfill
        nodeids[5],  # one clean-retry case
        *nodeids[3:5],  # two quick tests of a module not in the table
    ]
