"""``lab build-exercises``: generate the learner's notebooks/ from the solutions/ notebooks.

Every region between a line ``### BEGIN SOLUTION`` and a line ``### END SOLUTION`` becomes a
stub: in a code cell, the author's comment lines right after ``BEGIN`` (or a generic one) and
``raise NotImplementedError("Exercise NN.k: ...")``; in a markdown cell, *Your answer here.*
Everything else is kept as it is, outputs are stripped, and the JSON is written the same way
every time, so ``--check`` is a byte comparison.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lab_env.errors import LabError
from lab_env.paths import REPO

if TYPE_CHECKING:
    from nbformat import NotebookNode

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
MARKDOWN_ANSWER = "*Your answer here.*"
# A solution cell whose output is a fact of the seeded sample (a row count, a schema, a check's
# verdict): its reference output stays in the committed notebook and nbval compares it.
REFERENCE_TAG = "nbval-check-output"

_BEGIN_LINE = re.compile(r"^(\s*)### BEGIN SOLUTION\s*$")
_END_LINE = re.compile(r"^\s*### END SOLUTION\s*$")
_COMMENT_LINE = re.compile(r"^\s*#(?!##)")
# A check called as ``[checks.]<module>.<function>(...)`` where lab_env/course/checks/<module>.py
# decorates <function> with @exercise, or defined in the cell itself: ``exercise("id"``.
_CHECK_CALL = re.compile(r"\b(\w+)\.(\w+)\s*\(")
_INLINE_CHECK = re.compile(
    r"""\bexercise\(\s*["'](?P<id>[\w.-]+)["'](?:\s*,\s*(?P<q>["'])(?P<title>.*?)(?P=q))?"""
)
_STUB_RAISE = re.compile(r"""NotImplementedError\(\s*["']Exercise ([\w.-]+):""")


@dataclass(frozen=True)
class Drift:
    """One learner notebook that does not match what its solution generates."""

    path: Path
    problem: str  # "out of date", "missing" or "orphan"


def milestone(notebook: Path) -> str:
    """The milestone number of ``NN_topic.ipynb`` ("02"), or the whole stem if it has none."""
    head = notebook.stem.split("_", 1)[0]
    return head if head.isdigit() else notebook.stem


@functools.cache
def _module_exercises(module: str) -> dict[str, tuple[str, str]]:
    """Function name -> (exercise id, title) of the ``@exercise`` checks in a checks module."""
    try:
        spec = importlib.util.find_spec(f"lab_env.course.checks.{module}")
    except (ImportError, ValueError):
        return {}
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return {}
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    found: dict[str, tuple[str, str]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for deco in node.decorator_list:
            if (
                isinstance(deco, ast.Call)
                and _called_name(deco.func) == "exercise"
                and deco.args
                and isinstance(deco.args[0], ast.Constant)
                and isinstance(deco.args[0].value, str)
            ):
                title = deco.args[1] if len(deco.args) > 1 else None
                found[node.name] = (
                    deco.args[0].value,
                    str(title.value) if isinstance(title, ast.Constant) else "",
                )
    return found


def _called_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _checks(source: str) -> list[tuple[str, str]]:
    hits: list[tuple[int, str, str]] = []
    for match in _CHECK_CALL.finditer(source):
        found = _module_exercises(match.group(1)).get(match.group(2))
        if found:
            hits.append((match.start(), *found))
    hits += [(m.start(), m["id"], m["title"] or "") for m in _INLINE_CHECK.finditer(source)]
    return [(exercise_id, title) for _, exercise_id, title in sorted(hits)]


def checked_exercises(source: str) -> list[str]:
    """Exercise ids whose checks a code cell calls, in the order they appear."""
    return list(dict.fromkeys(exercise_id for exercise_id, _ in _checks(source)))


def check_titles(source: str) -> dict[str, str]:
    """Exercise id -> title of the checks a code cell calls, where the title is a literal."""
    return {exercise_id: title for exercise_id, title in _checks(source) if title}


def stub_exercises(source: str) -> list[str]:
    """Exercise ids of the generated stubs still present in a code cell."""
    return list(dict.fromkeys(m.group(1) for m in _STUB_RAISE.finditer(source)))


def _regions(lines: list[str], where: str) -> list[tuple[int, int]]:
    """(begin, end) line indexes of each marked region; unbalanced markers raise."""
    regions: list[tuple[int, int]] = []
    begin: int | None = None
    for index, line in enumerate(lines):
        if _BEGIN_LINE.match(line):
            if begin is not None:
                raise _unbalanced(where, f"a second {BEGIN} on line {index + 1} before {END}")
            begin = index
        elif _END_LINE.match(line):
            if begin is None:
                raise _unbalanced(where, f"{END} on line {index + 1} has no {BEGIN} before it")
            regions.append((begin, index))
            begin = None
    if begin is not None:
        raise _unbalanced(where, f"{BEGIN} on line {begin + 1} is never closed")
    return regions


def _unbalanced(where: str, detail: str) -> LabError:
    return LabError(
        f"Unbalanced solution markers in {where}: {detail}.",
        f"pair every '{BEGIN}' with an '{END}' line in that cell.",
    )


def _code_stub(indent: str, comments: list[str], exercise_id: str) -> list[str]:
    """The author's comment lines (what to write), then the raise that marks the stub."""
    lines = [indent + c.strip() for c in comments] or [f"{indent}# Write your solution here."]
    message = f"Exercise {exercise_id}: replace this stub with your solution"
    return [*lines, f'{indent}raise NotImplementedError("{message}")']


def _strip_regions(
    source: str, where: str, markdown: bool, ids: Iterable[str]
) -> tuple[str, int]:
    """``source`` with each region replaced by its stub, and how many regions there were."""
    lines = source.split("\n")
    regions = _regions(lines, where)
    if not regions:
        return source, 0
    ids = iter(ids)
    out: list[str] = []
    position = 0
    for begin, end in regions:
        out += lines[position:begin]
        indent = _BEGIN_LINE.match(lines[begin]).group(1)  # type: ignore[union-attr]
        if markdown:
            out.append(indent + MARKDOWN_ANSWER)
        else:
            comments = []
            for line in lines[begin + 1 : end]:
                if not _COMMENT_LINE.match(line):
                    break
                comments.append(line)
            out += _code_stub(indent, comments, next(ids))
        position = end + 1
    out += lines[position:]
    return "\n".join(out), len(regions)


def _region_ids(notebook: Path, cells: list[NotebookNode]) -> dict[int, list[str]]:
    """Exercise id of each code region, per cell index: the next check at or after its cell.

    A region with no check after it is numbered by its position in the notebook instead.
    """
    number = milestone(notebook)
    ids: dict[int, list[str]] = {}
    count = 0
    for index, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        where = f"{notebook.name} cell {index} (id {cell.get('id', '?')})"
        regions = _regions(cell.source.split("\n"), where)
        for _ in regions:
            count += 1
            following = next(
                (
                    found[0]
                    for later in cells[index:]
                    if later.cell_type == "code" and (found := checked_exercises(later.source))
                ),
                None,
            )
            ids.setdefault(index, []).append(following or f"{number}.{count}")
    return ids


def learner_notebook(solution: Path) -> tuple[str, int]:
    """The learner's version of ``solution`` as notebook JSON text, and its number of stubs."""
    import nbformat

    nb = nbformat.read(str(solution), as_version=4)
    ids = _region_ids(solution, nb.cells)
    stubs = 0
    for index, cell in enumerate(nb.cells):
        where = f"{solution.name} cell {index} (id {cell.get('id', '?')})"
        if cell.cell_type in ("code", "markdown"):
            cell.source, count = _strip_regions(
                cell.source, where, cell.cell_type == "markdown", ids.get(index, [])
            )
            stubs += count if cell.cell_type == "code" else 0
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            # the reference outputs are CI's: the learner's copy keeps none of their markers
            cell.metadata.pop("keep_output", None)
            tags = [t for t in cell.metadata.get("tags", []) if t != REFERENCE_TAG]
            if tags:
                cell.metadata["tags"] = tags
            else:
                cell.metadata.pop("tags", None)
        if nb.nbformat_minor >= 5 and "id" not in cell:
            # nbformat would invent a random id; derive a stable one so --check stays exact
            cell.id = hashlib.sha1(f"{solution.name}:{index}".encode()).hexdigest()[:8]
    text = nbformat.writes(nb, version=4)
    return (text if text.endswith("\n") else text + "\n"), stubs


def solution_notebooks(root: Path = REPO) -> list[Path]:
    """The solution notebooks under ``root``, by name; no solutions/ folder is an error."""
    folder = root / "solutions"
    if not folder.is_dir():
        raise LabError(
            f"No solutions/ folder under {root}.",
            "run this from the lab's repository or pass --root /path/to/repo.",
        )
    return sorted(folder.glob("*.ipynb"))


def find_drift(root: Path = REPO) -> list[Drift]:
    """Every learner notebook under ``root`` that is out of date, missing or orphaned."""
    solutions = solution_notebooks(root)
    target = root / "notebooks"
    drift = []
    for solution in solutions:
        path = target / solution.name
        expected, _ = learner_notebook(solution)
        if not path.is_file():
            drift.append(Drift(path, "missing"))
        elif path.read_bytes() != expected.encode("utf-8"):
            drift.append(Drift(path, "out of date"))
    names = {s.name for s in solutions}
    if target.is_dir():
        drift += [Drift(p, "orphan") for p in sorted(target.glob("*.ipynb")) if p.name not in names]
    return drift


def build(root: Path = REPO) -> list[str]:
    """Write notebooks/ from solutions/ under ``root``, remove orphans; one line per change."""
    solutions = solution_notebooks(root)
    target = root / "notebooks"
    target.mkdir(exist_ok=True)
    changes = []
    for solution in solutions:
        path = target / solution.name
        text, stubs = learner_notebook(solution)
        data = text.encode("utf-8")
        if path.is_file() and path.read_bytes() == data:
            continue
        path.write_bytes(data)
        changes.append(f"wrote notebooks/{path.name} ({stubs} exercise stub(s))")
    names = {s.name for s in solutions}
    for orphan in sorted(target.glob("*.ipynb")):
        if orphan.name not in names:
            orphan.unlink()
            changes.append(f"removed notebooks/{orphan.name} (no solutions/{orphan.name})")
    return changes


def record_reference_outputs(solution: Path, executed: Path) -> list[str]:
    """Copy the outputs of ``solution``'s reference cells from an executed copy of it.

    Cells are matched by id. Streams are joined as nbval joins them, execution counts dropped,
    and ``keep_output`` set so nbstripout keeps the output on commit. Returns the cells changed.
    """
    import nbformat
    from nbval.plugin import coalesce_streams

    nb = nbformat.read(str(solution), as_version=4)
    ran = {c.get("id"): c for c in nbformat.read(str(executed), as_version=4).cells}
    changed = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or REFERENCE_TAG not in cell.metadata.get("tags", []):
            continue
        if cell.get("id") not in ran:
            raise LabError(
                f"{executed} has no cell {cell.get('id')!r} ({solution.name} cell {index}).",
                "execute the current solutions again (bench/notebook_suite.py --keep).",
            )
        new = coalesce_streams([nbformat.from_dict(o) for o in ran[cell.id].get("outputs", [])])
        for output in new:
            if output.get("output_type") == "execute_result":
                output["execution_count"] = None
        if new != cell.outputs or not cell.metadata.get("keep_output"):
            cell.outputs = new
            cell.metadata["keep_output"] = True
            changed.append(f"{solution.name} cell {index}")
        cell.execution_count = None
    if changed:
        text = nbformat.writes(nb, version=4)
        solution.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return changed


def record_all_reference_outputs(root: Path, executed: Path) -> list[str]:
    """:func:`record_reference_outputs` for every solution under ``root`` that has an executed
    copy of the same name in ``executed``; returns the cells changed."""
    return [
        change
        for solution in solution_notebooks(root)
        if (executed / solution.name).is_file()
        for change in record_reference_outputs(solution, executed / solution.name)
    ]
