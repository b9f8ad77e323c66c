"""A learner's retry: a wrong answer fails its check, the fixed one passes the next check, with
no reset by hand (issue 15). Shared by tests/test_clean_retries.py (milestones 00-04, each
building its start state) and tests/test_notebooks.py (05-10, from the notebook CI's states).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.pipeline_runs import REPO, lab


@dataclass(frozen=True)
class Retry:
    """One typical mistake of a milestone (docs/mistakes.md), as a text change of its solution."""

    notebook: str
    exercise: str
    right: str  # one line of the solution the mistake replaces
    mistake: str
    hint: str  # what the check's FAIL line says about this mistake
    # what the wrong answer writes into LAB_HOME (None: its mistake writes nothing that stays)
    left_by_mistake: Callable[[Path], bool] | None = None


def learner_copy(folder: Path, retry: Retry, *, wrong: bool) -> Path:
    """The course notebook with every exercise answered: all right, or with the mistake."""
    text = (REPO / "solutions" / retry.notebook).read_text()
    right, mistake = (json.dumps(s)[1:-1] for s in (retry.right, retry.mistake))
    assert right in text, f"{retry.notebook} no longer holds {retry.right!r}"
    # laid out as in the repository: notebooks/ beside sql/ (04 reads its queries there) and
    # dags/ (05 loads lakehouse_daily from there)
    (folder / "notebooks").mkdir(parents=True, exist_ok=True)
    for beside in ("sql", "dags"):
        (folder / beside).symlink_to(REPO / beside, target_is_directory=True)
    path = folder / "notebooks" / retry.notebook
    path.write_text(text.replace(right, mistake, 1) if wrong else text)
    return path


def fail_line(home: Path, retry: Retry) -> str:
    """The FAIL line the exercise's check printed in the last `lab check` of its notebook."""
    import nbformat

    from lab_env.course.checks import CHECK_MARKER

    executed = nbformat.read(home / "runs" / "checks" / retry.notebook, as_version=4)
    printed = "".join(out.get("text", "") for cell in executed.cells
                      for out in cell.get("outputs", []))
    lines = [line for line in printed.splitlines()
             if line.startswith(f"{CHECK_MARKER} {retry.exercise} FAIL")]
    assert lines, f"no FAIL line of {retry.exercise} in the executed copy:\n{printed[-3000:]}"
    return lines[0]


def passed(output: str) -> tuple[int, int]:
    found = re.search(r"(\d+)/(\d+) exercises passed", output)
    assert found, output
    return int(found[1]), int(found[2])


def retry_after_a_mistake(home: Path, folder: Path, retry: Retry, first_start: str) -> None:
    """``lab check`` the wrong copy, then the fixed one, in ``home``; the first check starts from
    the milestone's start state as ``first_start`` says ("built by" or "kept state")."""
    milestone = retry.notebook[:2]
    wrong = lab(home, "check", str(learner_copy(folder / "wrong", retry, wrong=True)))
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert first_start in wrong.stdout, wrong.stdout
    assert re.search(rf"{re.escape(retry.exercise)}\s.*failed", wrong.stdout), wrong.stdout
    assert retry.hint in fail_line(home, retry)  # failed for this mistake, not another error
    if retry.left_by_mistake:
        assert retry.left_by_mistake(home), "the wrong answer no longer writes what it used to"

    fixed = lab(home, "check", str(learner_copy(folder / "fixed", retry, wrong=False)))
    done, total = passed(fixed.stdout)
    assert fixed.returncode == 0 and done == total, fixed.stdout + fixed.stderr
    assert "kept state" in fixed.stdout  # started again from the kept copy: no rebuild
    assert (home / "states" / milestone / "state.json").is_file()
    # the moment of the reset: a check in JupyterLab names an earlier failed attempt only after it
    started = json.loads((home / "states" / "started.json").read_text())
    assert started["milestone"] == int(milestone)
    if retry.left_by_mistake and milestone != "01":  # 01's namespaces are in every later start
        assert not retry.left_by_mistake(home), "what the wrong answer wrote is still there"
