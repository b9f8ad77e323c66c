"""The frames the suites validate: small pandas tables for one run's dates.

Bronze frames come from the raw store; silver and gold frames from pyiceberg scans (decimals
as doubles: the rules compare signs and orders, not digits). Gold is read from a ``ref``: the
run's audit branch when the table has it, else ``main``. Reconciliation frames are DuckDB
queries over those scans, one row per day.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from lab_env.errors import LabError
from lab_env.paths import BRONZE
from lab_env.quality.suites import ASSET_FIELDS, HISTORY_FIELDS

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from pyiceberg.catalog import Catalog

LOOKBACK_DAYS = 30
GOLD_TABLES = ("dim_asset", "fct_asset_daily", "asset_rolling", "daily_rankings")


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]


def _iso(ts: dt.datetime) -> str:
    return ts.isoformat()


def _utc(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


# ----- bronze -----


def _response_row(key: str, body: bytes, has_meta: bool, fields: tuple[str, ...]) -> dict:
    ingest_date = key.split("ingest_date=", 1)[1][:10]
    try:
        payload = json.loads(body)
        records = payload.get("data") if isinstance(payload, dict) else None
    except ValueError:
        records = None
    rows: list = records if isinstance(records, list) else []
    missing = {f for r in rows if isinstance(r, dict) for f in fields if f not in r}
    if any(not isinstance(r, dict) for r in rows):
        missing.add("<records that are not objects>")
    return {"key": key, "ingest_date": ingest_date, "parses": isinstance(records, list),
            "has_meta": has_meta, "records": len(rows),
            "missing_fields": ", ".join(sorted(missing)), "_records": rows}


def _fetched_at(store: Any, key: str) -> str:
    """The sidecar's fetch time of a bronze object ('' when it has no readable sidecar)."""
    try:
        meta = json.loads(store.get(f"{key}.meta.json"))
    except (LabError, ValueError):
        return ""
    return str(meta.get("fetched_at") or "") if isinstance(meta, dict) else ""


def current_responses(listed: list[str], store: Any) -> list[str]:
    """The responses silver builds from: per folder (a day, or a day and an asset), the newest.

    A day fetched again keeps every answer in bronze (objects are immutable), and silver keeps
    the rows of the newest fetch; the audit reads the same one, so an old bad answer that a
    later healthy fetch replaced no longer blocks the day. Answers without a sidecar are all
    kept (the suite fails on them).
    """
    metas = {k for k in listed if k.endswith(".meta.json")}
    newest: dict[str, tuple[str, str]] = {}
    orphans = []
    for key in (k for k in listed if k.endswith(".json") and k not in metas):
        if f"{key}.meta.json" not in metas:
            orphans.append(key)
            continue
        folder = key.rsplit("/", 1)[0]
        candidate = (_fetched_at(store, key), key)
        newest[folder] = max(newest.get(folder, candidate), candidate)
    return sorted([key for _, key in newest.values()] + orphans)


def bronze_frames(start: dt.date, end: dt.date, store: Any = None) -> dict[str, pd.DataFrame]:
    """One row per current /assets response, per current history response, and per point."""
    import pandas as pd

    from lab_env.lake.storage import get_store

    store = store or get_store()
    rows: dict[str, list[dict]] = {"assets": [], "asset_history": []}
    points = []
    for day in _days(start, end):
        for endpoint, fields in (("assets", ASSET_FIELDS), ("asset_history", HISTORY_FIELDS)):
            listed = store.list(f"{BRONZE}/{endpoint}/ingest_date={day}")
            metas = {k for k in listed if k.endswith(".meta.json")}
            for key in current_responses(listed, store):
                row = _response_row(key, store.get(key), f"{key}.meta.json" in metas, fields)
                records = row.pop("_records")
                rows[endpoint].append(row)
                if endpoint != "asset_history":
                    continue
                asset_id = key.split("asset_id=", 1)[1].split("/", 1)[0] if "asset_id=" in key \
                    else None
                for record in records:
                    if not isinstance(record, dict):
                        continue
                    time_ms = record.get("time")
                    points.append({
                        "asset_id": asset_id,
                        "ingest_date": row["ingest_date"],
                        "observed_at": (dt.datetime.fromtimestamp(time_ms / 1000, dt.UTC)
                                        if isinstance(time_ms, int | float) else None),
                        "price_usd": record.get("priceUsd"),
                    })
    columns = ["key", "ingest_date", "parses", "has_meta", "records", "missing_fields"]
    frames = {f"bronze.{name}": pd.DataFrame(found, columns=columns)
              for name, found in rows.items()}
    frames["bronze.history_points"] = pd.DataFrame(
        points, columns=["asset_id", "ingest_date", "observed_at", "price_usd"])
    frames["bronze.history_points"]["observed_at"] = pd.to_datetime(
        frames["bronze.history_points"]["observed_at"], utc=True)
    return frames


