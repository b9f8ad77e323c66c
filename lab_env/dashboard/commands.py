"""The M10 commands: ``lab dashboard``, ``lab report`` and ``lab export``."""

from __future__ import annotations

import argparse
from pathlib import Path

from lab_env.dates import cli_date
from lab_env.errors import LabError


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from lab_env.dashboard.serve import serve

    serve(args.port, address=args.address)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from lab_env.dashboard.report import build_report

    print(build_report(args.output, day=args.day))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from lab_env.config import get_settings
    from lab_env.dashboard import export

    settings = get_settings()
    url = args.to or settings.export_target
    if not url:
        raise LabError("No export target.",
                       "give one with --to s3://bucket/prefix, or set LAB_EXPORT_TARGET.")
    target = export.parse_target(url)
    try:
        result = export.export_gold(target, args.start, args.end, settings=settings)
    except LabError:
        raise
    except Exception as exc:
        error = export.as_lab_error(exc, str(target))
        if error is None:
            raise
        raise error from exc
    days = f"{result.days[0]} .. {result.days[-1]}" if result.days else "no days"
    rows = ", ".join(f"{name} {n:,}" for name, n in result.rows.items())
    print(f"Exported gold ({days}) to {result.target}: rows {rows}; files written "
          f"{result.written}, unchanged {result.unchanged}, removed {result.deleted}.")
    print(f"Manifest: {result.manifest}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    dashboard = subparsers.add_parser(
        "dashboard", help="serve the gold dashboard (Streamlit) on 127.0.0.1")
    dashboard.add_argument("--port", type=int, default=8501, help="port (0: any free one)")
    dashboard.add_argument("--address", default="127.0.0.1",
                           help="interface to listen on (0.0.0.0 only inside a container)")
    dashboard.set_defaults(handler=_cmd_dashboard)

    report = subparsers.add_parser(
        "report", help="write the gold report: one self-contained HTML page")
    report.add_argument("--output", type=Path,
                        help="the file to write (default: report.html in the latest run's folder)")
    report.add_argument("--day", type=cli_date,
                        help="the trade day to report (default: the latest)")
    report.set_defaults(handler=_cmd_report)

    exporter = subparsers.add_parser(
        "export", help="export gold as Parquet with a manifest to S3 (credentials: AWS chain)")
    exporter.add_argument("--to", metavar="s3://bucket/prefix",
                          help="where to (default: LAB_EXPORT_TARGET)")
    exporter.add_argument("--start", type=cli_date,
                          help="first trade day, YYYY-MM-DD (default: all)")
    exporter.add_argument("--end", type=cli_date, help="last trade day, inclusive")
    exporter.set_defaults(handler=_cmd_export)
