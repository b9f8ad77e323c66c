"""The learner's self-grading: ``lab check``, ``lab progress`` and ``lab restore``.

``lab check notebooks/NN_topic.ipynb`` runs the notebook (errors allowed, so one unwritten
exercise does not hide the checks after it) and reads the verdicts from what its check cells
printed: the ``[check] <id> PASS|FAIL`` lines of :mod:`lab_env.course.checks`, and which cells
raised.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lab_env.config import Settings, get_settings
from lab_env.course import kept, states
from lab_env.course.checks import CHECK_MARKER, load_results
from lab_env.course.checks._core import progress_file
from lab_env.course.exercises import (
    REPO,
    check_titles,
    checked_exercises,
    milestone,
    stub_exercises,
)
from lab_env.errors import LabError
from lab_env.jobs.runner import kernel_env
from lab_env.source.samples import SAMPLE_START

if TYPE_CHECKING:
    import nbformat

PASSED = "passed"
FAILED = "failed"
NOT_ATTEMPTED = "not attempted"
KEPT_WARM = "warm"  # the check ran in the kernel kept from the last one
KEPT_NEW = "new"  # the check started the kernel the next one will use
NO_RESTORE_TAG = "no-restore"
# What lab_env.course.checks prints when the learner's function is still the stub.
_NOT_WRITTEN = "this exercise is not written yet"
_CHECK_LINE = re.compile(
    rf"^{re.escape(CHECK_MARKER)} (?P<id>\S+) (?P<verdict>PASS|FAIL) (?:[^\w\s]+ )?(?P<rest>.*)$"
)
_STUB_ERROR = re.compile(r"^Exercise (?P<id>[\w.-]+):")


@dataclass(frozen=True)
class ExerciseResult:
    """One row of ``lab check``: an exercise and how the learner's attempt stands."""

    exercise: str
    title: str
    status: str  # PASSED, FAILED or NOT_ATTEMPTED
    detail: str  # the check's message, the hint, or why it counts as not attempted


@dataclass
class _Seen:
    title: str = ""
    verdict: tuple[bool, str] | None = None  # the last check line: passed, message
    stub_left: bool = False  # the generated stub is still in the notebook, or raised in this run
    cell_error: str = ""  # the error of a check cell that printed no verdict
    check_ran: bool = False


def _stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(
        out.get("text", "") for out in cell.get("outputs", []) if out.output_type == "stream"
    )


def _error(cell: nbformat.NotebookNode) -> tuple[str, str] | None:
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            return out.get("ename", ""), out.get("evalue", "")
    return None


def grade(nb: nbformat.NotebookNode) -> list[ExerciseResult]:
    """The result of every exercise in an executed learner notebook, in notebook order."""
    seen: dict[str, _Seen] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        checked = checked_exercises(cell.source)
        for exercise_id in stub_exercises(cell.source):
            seen.setdefault(exercise_id, _Seen()).stub_left = True
        for exercise_id in checked:
            seen.setdefault(exercise_id, _Seen())
        for exercise_id, title in check_titles(cell.source).items():
            seen[exercise_id].title = title
        printed = set()
        for line in _stdout(cell).splitlines():
            match = _CHECK_LINE.match(line.strip())
            if not match:
                continue
            title, _, message = match["rest"].partition(": ")
            entry = seen.setdefault(match["id"], _Seen())
            entry.title = title
            entry.verdict = (match["verdict"] == "PASS", message)
            printed.add(match["id"])
        ran = cell.get("execution_count") is not None or bool(cell.get("outputs"))
        error = _error(cell)
        if error and error[0] == "NotImplementedError" and (stub := _STUB_ERROR.match(error[1])):
            seen.setdefault(stub["id"], _Seen()).stub_left = True
        for exercise_id in checked:
            seen[exercise_id].check_ran |= ran
            if error and exercise_id not in printed:
                seen[exercise_id].cell_error = f"{error[0]}: {error[1]}".strip()
    return [_verdict(exercise_id, entry) for exercise_id, entry in seen.items()]


def _verdict(exercise_id: str, seen: _Seen) -> ExerciseResult:
    def row(status: str, detail: str) -> ExerciseResult:
        return ExerciseResult(exercise_id, seen.title, status, detail)

    if seen.verdict is not None:
        passed, message = seen.verdict
        if passed:
            return row(PASSED, message)
        if seen.stub_left or message.startswith(_NOT_WRITTEN):
            return row(NOT_ATTEMPTED, "the stub is still there: replace it with your solution")
        return row(FAILED, message)
    if seen.stub_left:
        return row(NOT_ATTEMPTED, "the stub is still there: replace it with your solution")
    if seen.cell_error:
        return row(FAILED, f"the check cell raised {seen.cell_error}")
    if seen.check_ran:
        return row(FAILED, "the check cell ran but printed no verdict")
    return row(NOT_ATTEMPTED, "its check cell never ran")


