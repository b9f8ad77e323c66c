"""The 08.x checks: each fails on a typical wrong answer with a hint naming it, and passes on
the right one. They run on a small real DuckDB file shaped like dbt's marts and on a small
Arrow table shaped like silver.asset_prices; no dbt run here."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pytest

from lab_env.course.checks import dbt as checks
from tests.mistakes import mistake

if TYPE_CHECKING:
    from _pytest.mark import ParameterSet

START, END = dt.date(2025, 3, 30), dt.date(2025, 3, 31)
ASSETS = ("bitcoin", "ethereum", "tether")


def applies(label: pytest.MarkDecorator, *values: object) -> ParameterSet:
    """A case labelled with the mistake it applies, the mistake's slug as its id."""
    return pytest.param(*values, marks=label, id=label.args[1])


@pytest.fixture(scope="module")
def marts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB file with marts.fct_asset_daily: three assets over five days."""
    path = tmp_path_factory.mktemp("dbt-checks") / "lakehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA marts")
        con.execute("""CREATE TABLE marts.fct_asset_daily (
            trade_date DATE, asset_id VARCHAR, symbol VARCHAR, open_usd DECIMAL(38,24),
            high_usd DECIMAL(38,24), low_usd DECIMAL(38,24), close_usd DECIMAL(38,24),
            observations INTEGER, daily_return DOUBLE)""")
        for day in range(5):
            for n, asset in enumerate(ASSETS):
                low = Decimal(10 * (n + 1) + day)
                con.execute(
                    "INSERT INTO marts.fct_asset_daily VALUES (?, ?, ?, ?, ?, ?, ?, 24, 0.01)",
                    [START - dt.timedelta(days=4 - day), asset, asset[:3].upper(),
                     low + 1, low + 3, low, low + 2],
                )
    return path


def prices() -> pa.Table:
    """silver.asset_prices' columns: each day's points, and the run's first day's history
    reaching an hour into the day before (the late rows of a run)."""
    rows = []
    for day in (START - dt.timedelta(days=2), START - dt.timedelta(days=1), START, END):
        for hour in (0, 12, 23):
            rows.append(("bitcoin", dt.datetime.combine(day, dt.time(hour), dt.UTC), day))
    overlap = dt.datetime.combine(START - dt.timedelta(days=1), dt.time(23, 30), dt.UTC)
    rows.append(("bitcoin", overlap, START))
    asset_id, observed_at, ingest_date = zip(*rows, strict=True)
    return pa.table({
        "asset_id": pa.array(asset_id),
        "observed_at": pa.array(observed_at, pa.timestamp("us", tz="UTC")),
        "ingest_date": pa.array(ingest_date, pa.date32()),
    })


# ----- 08.1: the unique key -----


def test_unique_key_passes_on_the_grain(marts: Path) -> None:
    result = checks.unique_key(["asset_id", "trade_date"], marts)
    assert result.passed, result.message
    assert checks.unique_key(("trade_date", "asset_id"), marts).passed


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        # one row per asset: deletes every other day of it
        applies(mistake("08.1", "asset-id-only"), "asset_id", "not unique"),
        # one row per day: a whole day per key
        applies(mistake("08.1", "trade-date-only"), ["trade_date"], "not unique"),
        applies(mistake("08.1", "no-unique-key"), None, "only appends"),
        ([], "only appends"),
        # silver's grain, not the mart's
        (["asset_id", "observed_at"], "has no column 'observed_at'"),
        (["asset_id", "trade_date", "symbol"], "wider than the grain"),
    ],
)
def test_unique_key_fails_with_the_mistake_named(marts: Path, key: object, hint: str) -> None:
    result = checks.unique_key(key, marts)  # type: ignore[arg-type]
    assert not result.passed
    assert hint in result.message, result.message


def test_unique_key_says_what_to_run_without_marts(tmp_path: Path) -> None:
    result = checks.unique_key(["asset_id", "trade_date"], tmp_path / "none.duckdb")
    assert not result.passed and "build" in result.message


# ----- 08.2: late rows -----

RIGHT_WINDOW = """
    SELECT least($start, min(CAST(observed_at AS DATE))) FROM prices
    WHERE ingest_date BETWEEN $start AND $end
