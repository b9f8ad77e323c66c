"""Production runs: ``lab run``, ``lab ingest``, ``lab bronze list|retire``, ``lab dbt``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from lab_env.cli.base import LabCommand, LabGroup
from lab_env.cli.params import DATE, PORT, Several
from lab_env.cli.render import console, table
from lab_env.config import get_settings
from lab_env.dates import check_range
from lab_env.errors import LabError
from lab_env.jobs import bronze, dbt, ingest
from lab_env.jobs.runner import (
    EXTRA_STEPS,
    SAMPLE_END,
    SAMPLE_START,
    STEPS,
    RunSummary,
    new_run_id,
    run_pipeline,
)

STEP_NAMES = [s.name for s in (*STEPS, *EXTRA_STEPS)]


def one_day_or_range(start: dt.date | None, end: dt.date | None) -> tuple[dt.date, dt.date]:
    """``--start`` alone or ``--end`` alone is that one day; both are a range (checked)."""
    first, last = start or end, end or start
    if first is None or last is None:
        raise click.UsageError("give --start (and --end for a range).")
    check_range(first, last)
    return first, last


# ----- lab run -----


@click.command("run", cls=LabCommand, writes=True,
               short_help="run bronze -> silver -> gold -> quality for dates (default: the sample)")
@click.option("--start", type=DATE, help="first logical date")
@click.option("--end", type=DATE, help="last logical date (inclusive)")
@click.option("--full-refresh", is_flag=True, help="rebuild silver and gold")
@click.option("--evolve-schema", is_flag=True,
              help="let silver add fields the source newly sends as columns (docs/maintenance.md)")
@click.option("--assets", cls=Several, metavar="ID...",
              help="fetch only these assets' history into bronze, e.g. bitcoin ethereum "
                   "(default: all)")
@click.option("--steps", cls=Several, type=click.Choice(STEP_NAMES), metavar="STEP...",
              help=f"run only these steps, of {', '.join(STEP_NAMES)} (default: all but dbt; "
                   "name dbt to build its marts last)")
def run_command(start: dt.date | None, end: dt.date | None, full_refresh: bool,
                evolve_schema: bool, assets: tuple[str, ...], steps: tuple[str, ...]) -> int:
    """Run bronze -> silver -> gold -> quality for a date range (default: the sample range)."""
    first, last = (SAMPLE_START, SAMPLE_END) if start is None and end is None else \
        one_day_or_range(start, end)
    chosen = steps or [s.name for s in STEPS]  # dbt only when named
    out = console()
    summary = run_pipeline(
        first,
        last,
        full_refresh=full_refresh,
        assets=assets,
        evolve_schema=evolve_schema,
        steps=[s for s in (*STEPS, *EXTRA_STEPS) if s.name in chosen],
        progress=lambda line: out.print(line, markup=False),
    )
    render_summary(summary)
    return 0 if summary.ok else 1


def render_summary(summary: RunSummary) -> None:
    """The closing summary of a run: time per step, tables touched, rows in and out (``lab
    run`` prints it; the M5 lesson too)."""
    out = console()
    out.print(table(
        f"Run {summary.run_id} ({summary.start} .. {summary.end})",
        ("step", "status", "seconds", "executed notebook"),
        ((s.name, "ok" if s.ok else "[red]FAILED[/red]", f"{s.seconds:.1f}", s.output)
         for s in summary.steps),
        right=("seconds",),
    ))
    touched = [
        (step.name, c.table, c.snapshots, f"{c.added_records:,}", f"{c.deleted_records:,}",
         f"{c.total_records:,}")
        for step in summary.steps
        for c in step.tables
    ]
    if touched:
        out.print(table("Tables touched",
                        ("step", "table", "commits", "rows added", "rows removed", "rows now"),
                        touched))
    report = Path(summary.folder) / "quality" / "index.html"
    if report.is_file():
        out.print(f"Quality report: {report}  (lab docs --run {summary.run_id} --serve)")
    out.print("[green]Run complete.[/green]" if summary.ok
              else f"[red]Run failed.[/red] {summary.steps[-1].error}", soft_wrap=True)


# ----- lab ingest -----


@click.command("ingest", cls=LabCommand, writes=True,
               short_help="land the API's answers in bronze for dates (02_bronze.ipynb)")
@click.option("--start", type=DATE, required=True, help="first logical date")
@click.option("--end", type=DATE, help="last logical date, inclusive (default: --start)")
@click.option("--run-id", help="default: a new timestamped id")
def ingest_command(start: dt.date, end: dt.date | None, run_id: str | None) -> int:
    """Land the API's answers in bronze for a date range (02_bronze.ipynb)."""
    run_id = run_id or new_run_id()
    first, last = one_day_or_range(start, end)
    folder = get_settings().run_folder(first, last, run_id)
    summary, error = ingest.ingest(first, last, run_id)
    if summary is None:
        raise LabError(error or f"The bronze notebook wrote no {ingest.SUMMARY_FILE}.",
                       None if error else f"open {folder} to see why.")
    render_bronze_summary(summary)
    out = console()
    out.print(f"executed notebook: {folder / ingest.NOTEBOOK.name}", soft_wrap=True)
    if summary["days"]["failed"]:
        out.print("Fix the cause above, then run the same dates again: what landed is skipped.")
    elif error:
        out.print(f"error: {error}", markup=False, soft_wrap=True)
    return 1 if error or summary["days"]["failed"] else 0