@dataclass(frozen=True)
class CheckRun:
    """What ``lab check`` found: one result per exercise, the executed copy, any run problem."""

    results: list[ExerciseResult]
    output: Path
    problem: str = ""  # e.g. the kernel died: later checks never ran
    started_from: str = ""  # how the lakehouse was put back to the milestone's start, if it was
    kernel: str = ""  # KEPT_WARM or KEPT_NEW: the check ran in the kept kernel (course.kept)


def check_notebook(notebook: Path, *, clean_start: bool = True) -> CheckRun:
    """Execute a learner notebook under the current LAB_HOME and grade its exercises.

    ``clean_start`` (local profile, a course notebook: one with a solution of the same name):
    first put the lakehouse back to the start of the milestone (:mod:`lab_env.course.states`), so
    what an earlier wrong answer wrote cannot fail a corrected one. The check holds the LAB_HOME
    lock while it resets and runs.
    """
    import nbformat
    from nbclient.exceptions import DeadKernelError

    from lab_env.jobs.runner import execute_notebook
    from lab_env.lake.lock import lakehouse_lock

    if not notebook.is_file():
        raise LabError(
            f"No notebook at {notebook}.", "pass a path like notebooks/02_bronze.ipynb."
        )
    settings = get_settings()
    output = settings.runs_dir / "checks" / notebook.name
    number = milestone(notebook)
    started_from = kernel_state = ""
    with contextlib.ExitStack() as stack:
        course = number.isdigit() and (REPO / "solutions" / notebook.name).is_file()
        if clean_start and settings.is_local and course:
            stack.enter_context(lakehouse_lock(settings, None, f"lab check {notebook.name}"))
            started_from = start_of_milestone(settings, int(number), REPO / "solutions")
        output.unlink(missing_ok=True)
        env = stack.enter_context(kernel_env(settings))
        kernel = None
        if started_from and kept.wanted(settings, notebook):
            # under the lock, after the reset: the kernel kept from the last check, Spark warm
            kernel, warm = stack.enter_context(
                kept.check_kernel(settings, env, notebook.resolve().parent))
            kernel_state = KEPT_WARM if warm else KEPT_NEW
        try:
            # what the kernel and its JVM print themselves goes to a log, not the learner's
            # terminal (the kept kernel has its own, runs/checks/kernel.log)
            executed = execute_notebook(
                notebook.resolve(), output, allow_errors=True,
                env=kept.check_env(env) if kernel else env, kernel=kernel,
                kernel_log=None if kernel else output.with_suffix(".log"),
            )
        except DeadKernelError:
            if not output.is_file():
                raise
            # the copy is saved after every cell, so grade what ran before the kernel died
            executed = nbformat.read(str(output), as_version=4)
            return CheckRun(grade(executed), output, "the kernel died; later cells never ran",
                            started_from, kernel_state)
    return CheckRun(grade(executed), output, started_from=started_from, kernel=kernel_state)


def notebook_exercises(notebook: Path) -> list[str]:
    """Exercise ids a learner notebook holds: its stubs and the checks its cells call."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    ids: list[str] = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            ids += stub_exercises(cell.source) + checked_exercises(cell.source)
    return list(dict.fromkeys(ids))


def progress(folder: Path) -> list[tuple[str, int, int, list[str]]]:
    """Per notebook in ``folder``: name, exercises passed, total, and the ids not passed yet."""
    results = load_results()
    rows = []
    for notebook in sorted(folder.glob("*.ipynb")):
        ids = notebook_exercises(notebook)
        prefix = f"{milestone(notebook)}."
        ids += [i for i in sorted(results) if i.startswith(prefix) and i not in ids]
        passed = [i for i in ids if i in results and results[i].passed]
        rows.append((notebook.name, len(passed), len(ids), [i for i in ids if i not in passed]))
    return rows


def restore_plan(milestone_number: int, solutions: Path) -> list[Path]:
    """Solution notebooks to run, in order, to reach the start of a milestone.

    Every solution numbered below it, except those whose first cell is tagged ``no-restore``.
    """
    import nbformat

    plan = []
    for notebook in sorted(solutions.glob("*.ipynb")):
        number = milestone(notebook)
        if not number.isdigit() or int(number) >= milestone_number:
            continue
        cells = nbformat.read(str(notebook), as_version=4).cells
        if cells and NO_RESTORE_TAG in cells[0].get("metadata", {}).get("tags", []):
            continue
        plan.append(notebook)
    return plan


@contextlib.contextmanager
def _progress_kept(settings: Settings) -> Iterator[None]:
    """Leave the learner's progress as it was: the solutions' own checks must not count."""
    path = progress_file(settings)
    before = path.read_bytes() if path.is_file() else None
    try:
        yield
    finally:
        if before is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(before)


def restore_parameters(milestone_number: int, run_id: str) -> dict[str, object]:
    """What the earlier solutions run with: from milestone 4 on, bronze and silver cover the
    whole sample, so gold's 7- and 30-day windows and the 90-day plots have their history."""
    params: dict[str, object] = {"run_id": run_id}
    if milestone_number >= 4:
        params["start_date"] = SAMPLE_START.isoformat()
    return params