# ----- silver -----


def _scan(catalog: Catalog, name: str, row_filter: str = "", ref: str | None = None,
          columns: tuple[str, ...] = ("*",)) -> pa.Table:
    """Rows of ``name`` at ``ref`` (a branch; None or absent: main), filtered."""
    from pyiceberg.expressions import AlwaysTrue

    if not catalog.table_exists(name):
        raise LabError(f"Table {name} does not exist.",
                       "run the pipeline for these dates first (lab run --start D --end D).")
    table = catalog.load_table(name)
    snapshot = table.snapshot_by_name(ref) if ref else None
    return table.scan(row_filter=row_filter or AlwaysTrue(), selected_fields=columns,
                      snapshot_id=snapshot.snapshot_id if snapshot else None).to_arrow()


def _pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow to pandas with decimals as doubles (GX compares them with plain numbers)."""
    import pyarrow as pa

    columns = [
        table[c].cast(pa.float64()) if pa.types.is_decimal(table[c].type) else table[c]
        for c in table.column_names
    ]
    return pa.table(columns, names=table.column_names).to_pandas()


def silver_frames(start: dt.date, end: dt.date, catalog: Catalog,
                  namespace: str = "silver") -> dict[str, pd.DataFrame]:
    """The run's days of silver.asset_prices and asset_snapshots, and all of silver.assets."""
    lo, hi = _iso(_utc(start)), _iso(_utc(end + dt.timedelta(days=1)))
    prices = _pandas(_scan(catalog, f"{namespace}.asset_prices",
                           f"observed_at >= '{lo}' AND observed_at < '{hi}'",
                           columns=("asset_id", "observed_at", "price_usd",
                                    "circulating_supply")))
    prices["observed_date"] = prices["observed_at"].dt.strftime("%Y-%m-%d")
    snapshots = _pandas(_scan(catalog, f"{namespace}.asset_snapshots",
                              f"snapshot_date >= '{start}' AND snapshot_date <= '{end}'",
                              columns=("asset_id", "snapshot_date", "price_usd", "supply",
                                       "market_cap_usd")))
    snapshots["snapshot_date"] = snapshots["snapshot_date"].astype(str)
    assets = _pandas(_scan(catalog, f"{namespace}.assets",
                           columns=("asset_id", "symbol", "first_seen", "last_seen")))
    return {"silver.asset_prices": prices, "silver.asset_snapshots": snapshots,
            "silver.assets": assets}


# ----- gold -----