def render_bronze_summary(summary: dict[str, Any]) -> None:
    """The per-day table and the totals of a bronze summary."""
    from rich.markup import escape

    out = console()
    out.print(table(
        f"Bronze run {summary['run_id']} ({summary['start_date']} .. {summary['end_date']})",
        ("date", "status", "written", "skipped", "rejected"),
        ((d["date"], d["status"] if d["status"] != "failed" else "[red]failed[/red]",
          d["written"], d["skipped"], d["rejected"]) for d in summary["per_day"]),
    ))
    for day in summary["per_day"]:
        if day["error"]:
            out.print(f"[red]{day['date']}[/red]: {escape(day['error'])}")
    days, objects = summary["days"], summary["objects"]
    out.print(f"days: {days['done']} done, {days['skipped']} skipped, {days['failed']} failed; "
              f"objects: {objects['written']} written, {objects['skipped']} skipped, "
              f"{objects['rejected']} rejected")
    out.print(f"source: {summary['source']}", soft_wrap=True)


# ----- lab bronze -----


@click.group("bronze", cls=LabGroup,
             short_help="list a day's stored answers; retire a bad one (never deleted)")
def bronze_group() -> None:
    """List a day's stored answers; retire a bad one (moved aside, never deleted).

    A bad answer that a healthy fetch cannot replace (bronze skips an identical body) keeps
    the day blocked by the gate; retiring moves it to bronze/_retired/ with the reason, and the
    next run of the day uses the answer before it (docs/bronze.md, "Retiring a bad answer"):

    \b
        lab bronze list --start 2025-03-31
        lab bronze retire --run <run id> --start 2025-03-31 --reason "nulls from upstream"
        lab run --start 2025-03-31
    """


@bronze_group.command("list")
@click.option("--start", type=DATE, required=True, help="first day")
@click.option("--end", type=DATE, help="last day (default: --start)")
@click.option("--keys", "show_keys", is_flag=True, help="also print the full keys")
def bronze_list(start: dt.date, end: dt.date | None, show_keys: bool) -> None:
    """The answers of a day: current or not, problems."""
    first, last = one_day_or_range(start, end)
    found = bronze.answers(bronze.open_store(), first, last)
    out = console(width=200)
    if not found:
        out.print(f"No bronze answers for {first}..{last}. Fetch them: lab run --steps bronze "
                  f"--start {first} --end {last}", soft_wrap=True)
        return
    listed = table(
        f"bronze answers {first}..{last} (* = current: what silver and the gate use)",
        ("", "day", "endpoint", "asset", "fetched_at", "run_id", "records", "problem"),
        (("*" if a.current else "", a.day, a.endpoint, a.asset_id or "", a.fetched_at, a.run_id,
          a.records, a.problem) for a in found),
    )
    for column in listed.columns:
        column.overflow = "fold"
    out.print(listed)
    if show_keys:
        for answer in found:
            out.print(answer.key, soft_wrap=True, markup=False)


@bronze_group.command("retire", writes=True)
@click.argument("keys", nargs=-1, metavar="[KEY]...")
@click.option("--run", "run_id", metavar="RUN_ID", help="every answer this bronze run stored")
@click.option("--start", type=DATE, help="with --run: first day it fetched")
@click.option("--end", type=DATE, help="with --run: last day (default: --start)")
@click.option("--reason", required=True, help="why, kept in the retired sidecar")
def bronze_retire(keys: tuple[str, ...], run_id: str | None, start: dt.date | None,
                  end: dt.date | None, reason: str) -> None:
    """Move answers to bronze/_retired/ with a reason (keys from `lab bronze list --keys`)."""
    store = bronze.open_store()
    chosen = bronze.keys_to_retire(store, keys, run_id, start, end)
    out = console()
    for key in bronze.retire(store, chosen, reason):
        out.print(f"retired: {key}", soft_wrap=True, markup=False)
    out.print("Re-run the day(s) now: lab run --start ... --end ...")


# ----- lab dbt -----


@click.group("dbt", cls=LabGroup,
             short_help="dbt on DuckDB over silver: build the marts and their tests, or docs")
def dbt_group() -> None:
    """dbt on DuckDB over silver: build the marts and their tests, or the docs."""


@dbt_group.command("build")
@click.option("--start", type=DATE, help="first date of the run: rewrite its affected days only")
@click.option("--end", type=DATE, help="last date of the run (inclusive)")
@click.option("--full-refresh", is_flag=True, help="rebuild the incremental models from scratch")
@click.option("--select", "selectors", cls=Several, metavar="SELECTOR...",
              help="dbt node selection, e.g. +fct_asset_daily")
def dbt_build(start: dt.date | None, end: dt.date | None, full_refresh: bool,
              selectors: tuple[str, ...]) -> None:
    """dbt build: staging and marts, then their tests (docs/dbt.md)."""
    settings = get_settings()
    first, last = start or end, end or start
    run = dbt.build(settings, first, last, full_refresh=full_refresh,
                    select=list(selectors) or None)
    out = console()
    out.print(run.summary(), markup=False, soft_wrap=True)
    out.print(f"marts in {dbt.duckdb_path(settings)}", soft_wrap=True)


@dbt_group.command("docs")
@click.option("--serve", is_flag=True, help="serve it on 127.0.0.1")
@click.option("--port", type=PORT, default=8766, show_default=True,
              help="port for --serve (0: any free)")
def dbt_docs(serve: bool, port: int) -> None:
    """dbt docs generate: one offline HTML page (optionally served)."""
    from lab_env.cli.serve import serve_folder

    page = dbt.docs(get_settings())
    console().print(f"dbt docs: {page}", soft_wrap=True)
    if serve:
        serve_folder(page.parent, page.name, port)


COMMANDS: list[click.Command] = [run_command, ingest_command, bronze_group, dbt_group]