def start_of_milestone(
    settings: Settings,
    milestone_number: int,
    solutions: Path,
    *,
    fresh: bool = False,
    progress: Callable[[str], None] | None = None,
) -> str:
    """Put the local lakehouse at the start of a milestone (``lab check`` and, on the local
    profile, ``lab restore N``); say how ("kept state" or "built").

    A kept start state is copied back (seconds). Otherwise LAB_HOME's lakehouse is cleared, the
    earlier milestones' solutions run as jobs in one kernel, and the result is kept for next
    time; ``progress`` is told as each one starts and ends. ``fresh``: forget every kept state
    and rebuild from the solutions. The caller holds the LAB_HOME lock.
    """
    from lab_env.jobs.runner import new_run_id

    if fresh:
        states.forget(settings)
    elif states.load(settings, milestone_number):
        states.mark_start(settings, milestone_number)
        return "kept state"
    plan = restore_plan(milestone_number, solutions)
    base = None if fresh else kept_base(settings, milestone_number)
    if base is None:
        states.clear(settings)
    else:
        # A learner going in order has the start of the milestone before kept: start from it
        # and run only the solutions after it (they run with the same parameters).
        states.load(settings, base)
        plan = [notebook for notebook in plan if int(milestone(notebook)) >= base]
    run_id = f"restore-{new_run_id()}"
    if plan:
        folder = run_solutions(settings, plan, solutions, milestone_number, run_id, progress)
        shutil.rmtree(folder, ignore_errors=True)  # the executed copies: nothing to read there
    states.save(settings, milestone_number, run_id)
    states.mark_start(settings, milestone_number)
    since = "" if base is None else f" on the kept start of milestone {base:02d}"
    return f"built by {len(plan)} solution notebook(s){since}, kept for next time"


def kept_base(settings: Settings, milestone_number: int) -> int | None:
    """The newest kept start of an earlier milestone that a build of ``milestone_number`` can
    continue from: its solutions ran with the same parameters (None: build from nothing)."""
    same = restore_parameters(milestone_number, "")
    for earlier in range(milestone_number - 1, -1, -1):
        if restore_parameters(earlier, "") != same:
            return None
        if states.has_state(settings, earlier):
            return earlier
    return None


def restore_on_stack(
    settings: Settings,
    milestone_number: int,
    solutions: Path,
    *,
    fresh: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path | None:
    """``lab restore N`` on the compose stack: run the solutions before milestone N on what the
    stack holds (nothing is cleared, and no state is kept); ``progress`` is told as each starts.

    Returns the folder of the executed copies, or None when there is no solution to run.
    ``fresh`` is refused: :func:`lab_env.course.states.clear` says how to clear the stack by hand.
    """
    from lab_env.jobs.runner import new_run_id
    from lab_env.lake.lock import lakehouse_lock

    if fresh:
        states.clear(settings)
    plan = restore_plan(milestone_number, solutions)
    if not plan:
        return None
    run_id = f"restore-{new_run_id()}"
    # held already by `lab restore`; taken again, it records the run id in the holder
    with lakehouse_lock(settings, run_id, f"lab restore {milestone_number}"):
        return run_solutions(settings, plan, solutions, milestone_number, run_id, progress)


def run_solutions(
    settings: Settings,
    plan: list[Path],
    solutions: Path,
    milestone_number: int,
    run_id: str,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Run ``plan``'s solution notebooks as jobs (lesson cells left out), all in one kernel (the
    JVM starts once), into ``runs/restore/<run_id>/``, and return that folder. The learner's
    progress is left as it was; ``progress`` is told as each notebook starts and ends."""
    from lab_env.jobs.runner import KERNEL_LOG, Kernel, execute_notebook

    folder = settings.runs_dir / "restore" / run_id
    with (
        kernel_env(settings) as env,
        _progress_kept(settings),
        Kernel(cwd=solutions, log=folder / KERNEL_LOG, env=env) as kernel,
    ):
        for index, notebook in enumerate(plan, start=1):
            if progress:
                progress(f"[{index}/{len(plan)}] {notebook.name} ...")
            began = time.perf_counter()
            execute_notebook(notebook, folder / notebook.name,
                             restore_parameters(milestone_number, run_id), job=True,
                             kernel=kernel)
            if progress:
                progress(f"  done in {time.perf_counter() - began:.1f}s")
    return folder
