"""What the libraries raise (SQLite, pyiceberg, the OS, Spark), as one line with a fix.

:func:`as_lab_error` is the one place that turns such an exception into a
:class:`~lab_env.errors.LabError`; the ``lab`` command prints it as
``error: <what is wrong> Fix: <what to do>``.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lab_env.errors import LabError, one_line


def as_lab_error(exc: BaseException, params: Mapping[str, Any] | None = None) -> LabError:
    """What a library raised, as a LabError with a fix (a generic one if nothing fits).

    The exception and the ones it was raised from are looked at in turn, outermost first.
    ``params``: the command's parameters (a busy ``port`` is named in the message).
    """
    chain: list[BaseException] = []
    inner: BaseException | None = exc
    while inner is not None and inner not in chain:
        chain.append(inner)
        inner = inner.__cause__ or inner.__context__
    for each in chain:
        error = _translate(each, params or {})
        if error is not None:
            return error
    return LabError(
        f"Unexpected {type(exc).__name__}: {_first_lines(str(exc))}.",
        "run the command again with `lab --verbose` to see the traceback; if it points into "
        "lab_env, report it with that traceback.",
    )


def _translate(exc: BaseException, params: Mapping[str, Any]) -> LabError | None:
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
        return _os_error(exc, params)
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


def _os_error(exc: OSError, params: Mapping[str, Any]) -> LabError:
    if exc.errno == errno.EADDRINUSE:
        port = params.get("port")
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
