"""Time silver and gold, Spark against DuckDB, on the sample and on a larger generated history.

    .venv/bin/python bench/silver_gold.py --size small|large [--configs ...] [--json PATH]
                                          [--keep | --home DIR]

``small``: the bundled sample, 20 assets hourly from 2025-01-01 to 2025-03-31 (43,200 price
rows). Bronze is ingested first by the bronze notebook against the replay server (not timed).

``large``: 500 assets hourly for all of 2025 (4,380,000 price rows), generated straight into
silver: the silver notebook creates its tables on one sample day, then pyiceberg overwrites
them with the generated history (not timed). Only gold is timed at this size; bronze in the
contract's layout would be 182,500 small files, which measures file listing, not the pipeline.

What is timed. The solution notebooks' code cells run in this process, in one Spark session,
so the JVM start is not in any figure (``bench/notebook_suite.py`` times whole notebooks):

* ``silver_s``: the silver notebook end to end with ``full_refresh`` (read, type, quarantine,
  MERGE, and its self-checks), small size only;
* ``spark_s`` / ``duckdb_s``: the gold notebook's engine comparison: the four marts of every day,
  computed from the silver tables by Spark into a ``noop`` sink and by DuckDB from pyiceberg scans
  into Arrow, each warm (measured after one warm-up run);
* ``write_s``: Spark's production path for the three daily marts (compute, compare with the
  table, replace the days), the first run in each configuration.

Each Spark configuration runs the gold notebook with ``full_refresh``. Results are printed and,
with ``--json``, saved; docs/silver-gold.md records them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import nbformat

REPO = Path(__file__).resolve().parents[1]
SILVER_NB = REPO / "solutions" / "03_silver.ipynb"
GOLD_NB = REPO / "solutions" / "04_gold.ipynb"
BRONZE_NB = REPO / "solutions" / "02_bronze.ipynb"

# name -> (what it is, the runtime SQL settings it applies to the session)
CONFIGS: dict[str, tuple[str, dict[str, str]]] = {
    "no-aqe": ("200 partitions, AQE off", {"spark.sql.shuffle.partitions": "200",
                                           "spark.sql.adaptive.enabled": "false"}),
    "spark": ("200 partitions, AQE on", {"spark.sql.shuffle.partitions": "200",
                                         "spark.sql.adaptive.enabled": "true"}),
    "lab": ("4 partitions, AQE on", {"spark.sql.shuffle.partitions": "4",
                                     "spark.sql.adaptive.enabled": "true"}),
}
LARGE_ASSETS = 500
LARGE_START = dt.date(2025, 1, 1)
LARGE_DAYS = 365


def lab_home(home: Path) -> contextlib.AbstractContextManager[object]:
    """Point this process, and the kernels it starts, at ``home`` (its settings are read
    again: nothing has read them before)."""
    return mock.patch.dict(os.environ, LAB_HOME=str(home))


def ingest_bronze(start: str, end: str) -> None:
    """Run the bronze notebook for ``start``..``end`` against the replay server (untimed)."""
    from lab_env.config import get_settings
    from lab_env.jobs.runner import execute_notebook, kernel_env

    settings = get_settings()
    with kernel_env(settings, record_progress=False) as env:
        execute_notebook(BRONZE_NB, settings.runs_dir / "bench" / BRONZE_NB.name,
                         {"start_date": start, "end_date": end, "run_id": "bench"}, env=env)


def run_cells(notebook: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Execute a notebook's code cells in this process, with ``params`` after its parameters.

    The same code papermill runs, in this process's Spark session. Output is swallowed; a
    failing self-check stops the benchmark.
    """
    import matplotlib

    from lab_env.course.checks import CHECK_MARKER

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nb = nbformat.read(str(notebook), as_version=4)
    namespace: dict[str, Any] = {"__name__": "__bench__"}
    captured = io.StringIO()
    previous = Path.cwd()
    os.chdir(notebook.parent)  # the notebooks find ../sql/gold from their own folder
    try:
        with contextlib.redirect_stdout(captured), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for cell in nb.cells:
                if cell.cell_type != "code":
                    continue
                exec(compile(cell.source, notebook.name, "exec"), namespace)
                if "parameters" in cell.metadata.get("tags", []):
                    namespace.update(params)
                plt.close("all")
    finally:
        os.chdir(previous)
    failed = [line for line in captured.getvalue().splitlines()
              if line.startswith(CHECK_MARKER) and " FAIL " in line]
    if failed:
        raise SystemExit(f"{notebook.name} failed a self-check:\n" + "\n".join(failed))
    return namespace