def gold_frames(start: dt.date, end: dt.date, catalog: Catalog, refs: dict[str, str | None],
                namespace: str = "gold", silver: str = "silver") -> dict[str, pd.DataFrame]:
    """The run's days of the gold marts as the audit sees them, and the reconciliation frames.

    ``refs`` maps each gold table (``fct_asset_daily`` ...) to the branch to read, or None
    for main.
    """
    import duckdb

    read_from = start - dt.timedelta(days=LOOKBACK_DAYS)
    span = f"trade_date >= '{start}' AND trade_date <= '{end}'"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    tables = {
        "dim_asset": _scan(catalog, f"{namespace}.dim_asset", ref=refs.get("dim_asset")),
        # with lookback, to count the closes inside each rolling window
        "fct_asset_daily": _scan(
            catalog, f"{namespace}.fct_asset_daily",
            f"trade_date >= '{read_from}' AND trade_date <= '{end}'",
            ref=refs.get("fct_asset_daily")),
        "asset_rolling": _scan(catalog, f"{namespace}.asset_rolling", span,
                               ref=refs.get("asset_rolling")),
        "daily_rankings": _scan(catalog, f"{namespace}.daily_rankings", span,
                                ref=refs.get("daily_rankings")),
    }
    lo, hi = _iso(_utc(start)), _iso(_utc(end + dt.timedelta(days=1)))
    tables["silver_prices"] = _scan(catalog, f"{silver}.asset_prices",
                                    f"observed_at >= '{lo}' AND observed_at < '{hi}'",
                                    columns=("asset_id", "observed_at"))
    for name, table in tables.items():
        con.register(name, table)
    con.execute("CREATE TEMP TABLE days AS SELECT CAST(d AS DATE) AS trade_date FROM "
                "generate_series(CAST($1 AS DATE), CAST($2 AS DATE), INTERVAL 1 DAY) t(d)",
                [start, end])
    facts = _pandas(con.sql(f"SELECT * FROM fct_asset_daily WHERE {span}").to_arrow_table())
    frames = {
        "gold.fct_asset_daily": facts,
        "gold.dim_asset": _pandas(tables["dim_asset"]),
        "gold.reconciliation": con.sql("""
            SELECT d.trade_date,
                (SELECT count(DISTINCT asset_id) FROM silver_prices s
                  WHERE CAST(s.observed_at AS DATE) = d.trade_date) AS silver_assets,
                (SELECT count(*) FROM fct_asset_daily f WHERE f.trade_date = d.trade_date)
                  AS fact_rows,
                (SELECT count(*) FROM asset_rolling r WHERE r.trade_date = d.trade_date)
                  AS rolling_rows,
                (SELECT count(*) FROM daily_rankings k WHERE k.trade_date = d.trade_date)
                  AS ranking_rows,
                (SELECT count(*) FROM fct_asset_daily f
                  WHERE f.trade_date = d.trade_date
                    AND f.asset_id NOT IN (SELECT asset_id FROM dim_asset)) AS orphan_facts
            FROM days d
            WHERE EXISTS (SELECT 1 FROM fct_asset_daily f WHERE f.trade_date = d.trade_date)
               OR EXISTS (SELECT 1 FROM silver_prices s
                          WHERE CAST(s.observed_at AS DATE) = d.trade_date)
            ORDER BY d.trade_date
        """).df(),
        "gold.rankings_per_day": con.sql("""
            SELECT trade_date, count(market_cap_rank) AS ranked_assets,
                   count(DISTINCT market_cap_rank) AS distinct_ranks,
                   coalesce(min(market_cap_rank), 1) AS min_rank,
                   coalesce(max(market_cap_rank), 0) AS max_rank
            FROM daily_rankings GROUP BY trade_date ORDER BY trade_date
        """).df(),
        "gold.asset_rolling": con.sql("""
            SELECT r.trade_date, r.asset_id,
                   r.ma_7d_usd IS NOT NULL AS has_ma_7d_usd,
                   r.ma_30d_usd IS NOT NULL AS has_ma_30d_usd,
                   (SELECT count(*) FROM fct_asset_daily f WHERE f.asset_id = r.asset_id
                      AND f.trade_date BETWEEN r.trade_date - 6 AND r.trade_date) = 7 AS full_7d,
                   (SELECT count(*) FROM fct_asset_daily f WHERE f.asset_id = r.asset_id
                      AND f.trade_date BETWEEN r.trade_date - 29 AND r.trade_date) = 30
                      AS full_30d
            FROM asset_rolling r ORDER BY r.trade_date, r.asset_id
        """).df(),
    }
    con.close()
    for frame in frames.values():
        for column in ("trade_date",):
            if column in frame.columns:
                frame[column] = frame[column].astype(str)
    return frames
