"""Time `dbt build` as a full refresh against an incremental build of one day, in one run.

    .venv/bin/python bench/dbt_build.py [--home DIR] [--day YYYY-MM-DD]

On the lakehouse at ``--home`` (default: LAB_HOME), which must hold silver (``make run`` builds
the whole sample), it runs, with ``lab_env.jobs.dbt.build`` (the code ``lab dbt build`` and the
``dbt`` step run):

1. ``full refresh``: every model rebuilt from every day silver has;
2. ``incremental``: a run for ``--day`` (default: the last day silver got data for), which
   rewrites gold's affected days and reads only them and their 30-day lookback from Iceberg.

It prints, for each: the seconds of the whole ``dbt build`` (dbt starting, parsing, the models,
the tests), of the models alone, of fct_asset_daily alone, and how many silver price rows the
iceberg plugin read into DuckDB. Both builds run in this one process, one after the other.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
from pathlib import Path

import duckdb

from lab_env.config import load_settings
from lab_env.jobs.dbt import DbtRun, build, duckdb_path


def rows_read(path: Path) -> int:
    """Rows of silver.asset_prices the last build loaded into DuckDB (the plugin's scan)."""
    with duckdb.connect(str(path), read_only=True) as con:
        return int(con.execute("SELECT count(*) FROM silver.asset_prices").fetchall()[0][0])


def last_ingest_day(home: Path) -> dt.date:
    from lab_env.lake.catalog import get_catalog

    table = get_catalog(load_settings(home=home)).load_table("silver.asset_prices")
    days = table.scan(selected_fields=("ingest_date",)).to_arrow()["ingest_date"]
    return max(days.to_pylist())


def model_seconds(run: DbtRun, name: str | None = None) -> float:
    return sum(n.seconds for n in run.nodes if n.kind == "model" and name in (None, n.name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="the LAB_HOME to use (default: LAB_HOME)")
    parser.add_argument("--day", type=dt.date.fromisoformat, help="the incremental run's day")
    args = parser.parse_args()
    settings = load_settings(home=args.home) if args.home else load_settings()
    day = args.day or last_ingest_day(settings.lab_home)
    full = build(settings, full_refresh=True)
    full_rows = rows_read(duckdb_path(settings))
    incremental = build(settings, day, day)
    incremental_rows = rows_read(duckdb_path(settings))
    print(f"dbt build on {settings.lab_home} ({platform.machine()}, {platform.system()})")
    print(f"incremental: a run for {day}, {incremental.summary().split('(')[1].split(')')[0]}")
    print(f"{'':<14}{'dbt build s':>12}{'models s':>10}{'fct s':>8}{'silver rows read':>18}")
    for label, run, rows in (
        ("full refresh", full, full_rows),
        ("incremental", incremental, incremental_rows),
    ):
        print(
            f"{label:<14}{run.seconds:>12.1f}{model_seconds(run):>10.2f}"
            f"{model_seconds(run, 'fct_asset_daily'):>8.2f}{rows:>18,}"
        )
    print(
        f"incremental / full: {incremental.seconds / full.seconds:.2f} of the build's time, "
        f"{incremental_rows / max(full_rows, 1):.2f} of the rows read"
    )


if __name__ == "__main__":
    main()
