"""The ``lab`` command: ``lab doctor``, ``lab run`` and the lab's other tools.

Every failure ends as one line, ``error: <what is wrong> Fix: <what to do>``, and a non-zero
exit code; ``lab --verbose`` adds the traceback. :func:`as_lab_error` is the one place that
turns what the libraries raise (SQLite, pyiceberg, the OS, Spark) into such a line.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import shlex
import sqlite3
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from lab_env.errors import LabError, one_line

# Each module adds its subcommands with ``register(subparsers)``.
COMMAND_MODULES: tuple[str, ...] = (
    "lab_env.machine.doctor",
    "lab_env.jobs.runner",
    "lab_env.course.exercises",
    "lab_env.course.grading",
    "lab_env.jobs.ingest",
    "lab_env.source.replay",
    "lab_env.lake.lineage",
    "lab_env.lake.maintain",
    "lab_env.quality.report",
    "lab_env.jobs.bronze",
    "lab_env.jobs.dbt",
    "lab_env.dashboard.commands",
    "lab_env.machine.stack",
    "lab_env.streaming.broker",
    "lab_env.streaming.job",
    "lab_env.lake.spark_archive",
)
# Commands that write the lakehouse hold the LAB_HOME lock (lab_env.lake.lock) from the start, so a
# second one is refused before it prints or starts anything. (A dry run writes nothing.) A command
# with subcommands says per subcommand with ``writes`` in its defaults.
WRITERS = frozenset({"run", "ingest", "restore", "maintain"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lab", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="show full tracebacks")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _writer_lock(args, sys.argv[1:] if argv is None else list(argv)):
            return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        error = exc if isinstance(exc, LabError) else as_lab_error(exc, args)
        if args.verbose:
            traceback.print_exc()
        print(f"error: {one_line(str(error))}", file=sys.stderr)
        return error.exit_code


def _writer_lock(
    args: argparse.Namespace, argv: list[str]
) -> contextlib.AbstractContextManager[object]:
    if not getattr(args, "writes", args.command in WRITERS) or getattr(args, "dry_run", False):
        return contextlib.nullcontext()
    from lab_env.config import get_settings
    from lab_env.lake.lock import lakehouse_lock

    return lakehouse_lock(get_settings(), None, shlex.join(["lab", *argv]))


def as_lab_error(exc: BaseException, args: argparse.Namespace | None = None) -> LabError:
    """What a library raised, as a LabError with a fix (a generic one if nothing fits).

    The exception and the ones it was raised from are looked at in turn, outermost first.
    """
    chain: list[BaseException] = []
    inner: BaseException | None = exc
    while inner is not None and inner not in chain:
        chain.append(inner)
        inner = inner.__cause__ or inner.__context__
    for each in chain:
        error = _translate(each, args)
        if error is not None:
            return error
    return LabError(
        f"Unexpected {type(exc).__name__}: {_first_lines(str(exc))}.",
        "run the command again with `lab --verbose` to see the traceback; if it points into "
        "lab_env, report it with that traceback.",
    )


def _translate(exc: BaseException, args: argparse.Namespace | None) -> LabError | None:
    names = {(cls.__module__.split(".")[0], cls.__name__) for cls in type(exc).__mro__}
    if isinstance(exc, LabError):
        return exc
    if isinstance(exc, sqlite3.Error) or ("sqlalchemy", "DBAPIError") in names:
        return _catalog_error(exc)
    if ("pyiceberg", "ValidationError") in names or ("pydantic_core", "ValidationError") in names:
        return LabError(
            f"An Iceberg table's metadata file cannot be read ({_first_lines(str(exc))}).",
            "run `lab doctor`: it names the table and the file, and how to roll the table back.",
        )
    if ("nbformat", "NotJSONError") in names:
        return LabError(
            f"Not a notebook: {_first_lines(str(exc))}.",
            "pass a Jupyter notebook (.ipynb), e.g. notebooks/02_bronze.ipynb.",
        )
    if names & {("py4j", "Py4JJavaError"), ("py4j", "Py4JError"),
                ("pyspark", "PySparkException")}:
        return LabError(
            f"Spark failed: {_first_lines(str(exc))}.",
            "run `lab doctor`; `lab --verbose` shows the Java stack trace.",
        )
    if isinstance(exc, OSError):
        return _os_error(exc, args)
    return None


def _catalog_error(exc: BaseException) -> LabError:
    from lab_env.config import get_settings
    from lab_env.lake.catalog import damaged_catalog, sqlite_reason

    reason = sqlite_reason(exc)
    if "locked" in reason or "busy" in reason:
        return LabError(
            f"The Iceberg catalog is locked by another process ({reason}).",
            "wait for the other run to finish (`lab doctor` names the holder of LAB_HOME), then "
            "run this again.",
        )
    return damaged_catalog(get_settings(), reason)


def _os_error(exc: OSError, args: argparse.Namespace | None) -> LabError:
    if exc.errno == errno.EADDRINUSE:
        port = getattr(args, "port", None)
        return LabError(
            f"Port {port} on 127.0.0.1 is already in use." if port else
            "The address is already in use.",
            "pick another with --port (0: any free port), or stop the program that holds it.",
        )
    what = f"{exc.strerror or type(exc).__name__}: {exc.filename}" if exc.filename else str(exc)
    home = _lab_home()
    if exc.filename and home is not None:
        path = Path(str(exc.filename)).absolute()
        if path == home or home in path.parents or path in home.parents:
            from lab_env.lake.lock import unusable_home

            return unusable_home(home, exc)
    return LabError(
        f"{one_line(what)}.", "check that the path exists and that you may read and write it."
    )


def _lab_home() -> Path | None:
    from lab_env.config import get_settings

    try:
        return get_settings().lab_home
    except LabError:
        return None


def _first_lines(text: str, limit: int = 300) -> str:
    """The gist of a long message: its first two lines with text, no stack frames."""
    lines = [
        line.strip().lstrip(": ")
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith(("at ", "File ", "..."))
    ]
    gist = " ".join(lines[:2]).rstrip(".")
    return gist if len(gist) <= limit else gist[: limit - 3] + "..."


if __name__ == "__main__":
    sys.exit(main())
