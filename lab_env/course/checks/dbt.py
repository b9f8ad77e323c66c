"""Self-checks for 08 dbt: each runs the learner's answer in DuckDB against the marts dbt built
(``LAB_HOME/dbt/lakehouse.duckdb``) and against the same data with a planted problem, so an
answer passes only if it does what dbt would need it to do, on real rows."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lab_env.config import get_settings
from lab_env.course.checks._core import _Verdict, exercise, fail, ok

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

GRAIN = ("asset_id", "trade_date")
FACT = "marts.fct_asset_daily"


def _marts(database: Path | None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB holding a copy of fct_asset_daily (the learner's SQL may write)."""
    import duckdb

    from lab_env.errors import LabError
    from lab_env.jobs.dbt import duckdb_path

    path = database or duckdb_path(get_settings())
    if not path.is_file():
        raise LabError(f"{path} does not exist.", "run the `build` cell of section 3 first.")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"ATTACH '{path}' AS built (READ_ONLY)")
    con.execute("CREATE SCHEMA marts")
    con.execute(f"CREATE TABLE {FACT} AS SELECT * FROM built.{FACT}")
    con.execute("DETACH built")
    return con


def _rows(con: duckdb.DuckDBPyConnection, table: str = FACT) -> set[tuple]:
    return set(con.execute(f"SELECT * FROM {table}").fetchall())


@exercise("08.1", "The incremental model's unique key")
def unique_key(key: str | Sequence[str] | None, database: Path | None = None) -> _Verdict:
    """``key`` as dbt's ``unique_key`` for delete+insert: re-writing the last day with it must
    leave fct_asset_daily exactly as a full rebuild would (no row lost, none doubled)."""
    if not key:
        return fail("unique_key is empty: without one, an incremental run only appends, and "
                    "every re-run of a day adds its rows again (duplicates).")
    columns = [key] if isinstance(key, str) else list(key)
    con = _marts(database)
    have = [d[0] for d in con.execute(f"SELECT * FROM {FACT} LIMIT 0").description]
    unknown = [c for c in columns if c not in have]
    if unknown:
        return fail(f"fct_asset_daily has no column {unknown[0]!r}: the unique key names "
                    f"columns of the model's output ({', '.join(have[:4])}, ...).")
    listed = ", ".join(columns)
    shared = con.execute(f"SELECT {listed}, count(*) FROM {FACT} GROUP BY ALL "
                         f"HAVING count(*) > 1 ORDER BY {len(columns) + 1} DESC LIMIT 1").fetchall()
    if shared:
        return fail(f"({listed}) is not unique in fct_asset_daily: {shared[0][-1]} rows share "
                    f"{tuple(shared[0][:-1])}. The unique key is the model's grain: one row per "
                    "asset and day.")
    before = _rows(con)
    # An incremental run of the last day: delete the keys of the new rows, insert the new rows.
    con.execute(f"CREATE TEMP TABLE new_rows AS SELECT * FROM {FACT} "
                f"WHERE trade_date = (SELECT max(trade_date) FROM {FACT})")
    match = " AND ".join(f"t.{c} = n.{c}" for c in columns)
    con.execute(f"DELETE FROM {FACT} AS t WHERE EXISTS (SELECT 1 FROM new_rows AS n WHERE {match})")
    con.execute(f"INSERT INTO {FACT} SELECT * FROM new_rows")
    after = _rows(con)
    if after != before:
        lost = len(before - after)
        return fail(f"re-writing one day with unique_key ({listed}) lost {lost} rows of other "
                    "days: delete+insert deletes every stored row whose key matches a new row, "
                    "so the key must tell days apart as well as assets.")
    if set(columns) != set(GRAIN):
        return fail(f"({listed}) works here but is wider than the grain: use exactly "
                    f"{list(GRAIN)}, what identifies one row (and what the grain test checks).")
    written = con.execute("SELECT count(*) FROM new_rows").fetchall()[0][0]
    return ok(f"unique_key {list(GRAIN)}: one day re-written, the other "
              f"{len(before) - written} rows kept")


def _silver_prices() -> pa.Table:
    from lab_env.lake.catalog import get_catalog

    return (get_catalog().load_table("silver.asset_prices")
            .scan(selected_fields=("asset_id", "observed_at", "ingest_date")).to_arrow())


def _write_from(sql: str, prices: pa.Table, start: dt.date, end: dt.date) -> dt.date | None:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("prices", prices)
    rows = con.execute(sql, {"start": start, "end": end}).fetchall()
    if len(rows) != 1 or len(rows[0]) != 1:
        raise ValueError(f"the query returned {len(rows)} rows; it must return one value")
    value = rows[0][0]
    return value.date() if isinstance(value, dt.datetime) else value


