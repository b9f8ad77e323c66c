"""Self-checks that a notebook calls after each exercise.

A check inspects the learner's real result (files, tables, rows, schemas, values) and
prints one line: a pass, or a hint that says what to look at. Checks live in one module
per milestone (``lab_env.course.checks.bronze`` ...) and are written with :func:`exercise`::

    @exercise("02.1", "Bronze files land in date partitions")
    def bronze_partitions(start_date: str, end_date: str) -> CheckResult:
        ...
        if missing:
            return fail(f"no files for {missing[0]}: did you write under ingest_date=YYYY-MM-DD/?")
        return ok(f"{n} files in {days} partitions")

In a notebook: ``from lab_env import checks`` then ``checks.bronze.bronze_partitions(...)``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from lab_env.course.checks._core import (
    CHECK_MARKER,
    CheckResult,
    exercise,
    fail,
    load_results,
    ok,
)

__all__ = ["CHECK_MARKER", "CheckResult", "exercise", "fail", "load_results", "ok"]


def __getattr__(name: str) -> ModuleType:
    """Import milestone modules on first use: ``checks.bronze``, ``checks.silver`` ..."""
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{name}":
            raise AttributeError(f"lab_env.course.checks has no module {name!r}") from None
        raise
