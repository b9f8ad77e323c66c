"""The expectation suites of every layer, defined in code: the data's contract, executable.

One function per layer returns its suites; a suite validates one frame of
:mod:`lab_env.quality.frames` (the suite and the frame share a name, e.g.
``gold.fct_asset_daily``). Every expectation carries ``meta["severity"]``:

* ``critical``: the data is wrong; a failure blocks the publish of gold;
* ``warning``: the data is suspicious; a failure is reported and the publish goes on.

The run's dates are part of the rules (freshness, the run window), so the suites are built
for one run: ``gold_suites(start, end)``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite
    from great_expectations.expectations import Expectation

CRITICAL = "critical"
WARNING = "warning"
LAYERS = ("bronze", "silver", "gold")

# The /assets snapshot lists the top 20; a history file holds the hours from 23:00 of the day
# before to the end of the day (25 points, 24 on the first day of a history).
ASSETS_PER_SNAPSHOT = (10, 100)
POINTS_PER_HISTORY_FILE = (20, 30)
POINTS_PER_DAY = (20, 25)
# Fields every record of a response must carry (values may be null: silver quarantines them).
ASSET_FIELDS = ("id", "rank", "symbol", "name", "supply", "priceUsd", "marketCapUsd")
HISTORY_FIELDS = ("priceUsd", "time")


def load_gx() -> Any:
    """``great_expectations``, imported with its usage statistics off (the lab runs offline)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    return gx


def audit_branch(run_id: str) -> str:
    """The Iceberg branch a run writes gold to before the audit: ``audit_<run id>``."""
    return "audit_" + re.sub(r"[^A-Za-z0-9_]+", "_", run_id).strip("_")


def severity(expectation: Any) -> str:
    """``critical`` or ``warning``: the tag of an expectation (or of its configuration)."""
    meta = getattr(expectation, "meta", None) or {}
    return str(meta.get("severity", CRITICAL))


def _tagged(level: str) -> Callable[[Expectation, str], Expectation]:
    def tag(expectation: Expectation, rule: str) -> Expectation:
        # The description is what Data Docs show for the expectation: the level and the rule.
        expectation.meta = {**(expectation.meta or {}), "severity": level}
        expectation.description = f"{level.upper()}: {rule}"
        return expectation

    return tag


critical = _tagged(CRITICAL)
warning = _tagged(WARNING)


def suite(name: str, *expectations: Expectation) -> ExpectationSuite:
    """A suite called ``name`` (the frame it validates) holding ``expectations``."""
    gx = load_gx()
    layer = name.split(".", 1)[0]
    return gx.ExpectationSuite(name=name, expectations=list(expectations),
                               meta={"layer": layer})


def never_null(column: str) -> Expectation:
    """A critical rule: ``column`` has a value in every row."""
    return critical(load_gx().expectations.ExpectColumnValuesToNotBeNull(column=column),
                    f"{column} is never null")


def grain(*columns: str) -> Expectation:
    """A critical rule: the table's grain holds, one row per value of ``columns`` together."""
    gxe = load_gx().expectations
    rule = f"the grain holds: one row per {' and '.join(columns)}"
    if len(columns) == 1:
        return critical(gxe.ExpectColumnValuesToBeUnique(column=columns[0]), rule)
    return critical(gxe.ExpectCompoundColumnsToBeUnique(column_list=list(columns)), rule)


def positive(column: str, rule: str) -> Expectation:
    """A critical rule: every value of ``column`` above zero (null, an unknown, passes)."""
    gxe = load_gx().expectations
    return critical(
        gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, strict_min=True), rule
    )


