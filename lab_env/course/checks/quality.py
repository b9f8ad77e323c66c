"""Self-checks for milestone 06 (data quality): the learner's expectations against planted defects.

Each check takes the expectation the learner wrote and tries it on two frames built here from
the real tables of the run's dates: the clean frame (it must pass) and a copy with one planted
defect from :mod:`lab_env.quality.defects` (it must fail). It must also carry the severity the
defect deserves: ``critical`` blocks the publish, ``warning`` only reports.

* 06.1 a negative price in silver.asset_prices;
* 06.2 a fact written twice in gold.fct_asset_daily;
* 06.3 a fact whose asset is not in gold.dim_asset;
* 06.4 facts a day behind the run (stale);
* 06.5 a fact without its symbol: a warning, not a blocker.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lab_env.course.checks._core import _Verdict, exercise, fail, ok
from lab_env.lake.catalog import get_catalog
from lab_env.quality import defects
from lab_env.quality.suites import CRITICAL, WARNING, audit_branch, load_gx, severity

if TYPE_CHECKING:
    import pandas as pd


def _dates(start_date: str, end_date: str) -> tuple[dt.date, dt.date]:
    return dt.date.fromisoformat(start_date), dt.date.fromisoformat(end_date)


def silver_prices(start_date: str, end_date: str, silver: str = "silver") -> pd.DataFrame:
    """The clean silver.asset_prices frame of the dates."""
    from lab_env.quality.frames import silver_frames

    start, end = _dates(start_date, end_date)
    return silver_frames(start, end, get_catalog(), silver)["silver.asset_prices"]


def gold_frame(name: str, start_date: str, end_date: str, run_id: str = "manual",
               silver: str = "silver", gold: str = "gold") -> pd.DataFrame:
    """A gold frame of the dates, read from the run's audit branch when there is one."""
    from lab_env.quality.frames import gold_frames
    from lab_env.quality.gate import audit_refs

    start, end = _dates(start_date, end_date)
    catalog = get_catalog()
    refs = audit_refs(catalog, audit_branch(run_id), gold)
    return gold_frames(start, end, catalog, refs, gold, silver)[name]


def judge(rule: Any, clean: pd.DataFrame, planted: pd.DataFrame, wanted: str, defect: str,
          hint: str) -> _Verdict:
    """The verdict on ``rule``: tagged ``wanted``, passes ``clean``, fails ``planted``."""
    from lab_env.quality.gate import try_expectation

    expectation_type = load_gx().expectations.Expectation
    if not isinstance(rule, expectation_type):
        return fail(f"your answer is a {type(rule).__name__}, not an expectation: write one "
                    f"object such as gxe.ExpectColumnValuesToNotBeNull(column=...). {hint}")
    level = severity(rule)
    if (rule.meta or {}).get("severity") != wanted:
        why = ("it makes the numbers wrong, so it must stop the publish" if wanted == CRITICAL
               else "the numbers are still right, so it must not stop the publish")
        return fail(f"tag it meta={{'severity': '{wanted}'}} (it is {level!r} now): {defect}: "
                    f"{why}.")
    on_clean = try_expectation(clean, rule)
    if not on_clean.success:
        found = on_clean.result.get("observed_value", on_clean.result.get("unexpected_count"))
        problem = on_clean.exception_info.get("exception_message") if on_clean.exception_info \
            else None
        return fail(f"your {rule.expectation_type} fails on the clean data too "
                    f"({problem or f'found {found}'}): a rule must let good data through. "
                    f"{hint}")
    on_planted = try_expectation(planted, rule)
    if on_planted.success:
        return fail(f"your {rule.expectation_type} lets {defect} through. {hint}")
    return ok(f"{rule.expectation_type} ({wanted}) catches {defect} and passes the "
              f"{len(clean)} clean rows")