def generate_large_silver() -> int:
    """Overwrite the silver tables with 500 assets x 365 days of hourly prices; return rows."""
    import numpy as np
    import pyarrow as pa

    from lab_env.lake.catalog import get_catalog

    catalog = get_catalog()
    rng = np.random.default_rng(20250101)
    hours = LARGE_DAYS * 24
    start = dt.datetime.combine(LARGE_START, dt.time(), dt.UTC)
    hour_us = np.arange(hours, dtype=np.int64) * 3_600_000_000 + int(start.timestamp()) * 10**6
    ids = [f"asset-{n:03d}" for n in range(LARGE_ASSETS)]
    base = 10 ** rng.uniform(-5, 5, LARGE_ASSETS)
    hourly_volatility = rng.uniform(0.004, 0.02, (LARGE_ASSETS, 1))
    steps = rng.normal(0.0, 1.0, (LARGE_ASSETS, hours)) * hourly_volatility
    price = np.round(base[:, None] * np.exp(np.cumsum(steps, axis=1)), 10)
    supply = np.round(10 ** rng.uniform(6, 11, LARGE_ASSETS), 2)

    def decimals(values: np.ndarray, scale: int) -> pa.Array:
        return pa.array(values.ravel()).cast(pa.decimal128(38, scale))

    def utc(micros: np.ndarray) -> pa.Array:
        return pa.array(micros, pa.timestamp("us", tz="UTC"))

    def dates(micros: np.ndarray) -> pa.Array:
        return pa.array((micros // (86_400 * 10**6)).astype(np.int32), pa.date32())

    def constant(text: str, count: int) -> pa.Array:
        return pa.array([text], pa.string()).take(np.zeros(count, dtype=np.int64))

    timestamps = utc(np.tile(hour_us, LARGE_ASSETS))
    fetched_us = np.tile(hour_us, LARGE_ASSETS) + 86_400 * 10**6  # fetched the next day
    fetched = utc(fetched_us)
    lineage = {
        "fetched_at": fetched,
        "ingest_date": dates(fetched_us),
        "ingest_run_id": constant("bench", len(fetched)),
        "bronze_key": constant("bench/generated", len(fetched)),
        "silver_run_id": constant("bench", len(fetched)),
    }
    prices = catalog.load_table("silver.asset_prices")
    columns = {
        "asset_id": pa.array(np.repeat(ids, hours)),
        "observed_at": timestamps,
        "price_usd": decimals(price, 24),
        "circulating_supply": decimals(np.repeat(supply, hours), 18),
    } | lineage
    prices.overwrite(pa.table(columns).cast(prices.schema().as_arrow()))

    # One /assets snapshot per asset and day, at 23:59:59, from the day's 23:00 price.
    close = price[:, 23::24]
    cap = close * supply[:, None]
    rank = (-cap).argsort(axis=0).argsort(axis=0) + 1
    day_us = hour_us[23::24] + 3599 * 10**6
    snap_us = np.tile(day_us, LARGE_ASSETS)
    snap_at = utc(snap_us)
    count = LARGE_ASSETS * LARGE_DAYS
    snapshots = catalog.load_table("silver.asset_snapshots")
    snapshot_columns = {
        "snapshot_date": dates(snap_us),
        "asset_id": pa.array(np.repeat(ids, LARGE_DAYS)),
        "snapshot_at": snap_at,
        "rank": pa.array(rank.ravel(), pa.int32()),
        "price_usd": decimals(close, 24),
        "supply": decimals(np.repeat(supply, LARGE_DAYS), 18),
        "market_cap_usd": decimals(np.round(cap, 2), 18),
        "volume_usd_24h": decimals(np.round(cap * rng.uniform(0.01, 0.2, cap.shape), 2), 18),
        "vwap_24h": decimals(close, 24),
        "change_percent_24h": decimals(np.round(rng.normal(0, 3, cap.shape), 8), 24),
        "fetched_at": snap_at,
        "ingest_date": dates(snap_us),
        "ingest_run_id": constant("bench", count),
        "bronze_key": constant("bench/generated", count),
        "silver_run_id": constant("bench", count),
    }
    snapshots.overwrite(pa.table(snapshot_columns).cast(snapshots.schema().as_arrow()))
    assets = catalog.load_table("silver.assets")
    first, last = snap_at[0], snap_at[LARGE_DAYS - 1]
    asset_columns = {
        "asset_id": pa.array(ids),
        "symbol": pa.array([f"A{n:03d}" for n in range(LARGE_ASSETS)]),
        "name": pa.array([f"Asset {n}" for n in range(LARGE_ASSETS)]),
        "explorer": pa.array([None] * LARGE_ASSETS, pa.string()),
        "max_supply": pa.array([None] * LARGE_ASSETS, pa.decimal128(38, 18)),
        "rank": pa.array(rank[:, -1], pa.int32()),
        "first_seen": pa.array([first.as_py()] * LARGE_ASSETS, pa.timestamp("us", tz="UTC")),
        "last_seen": pa.array([last.as_py()] * LARGE_ASSETS, pa.timestamp("us", tz="UTC")),
        "fetched_at": pa.array([last.as_py()] * LARGE_ASSETS, pa.timestamp("us", tz="UTC")),
        "silver_run_id": constant("bench", LARGE_ASSETS),
    }
    assets.overwrite(pa.table(asset_columns).cast(assets.schema().as_arrow()))
    return LARGE_ASSETS * hours


def gold_files() -> str:
    """Data files per gold table now: how many, and their average size."""
    from lab_env.lake.catalog import get_catalog

    catalog = get_catalog()
    parts = []
    for name in ("fct_asset_daily", "asset_rolling", "daily_rankings"):
        files = catalog.load_table(f"gold.{name}").inspect.files()
        sizes = files.column("file_size_in_bytes").to_pylist()
        average = sum(sizes) / max(len(sizes), 1) / 1024
        parts.append(f"{name}: {len(sizes)} files, {average:.0f} KiB avg")
    return "; ".join(parts)


def bench(size: str, configs: list[str], home: Path) -> dict[str, Any]:
    """Prepare ``home`` for ``size`` (unless done before), then time silver and gold."""
    from lab_env.lake.spark import get_spark

    prepared = (home / "catalog.db").is_file()
    with lab_home(home):
        if prepared:
            print(f"reusing the lakehouse prepared at {home}", flush=True)
            spark = get_spark()
            if size == "small":
                start, end = "2025-01-01", "2025-03-31"
            else:
                start = LARGE_START.isoformat()
                end = (LARGE_START + dt.timedelta(days=LARGE_DAYS - 1)).isoformat()
        elif size == "small":
            start, end = "2025-01-01", "2025-03-31"
            print("ingesting the sample into bronze (not timed) ...", flush=True)
            ingest_bronze(start, end)
            spark = get_spark()
        else:
            start = LARGE_START.isoformat()
            end = (LARGE_START + dt.timedelta(days=LARGE_DAYS - 1)).isoformat()
            print("creating silver from one sample day, then the generated history ...", flush=True)
            ingest_bronze("2025-03-31", "2025-03-31")
            spark = get_spark()
            run_cells(SILVER_NB, {"start_date": "2025-03-31", "end_date": "2025-03-31",
                                  "run_id": "bench", "full_refresh": True})
            began = time.perf_counter()
            rows = generate_large_silver()
            seconds = time.perf_counter() - began
            print(f"generated {rows:,} price rows in {seconds:.0f}s", flush=True)
        params = {"start_date": start, "end_date": end, "run_id": "bench", "full_refresh": True}
        if size == "small":
            print("warm-up: one untimed silver and gold run ...", flush=True)
            run_cells(SILVER_NB, params)
            run_cells(GOLD_NB, params)
        results: dict[str, Any] = {"size": size, "start": start, "end": end, "runs": []}
        for name in configs:
            label, settings = CONFIGS[name]
            for key, value in settings.items():
                spark.conf.set(key, value)
            run: dict[str, Any] = {"config": name, "settings": label}
            if size == "small":
                began = time.perf_counter()
                run_cells(SILVER_NB, params)
                run["silver_s"] = round(time.perf_counter() - began, 2)
            timings = run_cells(GOLD_NB, params)["timings"]
            run |= {
                "spark_s": round(timings["spark_marts_s"], 2),
                "duckdb_s": round(timings["duckdb_marts_s"], 2),
                "write_s": round(sum(timings[k] for k in ("spark_fct_asset_daily_s",
                                                          "spark_asset_rolling_s",
                                                          "spark_daily_rankings_s")), 2),
                "silver_rows": timings["silver_rows_read"],
            }
            run["ratio"] = round(run["spark_s"] / run["duckdb_s"], 1)
            results["runs"].append(run)
            print(json.dumps(run), flush=True)
        results["gold_files"] = gold_files()
    return results


def render(results: dict[str, Any]) -> None:
    runs = results["runs"]
    print(f"\nsize={results['size']}  {results['start']} .. {results['end']}  "
          f"silver rows read by gold: {runs[0]['silver_rows']:,}")
    print(f"{'config':7} {'settings':24} {'silver_s':>9} {'spark_s':>8} {'duckdb_s':>9} "
          f"{'spark/duckdb':>12} {'write_s':>8}")
    for run in runs:
        silver = f"{run['silver_s']:.1f}" if "silver_s" in run else "-"
        print(f"{run['config']:7} {run['settings']:24} {silver:>9} {run['spark_s']:8.2f} "
              f"{run['duckdb_s']:9.2f} {run['ratio']:11.1f}x {run['write_s']:8.1f}")
    print(f"gold files: {results['gold_files']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("small", "large"), default="small")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS),
                        help="Spark configurations to time: " + "; ".join(
                            f"{name} = {label}" for name, (label, _) in CONFIGS.items()))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the LAB_HOME and print it")
    parser.add_argument("--home", type=Path,
                        help="use (and keep) this LAB_HOME; one prepared by an earlier --keep "
                             "run of the same size is reused in place (not a copy: Iceberg "
                             "metadata holds absolute paths)")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix=f"bench-silver-gold-{args.size}-"))
    home = args.home.resolve() if args.home else root / "lakehouse"
    results = bench(args.size, args.configs, home)
    render(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    import shutil

    if args.keep and not args.home:
        print(f"LAB_HOME kept at {home}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
