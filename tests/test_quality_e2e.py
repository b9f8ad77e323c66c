"""The gate end to end through `lab run`: a clean day publishes; a defect stops the publish.

One LAB_HOME of its own, in subprocesses like tests/test_production.py: a clean day runs
bronze -> silver -> gold -> quality and publishes; the next day gets a negative price planted
in silver between the silver and the gold steps, and `lab run --steps gold quality` must stop
at the gate with gold's main untouched, the audited data on
the run's branch and the alert posted; after the fix the same run publishes.
"""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lab_env.config import load_settings
from lab_env.lake.catalog import get_catalog
from lab_env.quality import audit_branch

pytestmark = [pytest.mark.notebook, pytest.mark.spark]

REPO = Path(__file__).resolve().parents[1]
CLEAN_DAY, BAD_DAY = "2025-02-13", "2025-02-14"
GOLD = ("gold.dim_asset", "gold.fct_asset_daily", "gold.asset_rolling", "gold.daily_rankings")


def lab_env_vars(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    return env | {"LAB_HOME": str(home)}


def lab(home: Path, url: str, *args: str) -> tuple[int, str]:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "lab_env.cli", *args],
        env=lab_env_vars(home) | {"LAB_ALERT_WEBHOOK_URL": url},
        cwd=REPO, capture_output=True, text=True, timeout=1800, check=False,
    )
    return result.returncode, result.stdout + result.stderr


def heads(home: Path) -> dict[str, int | None]:
    catalog = get_catalog(load_settings(home=home))
    ids = {}
    for name in GOLD:
        snapshot = catalog.load_table(name).current_snapshot()
        ids[name] = snapshot.snapshot_id if snapshot else None
    return ids


def fact_days(home: Path, ref: str | None = None) -> set[str]:
    table = get_catalog(load_settings(home=home)).load_table("gold.fct_asset_daily")
    snapshot = table.snapshot_by_name(ref) if ref else table.current_snapshot()
    assert snapshot is not None
    days = table.scan(snapshot_id=snapshot.snapshot_id).to_arrow()["trade_date"]
    return {str(d) for d in days.to_pylist()}


def test_lab_run_publishes_a_clean_day_and_stops_a_planted_defect(
    tmp_path: Path, alert_receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, alerts = alert_receiver
    home = tmp_path / "lakehouse"
    # 1. a clean day: every step, the gate publishes
    code, out = lab(home, url, "run", "--start", CLEAN_DAY, "--end", CLEAN_DAY)
    assert code == 0 and "Run complete." in out, out[-4000:]
    assert "quality" in out
    assert CLEAN_DAY in fact_days(home) and alerts == []
    catalog = get_catalog(load_settings(home=home))
    assert all(list(catalog.load_table(n).refs()) == ["main"] for n in GOLD)
    published = heads(home)

    # 2. the next day, with a negative price planted in silver before gold runs
    code, out = lab(home, url, "run", "--start", BAD_DAY, "--end", BAD_DAY,
                    "--steps", "bronze", "silver")
    assert code == 0, out[-4000:]
    prices = catalog.load_table("silver.asset_prices")
    clean_silver = prices.current_snapshot().snapshot_id
    where = f"asset_id = 'bitcoin' AND observed_at = '{BAD_DAY}T05:00:00+00:00'"
    row = prices.scan(row_filter=where).to_arrow().to_pylist()
    assert len(row) == 1
    row[0]["price_usd"] = -row[0]["price_usd"] or Decimal("-1")
    prices.overwrite(pa.Table.from_pylist(row, prices.schema().as_arrow()), overwrite_filter=where)

    code, out = lab(home, url, "run", "--start", BAD_DAY, "--end", BAD_DAY,
                    "--steps", "gold", "quality")
    assert code == 1, out[-4000:]
    assert "Quality gate blocked the publish of gold" in out and "Run failed." in out
    run_id = re.search(r"run_id=(\S+)", out).group(1)  # type: ignore[union-attr]
    branch = audit_branch(run_id)
    assert heads(home) == published, "main moved although the gate failed"
    assert BAD_DAY not in fact_days(home)
    assert BAD_DAY in fact_days(home, branch), "the audited data is not on its branch"
    assert len(alerts) == 1 and alerts[0]["branch"] == branch
    assert "silver.asset_prices" in alerts[0]["failed"]
    summary = json.loads((home / "runs" / BAD_DAY / run_id / "summary.json").read_text())
    assert [(s["name"], s["ok"]) for s in summary["steps"]] == [("gold", True),
                                                                 ("quality", False)]
    report = Path(alerts[0]["report"])
    assert report == home / "runs" / BAD_DAY / run_id / "quality" / "index.html"
    assert "Blocked" in report.read_text()
    assert json.loads(report.with_name("report.json").read_text())["verdict"] == "BLOCKED"

    # 3. the fix: silver back to its clean snapshot, and the same dates again
    catalog.load_table("silver.asset_prices").manage_snapshots().rollback_to_snapshot(
        clean_silver).commit()
    code, out = lab(home, url, "run", "--start", BAD_DAY, "--end", BAD_DAY,
                    "--steps", "gold", "quality")
    assert code == 0 and "Run complete." in out, out[-4000:]
    assert BAD_DAY in fact_days(home)
    assert heads(home) != published and len(alerts) == 1
    assert branch in catalog.load_table("gold.fct_asset_daily").refs()  # kept for inspection
