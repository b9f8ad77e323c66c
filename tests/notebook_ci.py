"""Notebook regression through nbval: the solution notebooks, every code cell a test item.

Loaded for every pytest run (``-p tests.notebook_ci`` in pyproject.toml). With ``--nbval-lax``
(also in pyproject.toml) nbval collects ``solutions/*.ipynb``: each code cell becomes an item,
so a failure names the notebook and the cell. This plugin

* runs the solutions first, in milestone order, in one LAB_HOME of the test session (silver
  needs bronze's files), each in its own kernel started with that LAB_HOME;
* copies that LAB_HOME just before each solution starts: the state at the start of the
  milestone, where ``tests/test_notebooks.py`` runs the learner's copy;
* fails a cell that prints a failing self-check (``[check] <id> FAIL``), and the last cell of a
  notebook with exercises whose checks printed no PASS at all.

Cells tagged ``nbval-check-output`` keep their reference output in the committed notebook;
nbval compares it (``docs/notebook-ci.md``: how to record a new one).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS_DIR = REPO / "solutions"
CHECK_MARKER = "[check]"


@dataclass
class NotebookCI:
    """The LAB_HOME the solutions share, the copies taken before each, and what they printed."""

    root: Path
    started: list[str] = field(default_factory=list)  # solution stems, in the order run
    passes: dict[str, int] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)  # ran to their last code cell
    failures: dict[str, list[str]] = field(default_factory=dict)  # stem -> failed cell items

    @property
    def home(self) -> Path:
        return self.root / "lakehouse"

    def snapshot(self, stem: str) -> Path:
        return self.root / "snapshots" / stem


STATE = pytest.StashKey[NotebookCI]()


def notebook_ci(config: pytest.Config) -> NotebookCI | None:
    """The nbval run's state, or None when this session collected no solution notebook."""
    return config.stash.get(STATE, None)


def _is_solution_cell(item: pytest.Item) -> bool:
    return type(item).__name__ == "IPyNbCell" and Path(str(item.path)).parent == SOLUTIONS_DIR


