"""Option types shared by the commands: dates, ports, counts that cannot be negative."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from lab_env.dates import parse_date


class DateType(click.ParamType):
    """``2025-03-31``; anything else is a usage error that shows the form."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return parse_date(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DATE = DateType()
# A TCP port on 127.0.0.1; 0 asks for any free one.
PORT = click.IntRange(0, 65535)
# Counts and rates that may be zero but never negative.
COUNT = click.IntRange(min=0)
AMOUNT = click.FloatRange(min=0)


class Several(click.Option):
    """An option that takes one or more values: ``--steps silver gold`` (or, repeated,
    ``--steps silver --steps gold``). A :class:`~lab_env.cli.base.LabCommand` spreads the values
    that follow such an option over repeats of it before click parses the line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["multiple"] = True
        super().__init__(*args, **kwargs)


def spread(args: list[str], options: set[str]) -> list[str]:
    """``--steps a b --full-refresh`` -> ``--steps a --steps b --full-refresh`` for the option
    names in ``options``; every other word stays where it is."""
    spread_args: list[str] = []
    current: str | None = None
    for arg in args:
        if arg.startswith("-"):
            current = arg if arg in options else None
        elif current is not None and spread_args[-1] != current:
            spread_args.append(current)
        spread_args.append(arg)
    return spread_args