"""


def test_late_rows_passes_on_gold_rule() -> None:
    result = checks.late_rows(RIGHT_WINDOW, str(START), str(END), prices())
    assert result.passed, result.message
    assert str(START - dt.timedelta(days=1)) in result.message


@pytest.mark.parametrize(
    ("sql", "hint"),
    [
        # the run's dates only: the overlap hour of the day before is missed
        applies(mistake("08.2", "run-dates-only"),
                "SELECT CAST($start AS DATE) WHERE $end IS NOT NULL",
                "late for earlier days are missed"),
        # the days observed in the run: the same mistake, in SQL
        ("SELECT min(CAST(observed_at AS DATE)) FROM prices "
         "WHERE CAST(observed_at AS DATE) BETWEEN $start AND $end", "late for earlier days"),
        # "after what is stored" (max(trade_date) of the target): nothing earlier ever again
        applies(mistake("08.2", "after-what-is-stored"),
                "SELECT max(CAST(observed_at AS DATE)) + 1 FROM prices WHERE ingest_date < "
                "$start AND $end IS NOT NULL", "late for earlier days are missed"),
        # every row of silver: correct, but a full rebuild every run
        applies(mistake("08.2", "all-of-silver"),
                "SELECT min(CAST(observed_at AS DATE)) FROM prices WHERE $start <= $end",
                "reaches back too far"),
        ("SELECT least(CAST($start AS DATE), CAST($end AS DATE))", "late for earlier days"),
        ("SELECT min(observed_at) FROM prices WHERE ingest_date = 2025 AND $start < $end",
         "does not run"),
        ("SELECT DATE '2025-03-29'", "must use the run's dates"),
    ],
)
def test_late_rows_fails_with_the_mistake_named(sql: str, hint: str) -> None:
    result = checks.late_rows(sql, str(START), str(END), prices())
    assert not result.passed
    assert hint in result.message, result.message


# ----- 08.3: a test that can fail -----

RIGHT_TEST = """
    SELECT * FROM {{ ref('fct_asset_daily') }}
    WHERE close_usd < low_usd OR close_usd > high_usd
"""


def test_singular_test_passes_when_it_catches_the_planted_row(marts: Path) -> None:
    result = checks.singular_test(RIGHT_TEST, marts)
    assert result.passed, result.message


@pytest.mark.parametrize(
    ("sql", "hint"),
    [
        # a condition no row can meet: the test can never fail
        applies(mistake("08.3", "and-instead-of-or"),
                "SELECT * FROM {{ ref('fct_asset_daily') }} WHERE close_usd < low_usd "
                "AND close_usd > high_usd", "cannot fail"),
        # the wrong column: open, not close
        ("SELECT * FROM {{ ref('fct_asset_daily') }} WHERE open_usd < low_usd "
         "OR open_usd > high_usd", "cannot fail"),
        # a count returns one row, always: the test fails on correct data
        applies(mistake("08.3", "count-star"),
                "SELECT count(*) FROM {{ ref('fct_asset_daily') }} WHERE close_usd > high_usd",
                "returns rows on correct data"),
        # a table name instead of ref(): dbt would not know the dependency
        applies(mistake("08.3", "table-name-not-ref"),
                "SELECT * FROM marts.fct_asset_daily WHERE close_usd > high_usd",
                "ref('fct_asset_daily')"),
        # compared with the day's highest high of all assets: flags nothing, or the wrong rows
        ("SELECT f.* FROM {{ ref('fct_asset_daily') }} f WHERE f.close_usd > "
         "(SELECT max(high_usd) FROM {{ ref('fct_asset_daily') }})", "cannot fail"),
        ("SELECT * FROM {{ ref('fct_asset_daily') }} WHERE close_usd >= low_usd + 2 "
         "AND trade_date = (SELECT max(trade_date) FROM {{ ref('fct_asset_daily') }}) "
         "AND close_usd > 1000", "cannot fail"),
        ("SELECT * FROM {{ ref('fct_asset_daily') }} WHERE close_usd > high_usd - 2",
         "returns rows on correct data"),
        ("SELECT * FROM {{ ref('fct_asset_daily') }} f WHERE EXISTS (SELECT 1 FROM "
         "{{ ref('fct_asset_daily') }} g WHERE g.close_usd > g.high_usd)",
         "flags rows that are fine"),
        ("SELECT * FROM {{ ref('fct_asset_daily') }} WHERE close_usd <> high_usd +",
         "does not run"),
    ],
)
def test_singular_test_fails_with_the_mistake_named(marts: Path, sql: str, hint: str) -> None:
    result = checks.singular_test(sql, marts)
    assert not result.passed
    assert hint in result.message, result.message
