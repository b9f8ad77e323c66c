"""03.3's rules on cases the sample never has: the check plants a zero and a negative price.

The rules are the solution's own cell (solutions/03_silver.ipynb, exercise 03.3) with one
mistake applied as an edit of its source; its helpers (problem, number_problem, all_problems)
come from the solution too. One Spark session (the test session's); no notebook runs here.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lab_env.course.checks import silver as silver_checks
from lab_env.course.checks._core import replay
from tests.mistakes import mistake

pytestmark = pytest.mark.spark

REPO = Path(__file__).resolve().parents[1]
SILVER_NB = REPO / "solutions" / "03_silver.ipynb"
QUARANTINE = "silver.m3_quarantine"
DAYS = ("2031-01-01", "2031-01-02")  # no bronze in the test session: nothing else to quarantine
POSITIVE_RULE = (
    '    problem("priceUsd", F.col("raw.priceUsd"),\n'
    '            F.when(F.col("price_usd") <= 0, F.lit("priceUsd is not positive"))),\n'
)


def cells() -> list[str]:
    return ["".join(c["source"]) for c in json.loads(SILVER_NB.read_text())["cells"]
            if c["cell_type"] == "code"]


def solution_cell() -> str:
    (cell,) = [c for c in cells() if "### BEGIN SOLUTION" in c and "checked_points =" in c]
    return cell


def solution_helpers() -> dict[str, Any]:
    """The imports, constants and functions the solution defines before exercise 03.3."""
    namespace: dict[str, Any] = {"run_id": "test"}
    for source in cells():
        if "checked_points =" in source:
            break
        keep = [node for node in ast.parse(source).body
                if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef)
                or (isinstance(node, ast.Assign) and all(
                    isinstance(t, ast.Name) and t.id.isupper() for t in node.targets))]
        exec(compile(ast.Module(body=keep, type_ignores=[]), SILVER_NB.name, "exec"), namespace)
    return namespace


def rules_of(source: str) -> Callable[[Any], Any]:
    helpers = solution_helpers()
    return lambda typed: replay(source, dict(helpers, typed_points=typed),
                                until="checked_points")["checked_points"]


@pytest.fixture(scope="module")
def quarantine(catalog) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """An empty quarantine table: the dates have no bronze, so the table part passes."""
    schema = pa.schema([("source", pa.string()), ("bronze_key", pa.string()),
                        ("record_index", pa.int32()), ("field", pa.string()),
                        ("raw_value", pa.string()), ("reason", pa.string()),
                        ("raw_record", pa.string())])
    if catalog.table_exists(QUARANTINE):
        catalog.drop_table(QUARANTINE)
    catalog.create_table(QUARANTINE, schema=schema)
    yield QUARANTINE
    catalog.drop_table(QUARANTINE)


def test_the_solution_passes_the_planted_prices(spark, quarantine: str) -> None:  # type: ignore[no-untyped-def]
    assert POSITIVE_RULE in solution_cell()
    result = silver_checks.quarantine_reasons(*DAYS, quarantine, rules=rules_of(solution_cell()))
    assert result.passed, result.message


@pytest.mark.parametrize(
    ("edit", "hint"),
    [
        pytest.param(lambda cell: cell.replace(POSITIVE_RULE, ""), "a zero price",
                     marks=mistake("03.3", "no-positive-price-rule"), id="rule-left-out"),
        pytest.param(lambda cell: cell.replace('F.col("price_usd") <= 0', 'F.col("price_usd") < 0'),
                     "a zero price", marks=mistake("03.3", "zero-allowed"), id="zero-allowed"),
        pytest.param(lambda cell: cell.replace('F.col("price_usd") <= 0',
                                               'F.col("raw.priceUsd").startswith("-")'),
                     "a zero price", marks=mistake("03.3", "sign-of-the-string"), id="sign"),
    ],
)
def test_a_rule_the_sample_never_triggers_fails_on_the_planted_case(  # type: ignore[no-untyped-def]
    spark, quarantine: str, edit: Callable[[str], str], hint: str
) -> None:
    wrong = edit(solution_cell())
    assert wrong != solution_cell()
    result = silver_checks.quarantine_reasons(*DAYS, quarantine, rules=rules_of(wrong))
    assert not result.passed, result.message
    assert hint in result.message and "priceUsd is not positive" in result.message
    assert "planted" in result.message


@pytest.fixture
def ipython(spark) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.user_ns.update(solution_helpers())
    shell.user_ns.update(spark=spark, typed_points=silver_checks.planted_points(),
                         start_date=DAYS[0], end_date=DAYS[1])
    yield shell
    InteractiveShell.clear_instance()


@mistake("03.3", "no-positive-price-rule-in-notebook")
def test_in_a_notebook_the_check_reruns_the_learners_cell(ipython, quarantine: str) -> None:  # type: ignore[no-untyped-def]
    """The check cell as the notebook has it: the check finds the rules in the same cell."""
    solution = solution_cell()
    head = solution[: solution.index("### END SOLUTION")] + "### END SOLUTION\n"
    call = ("from lab_env import checks\n"
            f"result = checks.silver.quarantine_reasons(start_date, end_date, {quarantine!r})\n")
    ipython.run_cell(head.replace(POSITIVE_RULE, "") + call, store_history=True)
    result = ipython.user_ns["result"]
    assert not result.passed and "a zero price" in result.message, result.message
    ipython.run_cell(head + call, store_history=True)
    assert ipython.user_ns["result"].passed, ipython.user_ns["result"].message