def _gold_check(rule: Any, plant: Callable[[pd.DataFrame], pd.DataFrame], wanted: str,
                defect: str, hint: str, start_date: str, end_date: str, run_id: str,
                silver: str, gold: str) -> _Verdict:
    facts = gold_frame("gold.fct_asset_daily", start_date, end_date, run_id, silver, gold)
    return judge(rule, facts, plant(facts), wanted, defect, hint)


@exercise("06.1", "A negative price in silver is caught, and blocks")
def negative_price(rule: Any, start_date: str, end_date: str, silver: str = "silver") -> _Verdict:
    """``rule`` passes silver.asset_prices and fails it with one negative price."""
    clean = silver_prices(start_date, end_date, silver)
    hint = ("Prices are positive: gxe.ExpectColumnValuesToBeBetween on price_usd with "
            "min_value=0 and strict_min=True (0 is not a price either).")
    verdict = judge(rule, clean, defects.negative_price(clean), CRITICAL, "a negative price",
                    hint)
    if not verdict.passed:
        return verdict
    # the lesson's rule says "positive": plant a zero as well, which min_value=0 alone lets by
    zero = defects.negative_price(clean)
    zero.loc[0, "price_usd"] = 0 * zero.loc[0, "price_usd"]
    if judge(rule, clean, zero, CRITICAL, "a zero price", hint).passed:
        return verdict
    return fail(f"your {rule.expectation_type} lets a zero price through: zero is not a price "
                "either; add strict_min=True.")


@exercise("06.2", "A fact written twice is caught, and blocks")
def duplicate_fact(rule: Any, start_date: str, end_date: str, run_id: str = "manual",
                   silver: str = "silver", gold: str = "gold") -> _Verdict:
    """``rule`` passes gold.fct_asset_daily and fails it with one row twice."""
    return _gold_check(rule, defects.duplicate_fact, CRITICAL, "a duplicated fact",
                       "The grain is one row per asset_id and trade_date *together*: "
                       "gxe.ExpectCompoundColumnsToBeUnique(column_list=[...]); each column "
                       "alone repeats on purpose.", start_date, end_date, run_id, silver, gold)


@exercise("06.3", "A fact without its dimension row is caught, and blocks")
def orphan_fact(rule: Any, start_date: str, end_date: str, run_id: str = "manual",
                silver: str = "silver", gold: str = "gold") -> _Verdict:
    """``rule`` passes gold.fct_asset_daily and fails it with a fact for an unknown asset."""
    return _gold_check(rule, defects.orphan_fact, CRITICAL, "an orphan fact (asset ghostcoin)",
                       "Every fact's asset_id must be one of gold.dim_asset's: "
                       "gxe.ExpectColumnValuesToBeInSet(column='asset_id', value_set=<the "
                       "dimension's asset ids as a list>).", start_date, end_date, run_id,
                       silver, gold)


@exercise("06.4", "Facts a day behind the run are caught, and block")
def stale_facts(rule: Any, start_date: str, end_date: str, run_id: str = "manual",
                silver: str = "silver", gold: str = "gold") -> _Verdict:
    """``rule`` passes gold.fct_asset_daily and fails it when every day is one day early."""
    return _gold_check(rule, defects.stale_facts, CRITICAL, "stale facts (the last day missing)",
                       f"Freshness: the newest trade_date must reach the run's end_date: "
                       f"gxe.ExpectColumnMaxToBeBetween(column='trade_date', "
                       f"min_value='{end_date}') (trade_date is an ISO string in the frame).",
                       start_date, end_date, run_id, silver, gold)


@exercise("06.5", "A missing symbol is reported as a warning")
def missing_symbol(rule: Any, start_date: str, end_date: str, run_id: str = "manual",
                   silver: str = "silver", gold: str = "gold") -> _Verdict:
    """``rule`` passes gold.fct_asset_daily, fails it with a null symbol, and is a warning."""
    return _gold_check(rule, defects.missing_symbol, WARNING, "a fact without its symbol",
                       "symbol must not be null: gxe.ExpectColumnValuesToNotBeNull(column="
                       "'symbol'); it is a copied label, so tag it a warning.",
                       start_date, end_date, run_id, silver, gold)
