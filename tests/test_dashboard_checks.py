"""The 10.x checks: each passes on a right answer and fails, with its hint, on typical mistakes.

10.1 reads a small real daily_rankings Iceberg table (pyiceberg, the session's catalog) in a
namespace of its own; 10.2 calls the learner's function. No Spark here.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog

from lab_env.course.checks import dashboard
from tests.mistakes import mistake

NAMESPACE = "gold_c10"
DAY = "2025-03-31"
# The day's returns: top movers are the three highest and the three lowest; by |return| the
# six largest would take 0.03 instead of -0.02. xrp has no day before, so no return.
RETURNS = {"bitcoin": 0.10, "ethereum": 0.05, "tether": 0.03, "solana": 0.01, "cardano": -0.01,
           "polkadot": -0.02, "litecoin": -0.04, "dogecoin": -0.20, "xrp": None, "tron": 0.25}
SYMBOLS = {a: a[:3].upper() for a in RETURNS}
MOVERS = {"tron", "bitcoin", "ethereum", "dogecoin", "litecoin", "polkadot"}


@pytest.fixture(scope="module")
def rankings(catalog: Catalog) -> str:
    """gold_c10.daily_rankings with two days; the check reads it like gold's."""
    rows = []
    for day, scale in ((dt.date(2025, 3, 31), 1.0), (dt.date(2025, 3, 30), 0.5)):
        for asset, ret in RETURNS.items():
            rows.append({"trade_date": day, "asset_id": asset, "symbol": SYMBOLS[asset],
                         "daily_return": None if ret is None else ret * scale,
                         "is_top_mover": asset in MOVERS})
    table = pa.Table.from_pylist(rows, schema=pa.schema([
        ("trade_date", pa.date32()), ("asset_id", pa.string()), ("symbol", pa.string()),
        ("daily_return", pa.float64()), ("is_top_mover", pa.bool_())]))
    catalog.create_namespace_if_not_exists(NAMESPACE)
    ident = f"{NAMESPACE}.daily_rankings"
    if catalog.table_exists(ident):
        catalog.purge_table(ident)
    catalog.create_table(ident, schema=table.schema).append(table)
    return NAMESPACE


def frame(assets: list[str], scale: float = 1.0, extra: list[tuple[str, float | None]] = ()
          ) -> pd.DataFrame:
    rows = [(SYMBOLS[a], RETURNS[a] * scale if RETURNS[a] is not None else None) for a in assets]
    return pd.DataFrame(rows + list(extra), columns=["symbol", "daily_return"])


def by_return(descending: bool) -> list[str]:
    known = [a for a in RETURNS if RETURNS[a] is not None]
    return sorted(known, key=lambda a: RETURNS[a], reverse=descending)  # type: ignore[arg-type]


# ----- 10.1 -----


def test_top_movers_passes_on_three_gainers_and_three_losers(rankings: str) -> None:
    result = dashboard.top_movers(frame(by_return(True)[:3] + by_return(False)[:3]), DAY,
                                  namespace=rankings)
    assert result.passed, result.message
    assert "6 top movers of 2025-03-31 match" in result.message


@mistake("10.1", "gainers-only")
def test_top_movers_fails_on_gainers_only(rankings: str) -> None:
    result = dashboard.top_movers(frame(by_return(True)[:3]), DAY, namespace=rankings)
    assert not result.passed and "three biggest gainers AND" in result.message
    assert "only 3 gainers" in result.message


@mistake("10.1", "largest-absolute-moves")
def test_top_movers_fails_on_the_six_largest_absolute_moves(rankings: str) -> None:
    known = [a for a in RETURNS if RETURNS[a] is not None]
    six = sorted(known, key=lambda a: abs(RETURNS[a]), reverse=True)[:6]  # type: ignore[arg-type]
    result = dashboard.top_movers(frame(six), DAY, namespace=rankings)
    assert not result.passed and "not always three up and three down" in result.message
    assert SYMBOLS["tether"] in result.message


@mistake("10.1", "no-day-filter")
def test_top_movers_fails_without_the_day_filter(rankings: str) -> None:
    both_days = frame(by_return(True)[:3] + by_return(False)[:3]).pipe(
        lambda f: pd.concat([f, frame(by_return(True)[:3] + by_return(False)[:3], 0.5)]))
    result = dashboard.top_movers(both_days, DAY, namespace=rankings)
    assert not result.passed and "WHERE trade_date" in result.message


@mistake("10.1", "percent-returns")
def test_top_movers_fails_on_returns_as_percentages(rankings: str) -> None:
    result = dashboard.top_movers(frame(by_return(True)[:3] + by_return(False)[:3], 100.0), DAY,
                                  namespace=rankings)
    assert not result.passed and "percentages" in result.message


def test_top_movers_fails_on_an_asset_without_a_return(rankings: str) -> None:
    result = dashboard.top_movers(frame([*by_return(True)[:3], "xrp", *by_return(False)[:2]]),
                                  DAY, namespace=rankings)
    assert not result.passed and "IS NOT NULL" in result.message


def test_top_movers_fails_on_a_missing_column(rankings: str) -> None:
    wrong = frame(by_return(True)[:3]).rename(columns={"daily_return": "ret"})
    result = dashboard.top_movers(wrong, DAY, namespace=rankings)
    assert not result.passed and "'daily_return'" in result.message


# ----- 10.2 -----


def right(latest: dt.date, verdict: str, today: dt.date) -> str:
    if verdict == "BLOCKED":
        return "blocked"
    return "stale" if (today - latest).days > 1 else "fresh"


def test_freshness_status_passes_on_the_rules() -> None:
    result = dashboard.freshness_status(right)
    assert result.passed, result.message


@mistake("10.2", "verdict-ignored")
def test_freshness_status_fails_when_the_verdict_is_ignored() -> None:
    def dates_only(latest: dt.date, verdict: str, today: dt.date) -> str:
        return "stale" if (today - latest).days > 1 else "fresh"

    result = dashboard.freshness_status(dates_only)
    assert not result.passed and "A BLOCKED verdict wins" in result.message


@mistake("10.2", "off-by-one-age")
def test_freshness_status_fails_on_an_off_by_one_age() -> None:
    def strict(latest: dt.date, verdict: str, today: dt.date) -> str:
        if verdict == "BLOCKED":
            return "blocked"
        return "stale" if (today - latest).days >= 1 else "fresh"

    result = dashboard.freshness_status(strict)
    assert not result.passed and "stale means older than one day" in result.message


@mistake("10.2", "passed-as-blocked")
def test_freshness_status_fails_when_passed_counts_as_blocked() -> None:
    def not_published(latest: dt.date, verdict: str, today: dt.date) -> str:
        if verdict != "PUBLISHED":
            return "blocked"
        return "stale" if (today - latest).days > 1 else "fresh"

    result = dashboard.freshness_status(not_published)
    assert not result.passed and "only BLOCKED stops a publish" in result.message


def test_freshness_status_fails_on_a_boolean() -> None:
    result = dashboard.freshness_status(lambda latest, verdict, today: (today - latest).days <= 1)
    assert not result.passed and "return one of the strings" in result.message
