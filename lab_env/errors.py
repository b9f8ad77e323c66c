"""Errors a learner can act on: one line that says what is wrong and what to do."""

from __future__ import annotations

import re

FIX = " Fix: "


class LabError(Exception):
    """A problem with the lab's environment or inputs, with the fix in the message.

    The CLI prints ``str(error)`` on one line (the traceback only with ``--verbose``) and exits
    with ``exit_code``; in a notebook the message is the last line of the traceback, where a
    learner looks.

    A problem that quotes another error's message (a notebook cell that raised a LabError, say)
    would carry two fixes: the quoted one is kept first and this one follows it, so the line
    reads "... Fix: <inner fix>; <outer fix>" with one "Fix:".
    """

    exit_code = 2

    def __init__(self, problem: str, fix: str | None = None) -> None:
        problem = _one_period(problem)
        if FIX in problem:
            problem, inner = problem.split(FIX, 1)
            fix = f"{_one_period(inner).rstrip('.')}; {fix}" if fix else inner
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}{FIX}{fix}" if fix else problem)


class ConfigError(LabError):
    """The settings (LAB_* variables or .env) are invalid."""


def one_line(text: str) -> str:
    """``text`` on a single line: every run of whitespace, newlines included, becomes a space."""
    return " ".join(text.split())


def _one_period(text: str) -> str:
    """A sentence quoted with its own full stop and then closed again ends in one, not two."""
    return re.sub(r"(?<!\.)\.\.$", ".", text.strip())