# The module whose tests run the learner notebooks in the states the solutions leave.
LEARNER_TESTS = "test_notebooks.py"
# Modules whose tests share no module fixture and each take minutes: one test is a work unit,
# so the two workers share them instead of one worker running them in a row at the end.
SPLIT_BY_TEST = ("test_clean_retries.py",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Solution cells first, in milestone order; they build the states the other tests copy."""
    for item in items:
        cell = getattr(item, "cell", None) if type(item).__name__ == "IPyNbCell" else None
        if cell is not None and cell.outputs and cell.execution_count is None:
            # nbstripout keeps a reference output but never an execution count, and nbval
            # ignores (fails, in fact) an output without one: mark it as run, in memory only.
            cell.execution_count = 1
    cells = [item for item in items if _is_solution_cell(item)]
    for item in cells:
        item.add_marker(pytest.mark.notebook)
    cells.sort(key=lambda item: (Path(str(item.path)).name, getattr(item, "cell_num", 0)))
    others = [item for item in items if not _is_solution_cell(item)]
    items[:] = longest_units_first(cells + others)
    if cells:
        config.stash[STATE] = NotebookCI(
            Path(tempfile.mkdtemp(prefix="lab-notebook-ci-", dir=_kept()))
        )


# Seconds each work unit took in a quiet run of the suite (2026-12-03, from a junit report;
# `bench/suite_time.py` lists the slowest tests). xdist hands the units out in collection
# order, and the collection puts the longest first: the last units to start are short, so the
# two workers finish together instead of one running the Airflow backfill alone at the end.
# A unit not listed counts a second per test; in a split module, each test is a unit of its own.
UNIT_SECONDS = {
    "notebooks": 1400,  # with the clean retries of 05-10 (two `lab check`s each), estimated
    "tests/test_production.py": 461,
    "tests/test_backfill.py": 354,
    "tests/test_silver_gold.py": 310,
    "tests/test_stack.py": 245,
    "tests/test_bronze_recovery.py": 209,
    "tests/test_dbt.py": 192,
    "tests/test_dashboard.py": 155,
    "tests/test_quality_e2e.py": 126,
    "tests/test_metrics.py": 78,
    "tests/test_quality.py": 75,
    "tests/test_cli_errors.py": 70,
    "tests/test_streaming.py": 58,
}
SPLIT_TEST_SECONDS = 80  # a clean-retry case: two `lab check`s


def longest_units_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """``items`` ordered by their work unit's expected seconds, longest first; within a unit
    (and between units of equal weight) the order stays as it was."""
    units = [work_unit(item.nodeid) for item in items]
    counts = Counter(units)
    first = {unit: index for index, unit in reversed(list(enumerate(units)))}

    def seconds(unit: str) -> float:
        if unit in UNIT_SECONDS:
            return UNIT_SECONDS[unit]
        return SPLIT_TEST_SECONDS if "::" in unit else counts[unit]

    order = sorted(range(len(items)), key=lambda i: (-seconds(units[i]), first[units[i]], i))
    return [items[i] for i in order]


# Set, the shared LAB_HOME goes in this folder and stays after the run, for CI to upload what
# the notebooks wrote (.github/workflows/ci.yml); unset, it is a temporary folder, removed.
ARTIFACTS_ENV = "NOTEBOOK_CI_DIR"


def _kept() -> str | None:
    folder = os.environ.get(ARTIFACTS_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
    return folder or None


def work_unit(nodeid: str) -> str:
    """What one xdist worker runs as a whole: a test module, or every notebook test in order.

    The solution cells and the learner-notebook tests share one LAB_HOME and its copies, so
    they form one unit; every other module goes whole to one worker, so its module-scoped
    fixtures (a LAB_HOME, a run of the pipeline) are built once, except the few modules in
    ``SPLIT_BY_TEST``, whose long tests share nothing.
    """
    path = nodeid.split("::", 1)[0]
    if path.startswith(f"{SOLUTIONS_DIR.name}/") or path.endswith(f"/{LEARNER_TESTS}"):
        return "notebooks"
    if path.endswith(tuple(f"/{name}" for name in SPLIT_BY_TEST)):
        return nodeid
    return path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Under ``-n 2`` (as ``make test`` runs): hand out work by :func:`work_unit`."""
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # keep the collection's order: longest units first
    return ByWorkUnit(config, log)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = notebook_ci(config)
    if state is not None and not _kept():
        shutil.rmtree(state.root, ignore_errors=True)


def _first_cell(item: pytest.Item) -> bool:
    return getattr(item, "cell_num", None) == 0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """Before a solution's kernel starts: copy the shared LAB_HOME, and hand it to the kernel."""
    state = notebook_ci(item.config)
    if state is None or not _is_solution_cell(item) or not _first_cell(item):
        return (yield)
    stem = Path(str(item.path)).stem
    state.started.append(stem)
    state.home.mkdir(parents=True, exist_ok=True)
    snapshot = state.snapshot(stem)
    if not snapshot.exists():
        shutil.copytree(state.home, snapshot)
    mp = pytest.MonkeyPatch()
    # nbval starts the notebook's kernel in this setup; the kernel keeps the environment.
    mp.setenv("LAB_HOME", str(state.home))
    mp.setenv("LAB_PROFILE", "local")
    mp.setenv("LAB_RECORD_PROGRESS", "true")
    for name in ("LAB_COINCAP_URL", "LAB_COINCAP_API_KEY", "LAB_WAP_BRANCH"):
        mp.delenv(name, raising=False)  # a notebook opened by hand starts its own replay server
    try:
        return (yield)
    finally:
        mp.undo()


def _printed(item: pytest.Item) -> str:
    outputs = getattr(item, "test_outputs", None) or []
    return "".join(out.get("text", "") for out in outputs if out.get("output_type") == "stream")


def has_exercises(notebook: Path) -> bool:
    """Whether the notebook has exercise stubs or calls a check (then one must PASS)."""
    import nbformat

    from lab_env.course import exercises

    _, stubs = exercises.learner_notebook(notebook)
    cells = nbformat.read(str(notebook), as_version=4).cells
    return stubs > 0 or any(
        exercises.checked_exercises(c.source) for c in cells if c.cell_type == "code"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A solution cell fails when a self-check it ran says FAIL."""
    result = yield
    state = notebook_ci(item.config)
    if state is None or not _is_solution_cell(item):
        return result
    notebook = Path(str(item.path))
    lines = [line for line in _printed(item).splitlines() if line.startswith(CHECK_MARKER)]
    state.passes[notebook.stem] = state.passes.get(notebook.stem, 0) + sum(
        " PASS " in line for line in lines
    )
    failed = [line for line in lines if " FAIL " in line]
    if failed:
        raise AssertionError("a solution must pass its own checks:\n" + "\n".join(failed))
    code_cells = [c for c in item.parent.nb.cells if c.cell_type == "code"]
    if getattr(item, "cell_num", None) == len(code_cells) - 1:
        state.finished.add(notebook.stem)
        if has_exercises(notebook) and not state.passes.get(notebook.stem):
            raise AssertionError(f"{notebook.name} printed no passing check")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    """Remember which solution cells failed, for tests/test_notebooks.py to report per notebook."""
    report = yield
    state = notebook_ci(item.config)
    if state is not None and _is_solution_cell(item) and report.failed:
        state.failures.setdefault(Path(str(item.path)).stem, []).append(item.name)
    return report
