"""Errors a learner can act on: one line that says what is wrong and what to do."""

from __future__ import annotations


class LabError(Exception):
    """A problem with the lab's environment or inputs, with the fix in the message.

    The CLI prints ``str(error)`` on one line (the traceback only with ``--verbose``);
    in a notebook the message is the last line of the traceback, where a learner looks.
    """

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} Fix: {fix}" if fix else problem)


class ConfigError(LabError):
    """The settings (LAB_* variables or .env) are invalid."""
