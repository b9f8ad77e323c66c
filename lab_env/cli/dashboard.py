"""``lab dashboard``, ``lab report`` and ``lab export``: gold for people who do not read
notebooks (:mod:`lab_env.dashboard`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from lab_env.cli.base import LabCommand
from lab_env.cli.params import DATE, PORT
from lab_env.cli.render import say
from lab_env.dashboard.serve import DEFAULT_PORT
from lab_env.errors import LabError


@click.command("dashboard", cls=LabCommand,
               short_help="serve the gold dashboard (Streamlit) on 127.0.0.1")
@click.option("--port", type=PORT, default=DEFAULT_PORT, help="port (0: any free one)")
@click.option("--address", default="127.0.0.1",
              help="interface to listen on (0.0.0.0 only inside a container)")
def dashboard(port: int, address: str) -> None:
    """Serve the gold dashboard (Streamlit) until Ctrl-C, once gold has been read."""
    from lab_env.config import get_settings
    from lab_env.dashboard.serve import serve

    settings = get_settings()
    serve(port, settings, address=address, on_ready=lambda url: say(
        f"Dashboard on {url} (gold of {settings.lab_home}; Ctrl-C stops)"))


@click.command("report", cls=LabCommand,
               short_help="write the gold report: one self-contained HTML page")
@click.option("--output", type=click.Path(path_type=Path),
              help="the file to write (default: report.html in the latest run's folder)")
@click.option("--day", type=DATE, help="the trade day to report (default: the latest)")
def report(output: Path | None, day: dt.date | None) -> None:
    """Write the gold report, the dashboard's figures as one self-contained HTML page, and
    print its path."""
    from lab_env.dashboard.report import build_report

    say(str(build_report(output, day=day)))


@click.command("export", cls=LabCommand,
               short_help="export gold as Parquet with a manifest to S3 (credentials: AWS chain)")
@click.option("--to", metavar="s3://bucket/prefix", help="where to (default: LAB_EXPORT_TARGET)")
@click.option("--start", type=DATE, help="first trade day, YYYY-MM-DD (default: all)")
@click.option("--end", type=DATE, help="last trade day, inclusive")
def export(to: str | None, start: dt.date | None, end: dt.date | None) -> None:
    """Export gold as Parquet, one file per table and day, then swap in the manifest that
    lists them; AWS credentials come from boto3's standard chain."""
    from lab_env.config import get_settings
    from lab_env.dashboard import export as exporter

    settings = get_settings()
    url = to or settings.export_target
    if not url:
        raise LabError("No export target.",
                       "give one with --to s3://bucket/prefix, or set LAB_EXPORT_TARGET.")
    target = exporter.parse_target(url)
    try:
        result = exporter.export_gold(target, start, end, settings=settings)
    except Exception as exc:
        error = exporter.as_lab_error(exc, str(target))
        if error is None:
            raise
        raise error from exc
    days = f"{result.days[0]} .. {result.days[-1]}" if result.days else "no days"
    rows = ", ".join(f"{name} {n:,}" for name, n in result.rows.items())
    say(f"Exported gold ({days}) to {result.target}: rows {rows}; files written "
         f"{result.written}, unchanged {result.unchanged}, removed {result.deleted}.")
    say(f"Manifest: {result.manifest}")


COMMANDS: list[click.Command] = [dashboard, report, export]
