"""What the dashboard and the report show: queries over gold, and the last run's verdict.

Gold is read the way the lab reads Iceberg outside Spark: a pyiceberg scan of each table's
``main`` (what the quality gate published) handed to an in-memory DuckDB connection as Arrow.
Nothing here opens a DuckDB *file*: a reader holding another tool's database file would lock
that tool out. Every function returns data (pandas frames, dataclasses); the Streamlit app and
the report decide how it looks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab_env.config import Settings, get_settings
from lab_env.errors import LabError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa

NAMESPACE = "gold"
TABLES = ("dim_asset", "fct_asset_daily", "asset_rolling", "daily_rankings")
HISTORY_DAYS = 90  # what the asset page and the report plot: the last 90 days
MARKET_DAYS = 30  # the market chart and the rank history


@dataclass(frozen=True)
class TableState:
    """One gold table as read: its current snapshot, when it was committed, how many rows."""

    name: str
    snapshot_id: int | None
    committed_at: dt.datetime | None
    rows: int


@dataclass
class Gold:
    """The gold tables, registered in one in-memory DuckDB connection under their short names."""

    con: duckdb.DuckDBPyConnection
    tables: dict[str, TableState]

    def df(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params or []).df()


def snapshot_key(settings: Settings | None = None, namespace: str = NAMESPACE
                 ) -> tuple[str, tuple[tuple[str, int | None], ...]]:
    """What identifies the gold a reader would see now: LAB_HOME and each table's snapshot.

    A cache keyed on it (the app's) reloads exactly when a run has published new gold.
    """
    settings = settings or get_settings()
    catalog = _catalog(settings)
    ids = []
    for name in TABLES:
        ident = f"{namespace}.{name}"
        snapshot = catalog.load_table(ident).current_snapshot() \
            if catalog.table_exists(ident) else None
        ids.append((name, snapshot.snapshot_id if snapshot else None))
    return str(settings.lab_home), tuple(ids)


def load_tables(settings: Settings | None = None, namespace: str = NAMESPACE
                ) -> tuple[dict[str, pa.Table], dict[str, TableState]]:
    """Every gold table's ``main`` as Arrow, and what was read; a LabError if one is missing."""
    settings = settings or get_settings()
    catalog = _catalog(settings)
    arrow: dict[str, pa.Table] = {}
    states: dict[str, TableState] = {}
    for name in TABLES:
        ident = f"{namespace}.{name}"
        if not catalog.table_exists(ident):
            raise LabError(
                f"{ident} does not exist under {settings.lab_home}: there is no gold to show.",
                "build it first: `lab run --start 2025-03-29 --end 2025-03-31` (or `make run`), "
                "with the same LAB_HOME.",
            )
        table = catalog.load_table(ident)
        snapshot = table.current_snapshot()
        rows = table.scan().to_arrow() if snapshot else table.schema().as_arrow().empty_table()
        arrow[name] = rows
        states[name] = TableState(
            ident,
            snapshot.snapshot_id if snapshot else None,
            dt.datetime.fromtimestamp(snapshot.timestamp_ms / 1000, dt.UTC) if snapshot else None,
            rows.num_rows,
        )
    return arrow, states


def connect(arrow: dict[str, pa.Table], states: dict[str, TableState]) -> Gold:
    """A fresh DuckDB connection over the Arrow tables (zero copy; one per reader thread)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name, rows in arrow.items():
        con.register(name, rows)
    return Gold(con, states)


def open_gold(settings: Settings | None = None, namespace: str = NAMESPACE) -> Gold:
    """Read gold now and return it ready to query."""
    return connect(*load_tables(settings, namespace))


def _catalog(settings: Settings) -> Any:
    from lab_env.lake.catalog import get_catalog

    return get_catalog(settings)


# ----- the queries: one per figure -----


def trade_days(gold: Gold) -> list[dt.date]:
    """The days gold has facts for, latest first."""
    rows = gold.con.execute(
        "SELECT DISTINCT trade_date FROM fct_asset_daily ORDER BY trade_date DESC").fetchall()
    return [row[0] for row in rows]


@dataclass(frozen=True)
class Market:
    """The market on one day: totals, and how they changed from the day before."""

    day: dt.date
    assets: int
    market_cap_usd: float | None  # None: no snapshot (market caps) for the day
    market_cap_change: float | None  # relative, against the previous day's total
    volume_usd_24h: float | None
    median_return: float | None
    leader: str  # the symbol ranked first by market cap


def market(gold: Gold, day: dt.date) -> Market:
    """Totals over every asset on ``day`` (market cap and volume as of the day's close)."""
    row = gold.con.execute(
        """
        WITH totals AS (
            SELECT trade_date, count(*) AS assets,
                   sum(market_cap_usd)::DOUBLE AS cap, sum(volume_usd_24h)::DOUBLE AS volume,
                   median(daily_return) AS median_return
            FROM fct_asset_daily GROUP BY trade_date)
        SELECT t.assets, t.cap, t.cap / p.cap - 1, t.volume, t.median_return,
               (SELECT symbol FROM daily_rankings r
                 WHERE r.trade_date = t.trade_date AND r.market_cap_rank = 1)
        FROM totals t LEFT JOIN totals p ON p.trade_date = t.trade_date - INTERVAL 1 DAY
        WHERE t.trade_date = $1
        """,
        [day],
    ).fetchone()
    if row is None:
        raise LabError(f"Gold has no facts for {day}.", "pick a day gold has (see trade_days).")
    assets, cap, change, volume, median_return, leader = row
    return Market(day, int(assets), cap, change, volume, median_return, leader or "")


def market_history(gold: Gold, day: dt.date, days: int = MARKET_DAYS) -> pd.DataFrame:
    """Total market cap per day over the ``days`` up to ``day``."""
    return gold.df(
        """
        SELECT trade_date, sum(market_cap_usd)::DOUBLE AS market_cap_usd, count(*) AS assets
        FROM fct_asset_daily
        WHERE trade_date BETWEEN $1::DATE - to_days($2 - 1) AND $1
        GROUP BY trade_date ORDER BY trade_date
        """,
        [day, days],
    )


def leaders(gold: Gold, day: dt.date, top: int = 10) -> pd.DataFrame:
    """The ``top`` assets by market cap on ``day``, with their price and moves."""
    return gold.df(
        """
        SELECT r.market_cap_rank AS rank, f.symbol, f.name, f.close_usd::DOUBLE AS close_usd,
               f.daily_return, r.rank_change, f.market_cap_usd::DOUBLE AS market_cap_usd
        FROM daily_rankings r
        JOIN fct_asset_daily f USING (trade_date, asset_id)
        WHERE r.trade_date = $1 AND r.market_cap_rank <= $2
        ORDER BY r.market_cap_rank
        """,
        [day, top],
    )


def assets(gold: Gold) -> pd.DataFrame:
    """Every asset, largest first: id, symbol, name, current rank."""
    return gold.df(
        "SELECT asset_id, symbol, name, current_rank FROM dim_asset "
        "ORDER BY current_rank NULLS LAST, asset_id")


def asset_history(gold: Gold, asset_id: str, day: dt.date, days: int = HISTORY_DAYS
                  ) -> pd.DataFrame:
    """One asset per day up to ``day``: close, 7/30-day averages, volatility and rank."""
    return gold.df(
        """
        SELECT r.trade_date, r.close_usd::DOUBLE AS close_usd, r.ma_7d_usd::DOUBLE AS ma_7d_usd,
               r.ma_30d_usd::DOUBLE AS ma_30d_usd, r.volatility_7d, r.volatility_30d,
               k.market_cap_rank, k.rank_change, k.daily_return
        FROM asset_rolling r
        LEFT JOIN daily_rankings k USING (trade_date, asset_id)
        WHERE r.asset_id = $1 AND r.trade_date BETWEEN $2::DATE - to_days($3 - 1) AND $2
        ORDER BY r.trade_date
        """,
        [asset_id, day, days],
    )


def top_movers(gold: Gold, day: dt.date) -> pd.DataFrame:
    """The day's top movers (three biggest gainers and losers), biggest gain first."""
    return gold.df(
        """
        SELECT r.symbol, d.name,
               CASE WHEN r.gainer_rank <= 3 THEN 'gainer' ELSE 'loser' END AS move,
               r.daily_return, r.market_cap_rank, r.rank_change
        FROM daily_rankings r LEFT JOIN dim_asset d USING (asset_id)
        WHERE r.trade_date = $1 AND r.is_top_mover
        ORDER BY r.daily_return DESC, r.asset_id
        """,
        [day],
    )


def rank_history(gold: Gold, day: dt.date, top: int = 10, days: int = MARKET_DAYS
                 ) -> pd.DataFrame:
    """Market-cap ranks over ``days`` up to ``day`` of the ``top`` assets on ``day``."""
    return gold.df(
        """
        SELECT r.trade_date, r.symbol, r.market_cap_rank
        FROM daily_rankings r
        WHERE r.trade_date BETWEEN $1::DATE - to_days($3 - 1) AND $1
          AND r.asset_id IN (SELECT asset_id FROM daily_rankings
                             WHERE trade_date = $1 AND market_cap_rank <= $2)
        ORDER BY r.trade_date, r.market_cap_rank
        """,
        [day, top, days],
    )


# ----- freshness and the last run -----


@dataclass(frozen=True)
class LastRun:
    """The newest run folder under ``LAB_HOME/runs``, and its quality gate's verdict."""

    run_id: str
    dates: str  # the folder's date or range, e.g. 2025-03-29_2025-03-31
    folder: Path
    finished_at: dt.datetime  # when its summary or quality report was written
    ok: bool | None  # every step ok (from summary.json); None: no summary (an Airflow run)
    steps: list[str] = field(default_factory=list)  # "name: ok" per step
    verdict: str = "NOT RUN"  # PUBLISHED | PASSED | BLOCKED from quality/report.json
    quality: str = ""  # the gate's one-line description, or why there is none
    critical: int = 0
    warnings: int = 0
    report: Path | None = None  # the run's static report (lab report), once published


def last_run(settings: Settings | None = None) -> LastRun | None:
    """The run whose summary or quality report was written last (None before the first run)."""
    settings = settings or get_settings()
    stamps: dict[Path, float] = {}
    for pattern in ("*/*/summary.json", "*/*/quality/report.json"):
        for path in settings.runs_dir.glob(pattern):
            folder = path.parent if path.name == "summary.json" else path.parents[1]
            stamps[folder] = max(stamps.get(folder, 0.0), path.stat().st_mtime)
    if not stamps:
        return None
    folder = max(stamps, key=lambda f: (stamps[f], f.name))
    summary = _json(folder / "summary.json")
    quality = _json(folder / "quality" / "report.json")
    run = LastRun(
        run_id=str(summary.get("run_id") or quality.get("run_id") or folder.name),
        dates=folder.parent.name,
        folder=folder,
        finished_at=dt.datetime.fromtimestamp(stamps[folder], dt.UTC),
        ok=all(s.get("ok") for s in summary["steps"]) if summary.get("steps") else None,
        steps=[f"{s['name']}: {'ok' if s.get('ok') else 'FAILED'}"
               for s in summary.get("steps", [])],
        report=folder / "report.html" if (folder / "report.html").is_file() else None,
    )
    if not quality:
        return run
    outcomes = quality.get("outcomes", [])
    failed = [o for o in outcomes if not o.get("success")]
    critical = sum(1 for o in failed if o.get("severity") == "critical")
    warnings = len(failed) - critical
    return dataclasses.replace(
        run,
        verdict=str(quality.get("verdict", "NOT RUN")),
        quality=f"{len(outcomes) - len(failed)}/{len(outcomes)} expectations passed, "
                f"{critical} critical and {warnings} warning failures",
        critical=critical,
        warnings=warnings,
    )


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@dataclass(frozen=True)
class Freshness:
    """How current gold is: its latest day, and when each table last changed."""

    latest_day: dt.date | None
    days: int
    tables: list[TableState]
    age_days: int | None  # whole days between the latest trade day and ``today``


def freshness(gold: Gold, today: dt.date | None = None) -> Freshness:
    days = trade_days(gold)
    latest = days[0] if days else None
    today = today or dt.datetime.now(dt.UTC).date()
    return Freshness(latest, len(days), list(gold.tables.values()),
                     (today - latest).days if latest else None)


# ----- formatting shared by the app and the report (the tests format with them too) -----


def usd(value: float | None) -> str:
    """Money the way a market page shows it: $1.23T, $456.7B, $12.3M, $1,234.56."""
    if value is None or _missing(value):  # e.g. a 7-day average before the window is full
        return "n/a"
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(value) >= size:
            return f"${value / size:,.2f}{suffix}"
    return f"${value:,.2f}"


def pct(value: float | None) -> str:
    """A relative change as a signed percentage: +1.23%."""
    return "n/a" if value is None or _missing(value) else f"{value:+.2%}"


def signed(value: float | None) -> str:
    """A change in places, signed: +2, -1, 0 (empty without a value)."""
    if value is None or _missing(value):
        return ""
    return f"{int(value):+d}" if int(value) else "0"


def _missing(value: object) -> bool:
    """None, NaN or pandas' NA (which has no truth value)."""
    try:
        return value is None or bool(value != value)
    except TypeError:
        return True