@exercise("08.2", "The incremental window includes late rows")
def late_rows(sql: str, start_date: str, end_date: str, prices: pa.Table | None = None
              ) -> _Verdict:
    """``sql`` (DuckDB over ``prices``, with ``$start`` and ``$end``) returns the first day a run
    must rewrite: gold's rule, also for a late point planted days before the run."""
    import pyarrow as pa

    start, end = dt.date.fromisoformat(start_date), dt.date.fromisoformat(end_date)
    prices = prices if prices is not None else _silver_prices()
    if "$start" not in sql or "$end" not in sql:
        return fail("the query must use the run's dates $start and $end: which rows arrived "
                    "with this run is a question of ingest_date between them.")
    expected = _expected_write_from(prices, start, end)
    try:
        got = _write_from(sql, prices, start, end)
    except Exception as exc:
        return fail(f"the query does not run: {' '.join(str(exc).split())[:200]}")
    if got != expected:
        return _late_hint(got, expected, start)
    # A point for a day well before the run, arriving with it (a corrected file, say); and an
    # older point that arrived on its own day, long ago: it must not widen the window.
    late_day, old_day = start - dt.timedelta(days=5), start - dt.timedelta(days=20)
    columns = prices.select(["asset_id", "observed_at", "ingest_date"])
    late = pa.table({
        "asset_id": ["bitcoin", "bitcoin"],
        "observed_at": [dt.datetime.combine(d, dt.time(12), dt.UTC) for d in (late_day, old_day)],
        "ingest_date": [end, old_day],
    }).cast(columns.schema)
    planted = pa.concat_tables([columns, late])
    got = _write_from(sql, planted, start, end)
    if got != late_day:
        return _late_hint(got, late_day, start, planted=True)
    return ok(f"a run for {start}..{end} rewrites from {expected} (and from {late_day} when a "
              "point for that day arrives late)")


def _expected_write_from(prices: pa.Table, start: dt.date, end: dt.date) -> dt.date:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("prices", prices)
    late = con.execute("SELECT min(CAST(observed_at AS DATE)) FROM prices "
                       "WHERE ingest_date BETWEEN $start AND $end",
                       {"start": start, "end": end}).fetchall()[0][0]
    return min(start, late) if late else start


def _late_hint(got: dt.date | None, want: dt.date, start: dt.date, planted: bool = False
               ) -> _Verdict:
    what = (f"with a late point for {want} arriving in this run, the window starts at {got}"
            if planted else f"the window starts at {got}, but silver got points for {want} "
            "in this run (the history's overlap hour)")
    if got is not None and got >= start:
        return fail(f"{what}: rows that arrive late for earlier days are missed. Take the "
                    "earliest day (observed_at) of the rows whose ingest_date is in the run, "
                    "and the run's start if that is later: least($start, min(...)).")
    return fail(f"{what}: the window reaches back too far (the whole table is rebuilt, which "
                "is correct but not incremental): filter on ingest_date between $start and "
                "$end.")


def _ref(sql: str) -> str:
    """dbt's ``{{ ref('model') }}`` as the table DuckDB knows (the marts schema)."""
    return re.sub(r"\{\{\s*ref\(\s*['\"](\w+)['\"]\s*\)\s*\}\}", r"marts.\1", sql)


@exercise("08.3", "A singular test that can fail")
def singular_test(sql: str, database: Path | None = None) -> _Verdict:
    """``sql`` returns the fct_asset_daily rows whose close lies outside low..high: none on the
    real marts, and the planted row on a copy with one close above its day's high."""
    if "ref(" not in sql:
        return fail("read the model with {{ ref('fct_asset_daily') }}, not a table name: ref "
                    "is how dbt knows the test depends on the model.")
    con = _marts(database)
    query = _ref(sql)
    try:
        clean = con.execute(query).fetchall()
    except Exception as exc:
        return fail(f"the test does not run: {' '.join(str(exc).split())[:200]}")
    if clean:
        return fail(f"the test returns rows on correct data ({len(clean)}, e.g. {clean[0]}): "
                    "a dbt test fails when its query returns any row, so return only the bad "
                    "rows (a count(*) returns one row even when it is 0).")
    victim = con.execute(f"SELECT asset_id, trade_date FROM {FACT} ORDER BY trade_date DESC, "
                         "asset_id LIMIT 1").fetchall()[0]
    con.execute(f"UPDATE {FACT} SET close_usd = high_usd + 1 WHERE asset_id = ? AND "
                "trade_date = ?", list(victim))
    broken = con.execute(query).fetchall()
    if not broken:
        return fail(f"with {victim[0]}'s close on {victim[1]} set above its high, the test "
                    "still returns nothing: it cannot fail. Return the rows where close_usd "
                    "< low_usd or close_usd > high_usd.")
    if len(broken) > 1:
        return fail(f"one bad row, but the test returns {len(broken)}: it flags rows that "
                    "are fine. Compare each row's close with its own low and high.")
    return ok("passes on the marts and catches a close above its day's high")
