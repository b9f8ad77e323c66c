"""Self-checks for 04 gold: the Spark-written marts against a DuckDB recomputation from silver.

The reference is the SQL in ``sql/gold/`` run by DuckDB over pyiceberg scans of the silver
tables. Every DECIMAL, date, integer, string and key must be identical; DOUBLE statistics
(returns, volatilities) may differ by a relative 1e-9, because engines add floats in
different orders.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import TYPE_CHECKING

from lab_env.course.checks._core import _Verdict, exercise, fail, ok, upstream_first
from lab_env.course.checks.silver import load_table
from lab_env.errors import LabError
from lab_env.lake.catalog import get_catalog
from lab_env.paths import GOLD_SQL

if TYPE_CHECKING:
    import pyarrow as pa

LOOKBACK_DAYS = 30
REL_TOL = 1e-9
KEYS: dict[str, list[str]] = {
    "dim_asset": ["asset_id"],
    "fct_asset_daily": ["asset_id", "trade_date"],
    "asset_rolling": ["asset_id", "trade_date"],
    "daily_rankings": ["asset_id", "trade_date"],
}
SILVER = ("silver.asset_prices", "silver.asset_snapshots", "silver.assets")
# The exercise that writes each mart, and the marts it is computed from.
EXERCISE = {"fct_asset_daily": "04.1", "asset_rolling": "04.2", "daily_rankings": "04.3"}
BUILT_FROM = {"asset_rolling": ["fct_asset_daily"], "daily_rankings": ["fct_asset_daily"]}

HINTS = {
    "trade_date": "trade_date is F.to_date('observed_at'), the UTC day.",
    "symbol": "symbol and name are copied from silver.assets (left join on asset_id).",
    "name": "symbol and name are copied from silver.assets (left join on asset_id).",
    "open_usd": "open is the price at the day's first observation: "
                "F.min_by('price_usd', 'observed_at').",
    "close_usd": "close is the price at the day's last observation: "
                 "F.max_by('price_usd', 'observed_at').",
    "high_usd": "high is F.max('price_usd') per asset and day.",
    "low_usd": "low is F.min('price_usd') per asset and day.",
    "avg_usd": "avg_usd is F.sum('price_usd') / F.count('price_usd'): DECIMAL(38,24) rounded "
               "half up (F.avg would give DECIMAL(38,28)).",
    "observations": "observations is F.count('*') of the asset's points that day, as an int.",
    "volume_usd_24h": "volume and market cap come from the day's snapshot: left join "
                      "silver.asset_snapshots on asset_id and snapshot_date = trade_date.",
    "market_cap_usd": "volume and market cap come from the day's snapshot: left join "
                      "silver.asset_snapshots on asset_id and snapshot_date = trade_date.",
    "daily_return": "daily_return = close / the close exactly one day before - 1, as a double: "
                    "F.first('close_usd') over by_day(-1, -1); null when that day is missing.",
    "ma_7d_usd": "ma_7d_usd = sum / count of close_usd over by_day(-6, 0) (the 7 calendar days "
                 "ending that day), null unless the frame holds 7 closes.",
    "ma_30d_usd": "ma_30d_usd = sum / count of close_usd over by_day(-29, 0), null unless the "
                  "frame holds 30 closes.",
    "volatility_7d": "volatility_7d = stddev_samp(daily_return) over by_day(-6, 0), null "
                     "unless the frame holds 7 returns.",
    "volatility_30d": "volatility_30d = stddev_samp(daily_return) over by_day(-29, 0), null "
                      "unless the frame holds 30 returns.",
    "close_7d_ago_usd": "close_7d_ago_usd is the close exactly 7 days earlier: "
                        "F.first('close_usd') over by_day(-7, -7).",
    "wow_change": "wow_change = close / close_7d_ago - 1, as a double.",
    "market_cap_rank": "market_cap_rank is row_number() per trade_date ordered by market_cap_usd "
                       "descending (nulls last), then asset_id; null without a market cap.",
    "rank_change": "rank_change is the previous day's rank minus today's: "
                   "F.first('market_cap_rank') over by_day(-1, -1) - market_cap_rank.",
    "gainer_rank": "gainer_rank ranks the day's returns from highest to lowest (ties by asset_id).",
    "loser_rank": "loser_rank ranks the day's returns from lowest to highest (ties by asset_id).",
    "is_top_mover": "is_top_mover is true for the day's three biggest gainers and losers.",
}


def _dates(start_date: str, end_date: str) -> tuple[dt.date, dt.date]:
    return dt.date.fromisoformat(start_date), dt.date.fromisoformat(end_date)


def _silver_version() -> tuple[int | None, ...]:
    """The current snapshot of each silver table: a recomputation is valid while they hold."""
    catalog = get_catalog()
    versions = []
    for name in SILVER:
        if not catalog.table_exists(name):
            raise LabError(f"Table {name} does not exist.", "run 03_silver.ipynb first.")
        snapshot = catalog.load_table(name).current_snapshot()
        versions.append(snapshot.snapshot_id if snapshot else None)
    return tuple(versions)


def recompute(start: dt.date, end: dt.date) -> dict[str, pa.Table]:
    """The four gold marts for ``start``..``end``, computed by DuckDB from the silver tables."""
    return dict(_recompute(start, end, _silver_version()))


@functools.lru_cache(maxsize=4)
def _recompute(start: dt.date, end: dt.date,
               version: tuple[int | None, ...]) -> tuple[tuple[str, pa.Table], ...]:
    import duckdb

    catalog = get_catalog()
    read_from = start - dt.timedelta(days=LOOKBACK_DAYS)
    lo = dt.datetime.combine(read_from, dt.time(), dt.UTC).isoformat()
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC).isoformat()
    filters = {
        "silver.asset_prices": f"observed_at >= '{lo}' AND observed_at < '{hi}'",
        "silver.asset_snapshots": f"snapshot_date >= '{read_from}' AND snapshot_date <= '{end}'",
    }
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name in SILVER:
        table = catalog.load_table(name)
        scan = table.scan(row_filter=filters[name]) if name in filters else table.scan()
        scan.to_duckdb(name.replace(".", "_"), connection=con)
    con.execute((GOLD_SQL / "macros.sql").read_text())
    daily = (GOLD_SQL / "fct_asset_daily.sql").read_text()
    con.execute(f"CREATE OR REPLACE TEMP TABLE fct_asset_daily AS {daily}")
    marts = {"dim_asset": con.sql((GOLD_SQL / "dim_asset.sql").read_text()).to_arrow_table()}
    for mart in ("fct_asset_daily", "asset_rolling", "daily_rankings"):
        query = ("SELECT * FROM fct_asset_daily" if mart == "fct_asset_daily"
                 else (GOLD_SQL / f"{mart}.sql").read_text())
        marts[mart] = con.sql(f"SELECT * FROM ({query}) WHERE trade_date BETWEEN $1 AND $2",
                              params=[start, end]).to_arrow_table()
    con.close()
    return tuple(marts.items())


def gold_rows(mart: str, start: dt.date, end: dt.date, namespace: str = "gold") -> pa.Table:
    """The rows of ``<namespace>.<mart>`` for ``start``..``end`` (all rows of the dimension)."""
    from lab_env.config import get_settings

    table = load_table(f"{namespace}.{mart}")
    # A production run writes gold to its audit branch (LAB_WAP_BRANCH): check what it wrote.
    branch = get_settings().wap_branch
    snapshot = table.snapshot_by_name(branch) if branch else None
    at = snapshot.snapshot_id if snapshot else None
    if mart == "dim_asset":
        return table.scan(snapshot_id=at).to_arrow()
    return table.scan(row_filter=f"trade_date >= '{start}' AND trade_date <= '{end}'",
                      snapshot_id=at).to_arrow()


def difference(mart: str, actual: pa.Table, expected: pa.Table,
               columns: list[str] | None = None) -> str | None:
    """The first way ``actual`` differs from ``expected`` (None when they agree), with a hint."""
    import duckdb
    import pyarrow as pa

    keys = KEYS[mart]
    table = f"gold.{mart}"
    for column in columns or expected.column_names:
        if column not in actual.column_names:
            return f"{table} has no column {column}: {HINTS.get(column, 'add it.')}"
        want, got = expected.schema.field(column).type, actual.schema.field(column).type
        if pa.types.is_decimal(want) and got != want:
            return f"{table}.{column} is {got}, not {want}: {HINTS.get(column, '')}".strip()
    con = duckdb.connect()
    con.register("a", actual)
    con.register("e", expected)
    key_list = ", ".join(keys)
    twice = con.sql(f"SELECT {key_list}, count(*) FROM a GROUP BY ALL HAVING count(*) > 1 "
                    "LIMIT 1").fetchall()
    if twice:
        return (f"{table} has {twice[0][-1]} rows for {tuple(twice[0][:-1])}: its grain is one row "
                f"per {key_list}.")
    missing = con.sql(f"SELECT {key_list} FROM e EXCEPT SELECT {key_list} FROM a "
                      f"ORDER BY ALL LIMIT 1").fetchall()
    if missing:
        return (f"{table} has no row for {missing[0]}, which silver supports: write every day "
                "of the span (and check the joins are left joins).")
    extra = con.sql(f"SELECT {key_list} FROM a EXCEPT SELECT {key_list} FROM e "
                    f"ORDER BY ALL LIMIT 1").fetchall()
    if extra:
        return f"{table} has a row for {extra[0]} that silver does not support."
    join = " AND ".join(f"a.{k} = e.{k}" for k in keys)
    for column in columns or expected.column_names:
        if column in keys:
            continue
        if pa.types.is_floating(expected.schema.field(column).type):
            same = (f"(a.{column} IS NULL AND e.{column} IS NULL) OR abs(a.{column} - e.{column})"
                    f" <= {REL_TOL} * greatest(abs(a.{column}), abs(e.{column})) + 1e-15")
        else:
            same = f"a.{column} IS NOT DISTINCT FROM e.{column}"
        rows = con.sql(f"SELECT {', '.join('e.' + k for k in keys)}, a.{column}, e.{column} "
                       f"FROM a JOIN e ON {join} WHERE NOT coalesce({same}, false) "
                       f"ORDER BY ALL LIMIT 1").fetchall()
        if rows:
            *key, got_value, want_value = rows[0]
            hint = HINTS.get(column, "compare your code with the SQL.")
            return (f"{table}.{column} for {tuple(key)} is {got_value}, the recomputation from "
                    f"silver gives {want_value}: {hint}")
    return None


def _upstream(mart: str, start: dt.date, end: dt.date, namespace: str,
              expected: dict[str, pa.Table]) -> _Verdict | None:
    """"fix 04.1 first" when a mart that ``mart`` is computed from is wrong, else None."""
    for source in BUILT_FROM.get(mart, []):
        if difference(source, gold_rows(source, start, end, namespace), expected[source]):
            return upstream_first(EXERCISE[source], f"{namespace}.{source}")
    return None


def _compare(marts: list[str], start_date: str, end_date: str, namespace: str) -> _Verdict:
    start, end = _dates(start_date, end_date)
    expected = recompute(start, end)
    rows = 0
    for mart in marts:
        if upstream := _upstream(mart, start, end, namespace, expected):
            return upstream
        actual = gold_rows(mart, start, end, namespace)
        problem = difference(mart, actual, expected[mart])
        if problem:
            return fail(problem)
        rows += actual.num_rows
    return ok(f"{', '.join('gold.' + m for m in marts)}: {rows} rows of {start}..{end} "
              "equal the recomputation from silver")


@exercise("04.1", "Daily facts: one row per asset and day, OHLC from silver")
def daily_facts(start_date: str, end_date: str, namespace: str = "gold") -> _Verdict:
    """gold.fct_asset_daily equals the recomputation from silver for the dates."""
    return _compare(["fct_asset_daily"], start_date, end_date, namespace)


@exercise("04.2", "Rolling windows: moving averages, volatility, week over week")
def rolling_windows(start_date: str, end_date: str, namespace: str = "gold") -> _Verdict:
    """gold.asset_rolling equals the recomputation from silver for the dates."""
    return _compare(["asset_rolling"], start_date, end_date, namespace)


@exercise("04.3", "Daily rankings by market cap")
def rankings(start_date: str, end_date: str, namespace: str = "gold") -> _Verdict:
    """Ranks are 1..n within each day, and gold.daily_rankings equals the recomputation."""
    start, end = _dates(start_date, end_date)
    if upstream := _upstream("daily_rankings", start, end, namespace, recompute(start, end)):
        return upstream
    by_day: dict[dt.date, list[int]] = {}
    for row in gold_rows("daily_rankings", start, end, namespace).select(
        ["trade_date", "market_cap_rank"]
    ).to_pylist():
        if row["market_cap_rank"] is not None:
            by_day.setdefault(row["trade_date"], []).append(row["market_cap_rank"])
    for day, ranks in sorted(by_day.items()):
        if sorted(ranks) != list(range(1, len(ranks) + 1)):
            return fail(f"the ranks on {day} are {sorted(ranks)[:6]}...: row_number() must "
                        "restart at 1 for each trade_date (Window.partitionBy('trade_date')) and "
                        "never repeat (break ties by asset_id).")
    return _compare(["daily_rankings"], start_date, end_date, namespace)


@exercise("04.4", "Gold equals the DuckDB recomputation exactly")
def matches_duckdb(start_date: str, end_date: str,
                   recomputed: dict[str, pa.Table] | None = None,
                   namespace: str = "gold") -> _Verdict:
    """All four marts: exact DECIMALs, same rows and keys; doubles within a relative 1e-9.

    ``recomputed`` is your own DuckDB result (mart name -> Arrow table); without it the
    check recomputes the marts itself.
    """
    start, end = _dates(start_date, end_date)
    expected = recompute(start, end)
    if recomputed is not None:
        absent = [m for m in KEYS if m not in recomputed]
        if absent:
            return fail(f"your DuckDB result has no {absent[0]}: run every SQL file of sql/gold.")
        for mart in KEYS:
            days = (recomputed[mart].column("trade_date").to_pylist()
                    if "trade_date" in recomputed[mart].column_names else [])
            outside = sorted(d for d in days if d is not None and not start <= d <= end)
            if outside:
                return fail(f"your DuckDB {mart} has rows outside {start}..{end} (e.g. "
                            f"{outside[0]}): keep only the span's days, WHERE trade_date "
                            "BETWEEN $1 AND $2, as the notebook's query does.")
            problem = difference(mart, recomputed[mart], expected[mart])
            if problem:
                return fail(f"your DuckDB {mart} is not the reference: {problem} (did you register "
                            "all three silver tables, with the row filters?)")
    rows = 0
    for mart in KEYS:
        actual = gold_rows(mart, start, end, namespace)
        problem = difference(mart, actual, expected[mart])
        if problem and mart in EXERCISE:
            return upstream_first(EXERCISE[mart], f"{namespace}.{mart}")
        if problem:
            return fail(problem)
        rows += actual.num_rows
    return ok(f"4 marts, {rows} rows of {start}..{end}: every DECIMAL, date, rank and key equal to "
              f"DuckDB's; doubles within {REL_TOL:g}")
