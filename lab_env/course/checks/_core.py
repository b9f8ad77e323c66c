"""The machinery behind every self-check: results, printing, and the progress record."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ParamSpec

from lab_env.config import Settings, get_settings
from lab_env.course import states
from lab_env.errors import LabError

# Printed in front of every check line, so `lab check` can find results in a notebook's outputs.
CHECK_MARKER = "[check]"

P = ParamSpec("P")


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one exercise's check."""

    exercise: str  # "02.1": milestone 02, exercise 1
    title: str
    passed: bool
    message: str  # what passed, or the hint

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        icon = "✅" if self.passed else "❌"
        return f"{CHECK_MARKER} {self.exercise} {verdict} {icon} {self.title}: {self.message}"

    def __bool__(self) -> bool:
        return self.passed

    def _ipython_display_(self) -> None:
        """A check cell's value shows nothing: the check has printed its line already."""


@dataclass(frozen=True)
class _Verdict:
    passed: bool
    message: str


def ok(message: str) -> _Verdict:
    """What a check returns when the learner's result is right."""
    return _Verdict(True, message)


def fail(hint: str) -> _Verdict:
    """What a check returns when it is not right yet: say what to look at or do."""
    return _Verdict(False, hint)


def progress_file(settings: Settings | None = None) -> Path:
    """The learner's check results: ``LAB_HOME/progress/checks.jsonl``."""
    return (settings or get_settings()).lab_home / "progress" / "checks.jsonl"


def _record(result: CheckResult) -> None:
    if not get_settings().record_progress:
        return
    path = progress_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = asdict(result) | {"at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")}
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")
    except OSError:
        pass  # a read-only LAB_HOME must not hide the verdict itself


def load_results() -> dict[str, CheckResult]:
    """The latest result of every exercise checked under the current LAB_HOME."""
    path = progress_file()
    latest: dict[str, CheckResult] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                row.pop("at", None)
                latest[row["exercise"]] = CheckResult(**row)
    return latest


def exercise(
    exercise_id: str, title: str
) -> Callable[[Callable[P, _Verdict]], Callable[P, CheckResult]]:
    """Turn a function returning :func:`ok`/:func:`fail` into a check that prints and records."""

    def wrap(func: Callable[P, _Verdict]) -> Callable[P, CheckResult]:
        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> CheckResult:
            try:
                verdict = func(*args, **kwargs)
            except NotImplementedError:
                verdict = fail(
                    "this exercise is not written yet: replace the stub above and re-run."
                )
            except LabError as exc:
                verdict = fail(str(exc))
            except Exception as exc:  # the learner's result could not even be inspected
                first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
                verdict = fail(f"could not inspect your result ({type(exc).__name__}: {first}).")
            message = verdict.message
            if not verdict.passed:
                message += earlier_attempt_note(exercise_id)
            result = CheckResult(exercise_id, title, verdict.passed, message)
            print(result.line())
            _record(result)
            return result

        run.exercise_id = exercise_id  # type: ignore[attr-defined]
        return run

    return wrap


# Milestones whose exercises write the lakehouse: what an earlier attempt wrote can stay there
# (bronze never overwrites an answer, silver and gold keep rows by key, checkpoints stay).
WRITING_MILESTONES = range(2, 10)


def earlier_failure(exercise_id: str) -> dt.datetime | None:
    """When this exercise last failed under this LAB_HOME since the lakehouse was last put back
    to a milestone's start (``lab restore``, ``lab check``); None if it has not."""
    path = progress_file()
    if not path.is_file():
        return None
    reset = states.last_start(get_settings())
    failed = None
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            at = dt.datetime.fromisoformat(row["at"])
        except (ValueError, KeyError, TypeError):
            continue
        if row.get("exercise") == exercise_id and not row.get("passed") and (
                reset is None or at > reset):
            failed = at
    return failed


def earlier_attempt_note(exercise_id: str) -> str:
    """What a failing check adds when an earlier attempt at it failed too and was never reset.

    The learner may have fixed the answer while rows the wrong one wrote are still there; say
    so, and give the one command that starts the milestone clean.
    """
    milestone = int(exercise_id.split(".", 1)[0])
    # production runs (`lab run`, the DAG) keep no progress: their failures are no attempts
    if milestone not in WRITING_MILESTONES or not get_settings().record_progress:
        return ""
    try:
        failed = earlier_failure(exercise_id)
    except OSError:
        return ""
    if failed is None:
        return ""
    return (f" Note: an earlier attempt at {exercise_id} failed too ({failed:%H:%M} UTC), and "
            "what it wrote is still in the lakehouse (bronze never overwrites an answer, silver "
            "and gold keep rows by key), so it can fail this check even once your answer is "
            f"right. If you changed your answer, start milestone {milestone:02d} clean: run "
            f"`lab restore {milestone}` in a terminal, then Kernel > Restart Kernel and Run All "
            f"Cells (or run `lab check` on the notebook: it starts clean by itself).")


def upstream_first(exercise_id: str, what: str) -> _Verdict:
    """The verdict when an earlier exercise's result is wrong: name it once, do not repeat it."""
    return fail(f"{what} is not right yet, and this exercise builds on it: fix {exercise_id} "
                "first (its check says what is wrong), then re-run this cell.")


def learner_cell(contains: str, assigns: str | None = None) -> str | None:
    """The source of the newest cell run in this IPython kernel that contains ``contains``
    (and, with ``assigns``, assigns that name at its top level).

    Checks use it to run the learner's own code again (twice, or on a planted case). Outside a
    kernel, or when no such cell ran, None.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the lab
        return None
    shell = get_ipython()
    if shell is None:
        return None
    history = shell.user_ns.get("In") or []
    for source in reversed(history):  # newest first; the running cell is the last entry
        if not isinstance(source, str) or contains.lower() not in source.lower():
            continue
        if assigns is None or _assigns(source, assigns):
            return source
    return None


def kernel_namespace() -> dict[str, Any]:
    """A copy of the IPython kernel's user namespace (empty outside a kernel)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return {}
    shell = get_ipython()
    return dict(shell.user_ns) if shell is not None else {}


def replay(source: str, namespace: dict[str, Any], *, until: str | None = None) -> dict[str, Any]:
    """Run a cell's statements in ``namespace`` (a copy the caller owns), printing nothing.

    ``until``: stop after the last top-level statement that assigns this name, so what the
    cell does next (writing tables, printing) is left out. Returns the namespace.
    """
    import ast
    import contextlib
    import io

    tree = ast.parse(source)
    body = tree.body
    if until is not None:
        last = max((i for i, node in enumerate(body) if until in _assigned(node)), default=None)
        if last is None:
            raise LabError(f"the cell does not assign {until}.", f"assign {until} in it.")
        body = body[: last + 1]
    # never run a check from inside a check
    body = [node for node in body if "checks." not in ast.unparse(node)]
    code = compile(ast.Module(body=body, type_ignores=[]), "<your cell>", "exec")
    with contextlib.redirect_stdout(io.StringIO()):
        exec(code, namespace)
    return namespace


def _assigns(source: str, name: str) -> bool:
    import ast

    try:
        return any(name in _assigned(node) for node in ast.parse(source).body)
    except SyntaxError:
        return False


def _assigned(node: Any) -> set[str]:
    import ast

    names: set[str] = set()
    targets = node.targets if isinstance(node, ast.Assign) else (
        [node.target] if isinstance(node, ast.AnnAssign | ast.AugAssign) else [])
    for target in targets:
        names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names
