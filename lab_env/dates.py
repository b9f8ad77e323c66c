"""Dates from the command line, and date ranges: one parser and one rule for every command."""

from __future__ import annotations

import datetime as dt

from lab_env.errors import LabError


def parse_date(text: str) -> dt.date:
    """``2025-03-31`` as a date; anything else a ValueError that shows the form."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date like 2025-03-31") from None


def check_range(start: dt.date, end: dt.date) -> None:
    """Both days inclusive; a range that ends before it starts is a one-line LabError."""
    if end < start:
        raise LabError(f"The range {start}..{end} ends before it starts.",
                       "swap --start and --end.")
