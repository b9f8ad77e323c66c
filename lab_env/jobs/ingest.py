"""``lab ingest``: run the bronze job (solutions/02_bronze.ipynb) for dates, print its summary.

The pipeline lives in the notebook; this command only executes it with papermill (through
:func:`lab_env.jobs.runner.execute_notebook`), pointing it at the replay server when
``LAB_COINCAP_URL`` is unset, and prints the ``bronze_summary.json`` the notebook wrote.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from lab_env.config import get_settings
from lab_env.dates import check_range, cli_date
from lab_env.errors import LabError
from lab_env.paths import SOLUTIONS

NOTEBOOK = SOLUTIONS / "02_bronze.ipynb"
SUMMARY_FILE = "bronze_summary.json"


def summary_path(start: dt.date, end: dt.date, run_id: str) -> Path:
    """Where the bronze notebook writes the summary of run ``run_id``: in the run's folder."""
    return get_settings().run_folder(start, end, run_id) / SUMMARY_FILE


def ingest(start: dt.date, end: dt.date, run_id: str) -> tuple[dict[str, Any] | None, str]:
    """Execute the bronze notebook; return its summary (None if it wrote none) and any error."""
    from lab_env.jobs.runner import KERNEL_LOG, Kernel, StepFailed, execute_notebook, kernel_env
    from lab_env.lake.lock import lakehouse_lock

    check_range(start, end)
    settings = get_settings()
    output = settings.run_folder(start, end, run_id) / NOTEBOOK.name
    params: dict[str, object] = {
        "start_date": start.isoformat(), "end_date": end.isoformat(), "run_id": run_id
    }
    error = ""
    # kernel_env: an absolute LAB_HOME, and a replay server when LAB_COINCAP_URL is unset; a
    # production run, so the notebook's self-checks are not the learner's progress.
    # cwd: the kernel reads the same .env as this process.
    with (
        lakehouse_lock(settings, run_id, f"ingest {start}..{end}"),  # one writer per LAB_HOME
        kernel_env(settings, record_progress=False) as env,
        Kernel(cwd=Path.cwd(), log=output.with_name(KERNEL_LOG), env=env) as kernel,
    ):
        try:
            execute_notebook(NOTEBOOK, output, params, job=True, kernel=kernel)
        except StepFailed as exc:
            error = str(exc)
    path = summary_path(start, end, run_id)
    summary = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    return summary, error


def render(summary: dict[str, Any]) -> None:
    """Print the per-day table and the totals of a bronze summary."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    table = Table(title=f"Bronze run {summary['run_id']} "
                        f"({summary['start_date']} .. {summary['end_date']})")
    table.add_column("date")
    table.add_column("status")
    for column in ("written", "skipped", "rejected"):
        table.add_column(column, justify="right")
    for day in summary["per_day"]:
        status = day["status"] if day["status"] != "failed" else "[red]failed[/red]"
        table.add_row(day["date"], status, str(day["written"]), str(day["skipped"]),
                      str(day["rejected"]))
    console.print(table)
    for day in summary["per_day"]:
        if day["error"]:
            console.print(f"[red]{day['date']}[/red]: {escape(day['error'])}")
    days, objects = summary["days"], summary["objects"]
    console.print(f"days: {days['done']} done, {days['skipped']} skipped, {days['failed']} failed; "
                  f"objects: {objects['written']} written, {objects['skipped']} skipped, "
                  f"{objects['rejected']} rejected")
    console.print(f"source: {summary['source']}")


def _cmd_ingest(args: argparse.Namespace) -> int:
    from lab_env.jobs.runner import new_run_id

    run_id = args.run_id or new_run_id()
    start, end = args.start, args.end or args.start
    folder = get_settings().run_folder(start, end, run_id)
    summary, error = ingest(start, end, run_id)
    if summary is None:
        raise LabError(error or f"The bronze notebook wrote no {SUMMARY_FILE}.",
                       None if error else f"open {folder} to see why.")
    render(summary)
    print(f"executed notebook: {folder / NOTEBOOK.name}")
    if summary["days"]["failed"]:
        print("Fix the cause above, then run the same dates again: what landed is skipped.")
    elif error:
        print(f"error: {error}")
    return 1 if error or summary["days"]["failed"] else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ingest", help="land the API's answers in bronze for a date range (02_bronze.ipynb)"
    )
    parser.add_argument("--start", type=cli_date, required=True,
                        help="first logical date, YYYY-MM-DD")
    parser.add_argument("--end", type=cli_date,
                        help="last logical date, inclusive (default: --start)")
    parser.add_argument("--run-id", help="default: a new timestamped id")
    parser.set_defaults(handler=_cmd_ingest)
