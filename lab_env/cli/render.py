"""The one place output is drawn: a rich console, and tables built the same way everywhere."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

# Columns whose values are numbers are right-aligned.
NUMERIC_PREFIXES = ("rows", "commits", "files", "bytes", "seconds", "written", "skipped",
                    "rejected", "count")


def console(width: int | None = None) -> Console:
    """The console every command prints through (piped into a log, rich would fold long lines
    at 80 columns: the width is then 140, or ``width``)."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else (width or 140))


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    right: Iterable[str] = (),
) -> Table:
    """A table with these columns and rows (values shown with ``str``); ``right``: columns to
    right-align besides those that hold counts."""
    from rich.table import Table

    aligned = set(right)
    drawn = Table(title=title)
    for column in columns:
        numeric = column in aligned or column.startswith(NUMERIC_PREFIXES)
        drawn.add_column(column, justify="right" if numeric else "left")
    for row in rows:
        drawn.add_row(*(str(value) for value in row))
    return drawn


def say(line: str) -> None:
    """One line as written: no rich markup, never folded (scripts and logs read it)."""
    console().print(line, markup=False, emoji=False, soft_wrap=True)


def verbatim(doc: str | None) -> str:
    """A module docstring as a command's help, its lines kept as written (click rewraps every
    paragraph not marked with ``\\b``, and would run a list into one line)."""
    return "\n\n".join(f"\b\n{part}" for part in inspect.cleandoc(doc or "").split("\n\n"))
