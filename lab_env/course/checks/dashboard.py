"""Self-checks for 10 dashboard: they compare the learner's answer with gold itself (read with
pyiceberg into DuckDB), or call the learner's function on cases with known answers."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lab_env.course.checks._core import _Verdict, exercise, fail, ok

if TYPE_CHECKING:
    import pandas as pd


def _gold_movers(day: dt.date, namespace: str) -> dict[str, float]:
    """symbol -> daily_return of the day's top movers, as gold.daily_rankings flags them."""
    import duckdb

    from lab_env.lake.catalog import get_catalog

    con = duckdb.connect()
    get_catalog().load_table(f"{namespace}.daily_rankings").scan(
        row_filter=f"trade_date = '{day}'").to_duckdb("daily_rankings", connection=con)
    rows = con.execute("SELECT symbol, daily_return FROM daily_rankings WHERE is_top_mover"
                       ).fetchall()
    return {symbol: value for symbol, value in rows}


@exercise("10.1", "The day's top movers, from the daily facts")
def top_movers(movers: pd.DataFrame, day: str, namespace: str = "gold") -> _Verdict:
    """``movers`` has the day's three best and three worst daily returns (symbol, daily_return)."""
    the_day = dt.date.fromisoformat(str(day))
    missing = {"symbol", "daily_return"} - set(movers.columns)
    if missing:
        return fail(f"your frame has no column {sorted(missing)[0]!r}: select symbol and "
                    "daily_return.")
    expected = _gold_movers(the_day, namespace)
    if not expected:
        return fail(f"gold has no top movers on {the_day}: pick a day gold has, after its first "
                    "day (a return needs the day before).")
    got = [(str(s), r) for s, r in zip(movers["symbol"], movers["daily_return"], strict=True)]
    if any(r is None or (isinstance(r, float) and math.isnan(r)) for _, r in got):
        return fail("some rows have no daily_return: an asset without the day before has no "
                    "return; leave those out (WHERE daily_return IS NOT NULL).")
    symbols = [s for s, _ in got]
    if len(symbols) != len(set(symbols)):
        return fail(f"{len(symbols)} rows but {len(set(symbols))} assets: the same asset appears "
                    "twice. Did you forget WHERE trade_date = the day (every day's rows came)?")
    if len(got) > len(expected):
        return fail(f"{len(got)} rows, {len(expected)} expected: keep the three best and the "
                    "three worst returns of that one day.")
    values = dict(got)
    if set(values) <= set(expected) and len(got) < len(expected):
        gainers = all(r > 0 for r in values.values())
        side = "gainers" if gainers else "losers" if all(r < 0 for r in values.values()) \
            else "movers"
        return fail(f"only {len(got)} {side}: a day's top movers are its three biggest gainers "
                    "AND its three biggest losers (two queries, UNION ALL).")
    if set(values) != set(expected):
        wrong = sorted(set(values) - set(expected))
        return fail(f"{', '.join(wrong) or 'some assets'} are not among the day's top movers: "
                    "the six biggest by |return| are not always three up and three down; take "
                    "the three highest and the three lowest returns.")
    off = [s for s, r in values.items() if not math.isclose(r, expected[s], rel_tol=1e-9)]
    if off and all(math.isclose(values[s] / 100, expected[s], rel_tol=1e-9) for s in off):
        return fail("your returns look like percentages: gold stores fractions (0.05 is 5%).")
    if off:
        return fail(f"the daily_return of {off[0]} is {values[off[0]]}, gold says "
                    f"{expected[off[0]]}: read it from fct_asset_daily, unchanged.")
    return ok(f"the {len(got)} top movers of {the_day} match gold.daily_rankings")


# (latest trade day, verdict of the last run, today) -> the headline the dashboard shows
FRESHNESS_CASES: list[tuple[dt.date, str, dt.date, str]] = [
    (dt.date(2025, 3, 31), "PUBLISHED", dt.date(2025, 4, 1), "fresh"),
    (dt.date(2025, 3, 31), "PASSED", dt.date(2025, 3, 31), "fresh"),
    (dt.date(2025, 3, 31), "PUBLISHED", dt.date(2025, 4, 2), "stale"),
    (dt.date(2025, 3, 20), "PASSED", dt.date(2025, 4, 1), "stale"),
    (dt.date(2025, 3, 31), "BLOCKED", dt.date(2025, 4, 1), "blocked"),
    (dt.date(2025, 3, 20), "BLOCKED", dt.date(2025, 4, 1), "blocked"),
]


@exercise("10.2", "The freshness headline")
def freshness_status(status: Callable[[dt.date, str, dt.date], Any]) -> _Verdict:
    """``status(latest_day, verdict, today)`` gives fresh / stale / blocked on every case."""
    for latest, verdict, today, want in FRESHNESS_CASES:
        got = status(latest, verdict, today)
        if got == want:
            continue
        if not isinstance(got, str):
            return fail(f"status(...) returned {got!r}: return one of the strings 'fresh', "
                        "'stale', 'blocked'.")
        case = f"latest day {latest}, verdict {verdict}, today {today}"
        if want == "blocked":
            return fail(f"{case}: got {got!r}, want 'blocked'. A BLOCKED verdict wins over the "
                        "dates: the last run's data was not published, whatever gold's age.")
        if verdict == "PASSED" and got == "blocked":
            return fail(f"{case}: got 'blocked'. PASSED means the gate let main through "
                        "(nothing was waiting); only BLOCKED stops a publish.")
        age = (today - latest).days
        if want == "fresh" and got == "stale":
            return fail(f"{case}: got 'stale', but the day's run happens after the day ends: on "
                        f"{today} the latest complete day is {today - dt.timedelta(days=1)}, so "
                        f"an age of {age} day(s) is fresh (stale means older than one day).")
        return fail(f"{case}: got {got!r}, want {want!r} (the age is {age} days; more than one "
                    "day is stale).")
    return ok(f"all {len(FRESHNESS_CASES)} cases give the right headline")