def _days(start: dt.date, end: dt.date) -> list[str]:
    return [(start + dt.timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


def _utc(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def bronze_suites(start: dt.date, end: dt.date) -> list[ExpectationSuite]:
    """Bronze: payloads parse, expected fields present, times inside the run window, counts."""
    gxe = load_gx().expectations
    days = _days(start, end)
    files = []
    for endpoint, fields, (low, high) in (
        ("assets", ASSET_FIELDS, ASSETS_PER_SNAPSHOT),
        ("asset_history", HISTORY_FIELDS, POINTS_PER_HISTORY_FILE),
    ):
        files.append(suite(
            f"bronze.{endpoint}",
            critical(gxe.ExpectColumnDistinctValuesToEqualSet(column="ingest_date", value_set=days),
                     f"every day of the run has {endpoint} responses"),
            critical(gxe.ExpectColumnValuesToBeInSet(column="parses", value_set=[True]),
                     "every response is a JSON object with a data list"),
            critical(gxe.ExpectColumnValuesToBeInSet(column="has_meta", value_set=[True]),
                     "every response has its .meta.json beside it"),
            critical(gxe.ExpectColumnValuesToBeInSet(column="missing_fields", value_set=[""]),
                     f"every record carries the fields {', '.join(fields)}"),
            warning(gxe.ExpectColumnValuesToBeBetween(column="records", min_value=low,
                                                      max_value=high),
                    f"a response holds a plausible number of records ({low} to {high})"),
        ))
    window_from = _utc(start) - dt.timedelta(hours=1)
    window_to = _utc(end + dt.timedelta(days=1)) - dt.timedelta(milliseconds=1)
    points = suite(
        "bronze.history_points",
        critical(gxe.ExpectColumnValuesToBeBetween(column="observed_at", min_value=window_from,
                                                   max_value=window_to),
                 f"every point lies in the run window, {window_from:%Y-%m-%d %H:%M} to "
                 f"{window_to:%Y-%m-%d %H:%M:%S} UTC"),
        critical(gxe.ExpectColumnValuesToNotBeNull(column="price_usd", mostly=0.99),
                 "at least 99% of the points have a price"),
        warning(gxe.ExpectColumnValuesToNotBeNull(column="price_usd"),
                "every point has a price (silver quarantines the ones that do not)"),
    )
    return [*files, points]


def silver_suites(start: dt.date, end: dt.date) -> list[ExpectationSuite]:
    """Silver: keys not null and unique, prices and supplies positive, fresh for the run."""
    gxe = load_gx().expectations
    days = _days(start, end)
    prices = suite(
        "silver.asset_prices",
        *(never_null(c) for c in ("asset_id", "observed_at", "price_usd")),
        grain("asset_id", "observed_at"),
        positive("price_usd", "prices are positive"),
        positive("circulating_supply", "supplies are positive (or unknown)"),
        critical(gxe.ExpectColumnMaxToBeBetween(column="observed_at", min_value=_utc(end)),
                 f"fresh: silver has prices observed on {end}, the run's last day"),
        critical(gxe.ExpectColumnDistinctValuesToEqualSet(column="observed_date",
                                                          value_set=days),
                 "every day of the run has prices"),
    )
    snapshots = suite(
        "silver.asset_snapshots",
        grain("asset_id", "snapshot_date"),
        positive("price_usd", "prices are positive"),
        positive("supply", "supplies are positive (or unknown)"),
        critical(gxe.ExpectColumnDistinctValuesToEqualSet(column="snapshot_date", value_set=days),
                 "fresh: one /assets snapshot for every day of the run"),
        warning(gxe.ExpectColumnValuesToNotBeNull(column="market_cap_usd"),
                "every snapshot row has a market cap (rankings skip the ones without)"),
    )
    assets = suite(
        "silver.assets",
        never_null("asset_id"),
        grain("asset_id"),
        critical(gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="last_seen",
                                                             column_B="first_seen",
                                                             or_equal=True),
                 "last_seen is never before first_seen"),
        warning(gxe.ExpectColumnValuesToNotBeNull(column="symbol"), "every asset has a symbol"),
    )
    return [prices, snapshots, assets]


def gold_suites(start: dt.date, end: dt.date) -> list[ExpectationSuite]:
    """Gold: grain and ranges, reconciliation with silver, the dimension, ranks, windows."""
    gxe = load_gx().expectations
    n_days = (end - start).days + 1
    price_columns = ("open_usd", "high_usd", "low_usd", "close_usd")
    facts = suite(
        "gold.fct_asset_daily",
        *(never_null(c) for c in ("trade_date", "asset_id", *price_columns)),
        grain("asset_id", "trade_date"),
        *(positive(c, f"{c} is positive") for c in price_columns),
        critical(gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="high_usd",
                                                             column_B="low_usd", or_equal=True),
                 "the day's high is never below its low"),
        critical(gxe.ExpectColumnMaxToBeBetween(column="trade_date",
                                                 min_value=end.isoformat()),
                 f"fresh: the facts reach {end}, the run's last day"),
        warning(gxe.ExpectColumnValuesToBeBetween(column="observations",
                                                  min_value=POINTS_PER_DAY[0],
                                                  max_value=POINTS_PER_DAY[1]),
                f"a day has {POINTS_PER_DAY[0]} to {POINTS_PER_DAY[1]} hourly observations"),
        warning(gxe.ExpectColumnValuesToNotBeNull(column="symbol"),
                "every fact carries its asset's symbol (copied from the dimension)"),
    )
    dimension = suite(
        "gold.dim_asset",
        never_null("asset_id"),
        grain("asset_id"),
        warning(gxe.ExpectColumnValuesToNotBeNull(column="symbol"), "every asset has a symbol"),
    )
    reconciliation = suite(
        "gold.reconciliation",
        critical(gxe.ExpectTableRowCountToEqual(value=n_days),
                 "one reconciliation row per day of the run: gold has every day"),
        critical(gxe.ExpectColumnPairValuesToBeEqual(column_A="fact_rows",
                                                     column_B="silver_assets"),
                 "each day has one fact row per asset that silver has prices for"),
        critical(gxe.ExpectColumnPairValuesToBeEqual(column_A="rolling_rows",
                                                     column_B="fact_rows"),
                 "asset_rolling has a row for every fact row"),
        critical(gxe.ExpectColumnPairValuesToBeEqual(column_A="ranking_rows",
                                                     column_B="fact_rows"),
                 "daily_rankings has a row for every fact row"),
        critical(gxe.ExpectColumnValuesToBeInSet(column="orphan_facts", value_set=[0]),
                 "every fact's asset_id exists in gold.dim_asset"),
    )
    rankings = suite(
        "gold.rankings_per_day",
        critical(gxe.ExpectColumnValuesToBeInSet(column="min_rank", value_set=[1]),
                 "each day's market-cap ranks start at 1"),
        critical(gxe.ExpectColumnPairValuesToBeEqual(column_A="max_rank",
                                                     column_B="ranked_assets"),
                 "each day's ranks end at the number of ranked assets (no gaps)"),
        critical(gxe.ExpectColumnPairValuesToBeEqual(column_A="distinct_ranks",
                                                     column_B="ranked_assets"),
                 "no rank is given twice on a day"),
    )
    rolling = suite(
        "gold.asset_rolling",
        grain("asset_id", "trade_date"),
        *(critical(gxe.ExpectColumnPairValuesToBeEqual(column_A=f"has_{name}",
                                                       column_B=f"full_{days}d"),
                   f"{name} is filled exactly when the {days} days before hold {days} closes")
          for name, days in (("ma_7d_usd", 7), ("ma_30d_usd", 30))),
    )
    return [facts, dimension, reconciliation, rankings, rolling]


SUITES_BY_LAYER: dict[str, Callable[[dt.date, dt.date], list[ExpectationSuite]]] = {
    "bronze": bronze_suites,
    "silver": silver_suites,
    "gold": gold_suites,
}
