"""A corrected answer passes on the next ``lab check``, whatever the wrong one wrote.

The story from a learner's M3: 03.1 typed ``snapshot_at`` with a plain cast of the epoch
milliseconds, so silver got rows dated tens of thousands of years ahead. Silver keeps rows by
key, so after the fix those rows stayed, and every later check failed on them. The other story
was bronze's: 02.3 stored a rejected payload's meta without its reason; bronze never overwrites
a key, so the fixed answer's write was skipped and the old meta kept failing the check.

``lab check`` now starts from the lakehouse at the start of the milestone (built once by the
earlier solutions, then kept under LAB_HOME/states/), so the corrected notebook passes with no
reset by hand. Each case below, for one milestone: a learner's copy with one typical mistake
(docs/mistakes.md) fails its exercise and writes what the mistake writes; the same copy fixed
passes every exercise on the next check, started from the kept state.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab_env.config import load_settings
from lab_env.lake.catalog import get_catalog
from tests.retries import Retry, retry_after_a_mistake

pytestmark = [pytest.mark.notebook, pytest.mark.spark]


def namespaces_exist(home: Path) -> bool:
    found = {ns[0] for ns in get_catalog(load_settings(home=home)).list_namespaces()}
    return {"bronze", "silver", "gold"} <= found


def rejected_without_reason(home: Path) -> bool:
    metas = [json.loads(p.read_text())
             for p in (home / "raw" / "bronze" / "_rejected").rglob("*.meta.json")]
    return any("reason" not in meta for meta in metas)


def far_future_snapshots(home: Path) -> bool:
    table = get_catalog(load_settings(home=home)).load_table("silver.asset_snapshots")
    return table.scan(row_filter="snapshot_at > '2100-01-01T00:00:00+00:00'").count() > 0


def highs_below_close(home: Path) -> bool:
    rows = get_catalog(load_settings(home=home)).load_table("gold.fct_asset_daily").scan(
        selected_fields=("high_usd", "close_usd")).to_arrow().to_pylist()
    assert rows, "gold.fct_asset_daily is empty"
    return any(r["high_usd"] < r["close_usd"] for r in rows)


RETRIES = {
    # LAB_HOME as the relative default instead of the absolute path settings hold
    "00": Retry("00_welcome.ipynb", "00.1", "my_lab_home = settings.lab_home",
                'my_lab_home = "lakehouse"', "is not where this lab writes"),
    # CREATE NAMESPACE without IF NOT EXISTS: the first run creates them, the rerun fails.
    "01": Retry("01_local_stack.ipynb", "01.1",
                'spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {layer}")',
                'spark.sql(f"CREATE NAMESPACE {layer}")', "not safe to run twice",
                namespaces_exist),
    # the rejected payload's meta without its reason: bronze keeps it, the fix is skipped
    "02": Retry("02_bronze.ipynb", "02.3", '{**meta, "reason": reason}', "meta",
                "has no 'reason'", rejected_without_reason),
    # a plain cast of epoch milliseconds: rows dated far ahead, kept by key in silver
    "03": Retry("03_silver.ipynb", "03.1",
                'F.timestamp_millis("timestamp_ms").alias("snapshot_at")',
                'F.col("timestamp_ms").cast("timestamp").alias("snapshot_at")',
                "the API sends epoch MILLISECONDS", far_future_snapshots),
    # the day's high taken with F.min
    "04": Retry("04_gold.ipynb", "04.1", 'F.max("price_usd").alias("high_usd")',
                'F.min("price_usd").alias("high_usd")', "F.max('price_usd')", highs_below_close),
}


@pytest.mark.parametrize("milestone", sorted(RETRIES))
def test_a_fixed_answer_passes_the_next_check_whatever_the_wrong_one_wrote(
    milestone: str, tmp_path: Path
) -> None:
    # the first check builds the start of the milestone from the earlier solutions
    retry_after_a_mistake(tmp_path / "lakehouse", tmp_path, RETRIES[milestone], "built by")
