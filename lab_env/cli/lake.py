"""The lakehouse's own tools: ``lab lineage``, ``lab maintain``, ``lab spark-archive``."""

from __future__ import annotations

import time
from typing import Any

import click

from lab_env.cli.base import LabCommand
from lab_env.cli.render import console, say, table, verbatim
from lab_env.config import get_settings
from lab_env.jobs.runner import ARCHIVE_TRAINING
from lab_env.lake import maintain, spark_archive
from lab_env.lake.lineage import table_lineage

# ----- lab lineage -----

LINEAGE_COLUMNS = ("committed (UTC)", "snapshot", "operation", "run id", "dates", "+rows", "-rows")


@click.command("lineage", cls=LabCommand, short_help="which run made each snapshot of a table")
@click.argument("table_name", metavar="TABLE")
def lineage_command(table_name: str) -> None:
    """Which run made each snapshot of TABLE (namespace.table, e.g. silver.asset_prices)."""
    rows = [
        (f"{row.committed_at:%Y-%m-%d %H:%M:%S}", row.snapshot_id, row.operation,
         row.run_id or "(untagged)", row.dates, f"{row.added_records:,}",
         f"{row.deleted_records:,}")
        for row in table_lineage(table_name)
    ]
    drawn = table(f"Lineage of {table_name}", LINEAGE_COLUMNS, rows, right=("+rows", "-rows"))
    for column in drawn.columns:
        column.no_wrap = column.header in ("run id", "dates")
    # Piped, the table is as wide as it needs: run ids and dates are never cut.
    console(width=1000).print(drawn)


# ----- lab maintain -----

DEFAULT_POLICY = maintain.Policy()


@click.command(
    "maintain", cls=LabCommand, writes=True,
    short_help="compact files, rewrite manifests, expire snapshots, remove orphans (safe defaults)",
    help=verbatim(maintain.__doc__),
    epilog="TABLE: namespace.table (default: every silver and gold table)",
)
@click.argument("tables", nargs=-1, metavar="[TABLE]...")
@click.option("--older-than", default=f"{DEFAULT_POLICY.older_than.days}d", metavar="AGE",
              help="expire snapshots older than AGE, e.g. 7d, 12h, 0s "
                   f"(default: {DEFAULT_POLICY.older_than.days}d)")
@click.option("--retain-last", type=int, default=DEFAULT_POLICY.retain_last, metavar="N",
              help="always keep the last N snapshots of each branch "
                   f"(default: {DEFAULT_POLICY.retain_last})")
@click.option("--orphan-older-than", default=f"{DEFAULT_POLICY.orphan_older_than.days}d",
              metavar="AGE", help="delete orphan files only when older than AGE, at least 1d "
                                  f"(default: {DEFAULT_POLICY.orphan_older_than.days}d)")
@click.option("--min-input-files", type=int, default=DEFAULT_POLICY.min_input_files, metavar="N",
              help="compact a partition only when it has N small files "
                   f"(default: {DEFAULT_POLICY.min_input_files})")
@click.option("--dry-run", is_flag=True, help="measure and say what would be done; change nothing")
def maintain_command(tables: tuple[str, ...], older_than: str, retain_last: int,
                     orphan_older_than: str, min_input_files: int, dry_run: bool) -> None:
    policy = maintain.Policy(
        older_than=maintain.parse_duration(older_than),
        retain_last=retain_last,
        orphan_older_than=maintain.parse_duration(orphan_older_than),
        min_input_files=min_input_files,
    )
    maintain.maintain(tables, policy, dry_run=dry_run, on_report=render_report)


def render_report(report: maintain.MaintenanceReport) -> None:
    """A maintenance report as a before/after table and the steps taken."""
    columns = ["measure", "before"] if report.dry_run else ["measure", "before", "after"]
    rows = [
        (measure, _human(before, measure)) if report.dry_run else
        (measure, _human(before, measure), _human(after, measure))
        for measure, before, after in report.comparison()
    ]
    console(width=110).print(
        table(f"Maintenance of {report.table}", columns, rows, right=("before", "after"))
    )
    for step, outcome in report.steps:
        say(f"  {step}: {outcome}")
    if report.after is None:
        say("  dry run: nothing changed")
        return
    say(f"  rows read back: {report.after.rows:,}, same data: "
         f"{'yes' if report.data_unchanged else 'NO'}; "
         f"tags and branches kept: {', '.join(sorted(report.after.refs)) or '-'}")


def _human(value: Any, measure: str) -> str:
    """A measure as people read it: sizes in KB, MB or GB, counts with thousands separators."""
    if value == "":
        return ""
    if measure == "data bytes":
        size = float(value)
        for unit in ("B", "KB", "MB", "GB"):
            if size < 1024 or unit == "GB":
                return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
            size /= 1024
    return f"{value:,}" if isinstance(value, int) else str(value)


# ----- lab spark-archive -----


@click.command("spark-archive", cls=LabCommand,
               short_help="build the Spark driver's class archive (faster Spark starts; "
                          "make setup runs it)")
def spark_archive_command() -> None:
    """Build the Spark driver's class archive: faster Spark starts (make setup runs it)."""
    settings = get_settings()
    if not settings.is_local:
        say("spark-archive: not used by the compose profile (its Spark has its own image)")
        return
    began = time.perf_counter()
    path, built = spark_archive.build(ARCHIVE_TRAINING, settings)
    size = path.stat().st_size / 2**20
    if built:
        say(f"spark-archive: built {path} ({size:.0f} MB) in "
             f"{time.perf_counter() - began:.0f} s")
    else:
        say(f"spark-archive: up to date, {path} ({size:.0f} MB)")


COMMANDS: list[click.Command] = [lineage_command, maintain_command, spark_archive_command]
