"""The course: ``lab build-exercises`` (authors), ``lab check``, ``lab progress`` and
``lab restore`` (learners). The work is in :mod:`lab_env.course`; this module prints it."""

from __future__ import annotations

from pathlib import Path

import click

from lab_env.cli import render
from lab_env.cli.base import LabCommand
from lab_env.config import get_settings
from lab_env.course import exercises, grading
from lab_env.errors import LabError
from lab_env.paths import REPO

ROOT = click.option(
    "--root", type=click.Path(path_type=Path), default=REPO, show_default=True,
    help="the repository",
)
# How `lab check` shows each status.
STATUS_STYLE = {
    grading.PASSED: "[green]passed[/green]",
    grading.FAILED: "[red]failed[/red]",
    grading.NOT_ATTEMPTED: "[yellow]not attempted[/yellow]",
}


@click.command("build-exercises", cls=LabCommand,
               short_help="generate the learner's notebooks/ from solutions/ (authors)")
@click.option(
    "--check", is_flag=True,
    help="change nothing; exit 1 if notebooks/ differs from what solutions/ generates",
)
@click.option(
    "--record-outputs", "record_from", metavar="DIR", type=click.Path(path_type=Path),
    help=f"first copy the outputs of the cells tagged {exercises.REFERENCE_TAG} from the executed "
    "solutions in DIR (bench/notebook_suite.py --keep) into solutions/",
)
@click.option(
    "--root", type=click.Path(path_type=Path, resolve_path=True), default=REPO,
    show_default=True, help="the repository",
)
def build_exercises(check: bool, record_from: Path | None, root: Path) -> int:
    """Generate the learner's notebooks/ from solutions/ (authors; overwrites notebooks/)."""
    out = render.console()
    if record_from is not None:
        for change in exercises.record_all_reference_outputs(root, record_from):
            out.print(f"recorded the reference output of {change}")
    if check:
        drift = exercises.find_drift(root)
        for item in drift:
            out.print(f"notebooks/{item.path.name}: {item.problem}")
        if drift:
            out.print("Fix: run `lab build-exercises` and commit notebooks/.")
            return 1
        out.print(f"notebooks/ is up to date with solutions/ "
                  f"({len(exercises.solution_notebooks(root))} notebooks).")
        return 0
    changes = exercises.build(root)
    for line in changes or ["notebooks/ was already up to date."]:
        out.print(line)
    return 0


@click.command("check", cls=LabCommand, short_help="run a notebook and grade its exercises")
@click.argument("notebook", type=click.Path(path_type=Path))
def check(notebook: Path) -> int:
    """Run a notebook and grade its exercises.

    NOTEBOOK: e.g. notebooks/02_bronze.ipynb
    """
    from rich.markup import escape

    out = render.console()
    out.print(f"Running {notebook} (a kernel, and Spark if the notebook uses it) ...")
    run = grading.check_notebook(notebook)
    if run.started_from:
        out.print(f"Started from the lakehouse at the start of milestone "
                  f"{exercises.milestone(notebook)} ({run.started_from}): what earlier attempts "
                  f"wrote is gone, and JupyterLab now sees the same state.")
    out.print(render.table(
        f"lab check {notebook.name}",
        ("exercise", "result", "title", "hint / detail"),
        ((r.exercise, STATUS_STYLE[r.status], escape(r.title), escape(r.detail))
         for r in run.results),
    ))
    if run.problem:
        out.print(f"[red]Warning:[/red] {run.problem}.")
    passed = sum(r.status == grading.PASSED for r in run.results)
    if not run.results:
        out.print("This notebook has no exercises to check.")
    else:
        out.print(f"{passed}/{len(run.results)} exercises passed.")
    out.print(f"Executed copy: {run.output}")
    if run.kernel:
        idle = get_settings().check_kernel_idle_s
        how = ("ran in the kernel kept from your last check, Spark already warm"
               if run.kernel == grading.KEPT_WARM else "started a kernel")
        out.print(f"[dim]This check {how}; it stays for your next check and ends by itself "
                  f"after {idle / 60:g} minutes without one (LAB_CHECK_KERNEL_IDLE_S=0: never "
                  "kept).[/dim]")
    return 0 if passed == len(run.results) and not run.problem else 1


@click.command("progress", cls=LabCommand, short_help="exercises passed per milestone")
@ROOT
def progress(root: Path) -> None:
    """Exercises passed per milestone."""
    folder = root / "notebooks"
    rows = grading.progress(folder)
    if not rows:
        raise LabError(f"No notebooks in {folder}.", "run this from the lab's repository.")
    render.console().print(render.table(
        f"Progress (LAB_HOME {get_settings().lab_home})",
        ("milestone", "passed", "status", "still to do"),
        ((name, f"{passed}/{total}", _progress_status(passed, total), " ".join(todo))
         for name, passed, total, todo in rows),
        right=("passed",),
    ))


def _progress_status(passed: int, total: int) -> str:
    if not total:
        return "[dim]no exercises[/dim]"
    if passed == total:
        return "[green]done[/green]"
    return "[yellow]in progress[/yellow]" if passed else "not started"


@click.command("restore", cls=LabCommand, writes=True,
               short_help="rebuild the lakehouse as it is at the start of milestone N")
@click.argument("milestone", type=int, metavar="N")
@click.option(
    "--fresh", is_flag=True,
    help="rebuild the start state from the solutions instead of the kept copy "
    "(the lakehouse is always cleared first on the local profile; progress and runs stay)",
)
@ROOT
def restore(milestone: int, fresh: bool, root: Path) -> None:
    """Rebuild the lakehouse as it is at the start of milestone N (e.g. 3)."""
    settings = get_settings()
    solutions = root / "solutions"
    out = render.console()
    if settings.is_local:
        out.print(f"Restoring LAB_HOME {settings.lab_home} to the start of milestone "
                  f"{milestone:02d} ...")
        how = grading.start_of_milestone(settings, milestone, solutions, fresh=fresh,
                                         progress=out.print)
        out.print(f"[green]Ready for milestone {milestone:02d}[/green] ({how}). What "
                  f"milestone {milestone:02d} and later wrote is gone.")
        return
    executed = grading.restore_on_stack(settings, milestone, solutions, fresh=fresh,
                                        progress=out.print)
    if executed is None:
        out.print(f"Nothing to run: no solution notebook before milestone {milestone}.")
    else:
        out.print(f"[green]Ready for milestone {milestone:02d}.[/green] Executed: {executed}")


COMMANDS: list[click.Command] = [build_exercises, check, progress, restore]
