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
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab_env.config import load_settings
from lab_env.lake.catalog import get_catalog
from tests.pipeline_runs import REPO, lab

pytestmark = [pytest.mark.notebook, pytest.mark.spark]


@dataclass(frozen=True)
class Retry:
    notebook: str
    exercise: str
    right: str  # text of the solution the mistake replaces
    mistake: str
    left_by_mistake: Callable[[Path], bool]  # what the wrong answer wrote is in LAB_HOME


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
    # CREATE NAMESPACE without IF NOT EXISTS: the first run creates them, the rerun fails.
    "01": Retry("01_local_stack.ipynb", "01.1",
                'spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {layer}")',
                'spark.sql(f"CREATE NAMESPACE {layer}")', namespaces_exist),
    # the rejected payload's meta without its reason: bronze keeps it, the fix is skipped
    "02": Retry("02_bronze.ipynb", "02.3", '{**meta, "reason": reason}', "meta",
                rejected_without_reason),
    # a plain cast of epoch milliseconds: rows dated far ahead, kept by key in silver
    "03": Retry("03_silver.ipynb", "03.1",
                'F.timestamp_millis("timestamp_ms").alias("snapshot_at")',
                'F.col("timestamp_ms").cast("timestamp").alias("snapshot_at")',
                far_future_snapshots),
    # the day's high taken with F.min
    "04": Retry("04_gold.ipynb", "04.1", 'F.max("price_usd").alias("high_usd")',
                'F.min("price_usd").alias("high_usd")', highs_below_close),
}


def learner_copy(folder: Path, retry: Retry, *, wrong: bool) -> Path:
    """The course notebook with every exercise answered: all right, or with the mistake."""
    text = (REPO / "solutions" / retry.notebook).read_text()
    right, mistake = (json.dumps(s)[1:-1] for s in (retry.right, retry.mistake))
    assert right in text, f"{retry.notebook} no longer holds {retry.right!r}"
    # laid out as in the repository: notebooks/ beside sql/, which 04 reads its queries from
    (folder / "notebooks").mkdir(parents=True, exist_ok=True)
    (folder / "sql").symlink_to(REPO / "sql", target_is_directory=True)
    path = folder / "notebooks" / retry.notebook
    path.write_text(text.replace(right, mistake, 1) if wrong else text)
    return path


def passed(output: str) -> tuple[int, int]:
    found = re.search(r"(\d+)/(\d+) exercises passed", output)
    assert found, output
    return int(found[1]), int(found[2])


@pytest.mark.parametrize("milestone", sorted(RETRIES))
def test_a_fixed_answer_passes_the_next_check_whatever_the_wrong_one_wrote(
    milestone: str, tmp_path: Path
) -> None:
    retry = RETRIES[milestone]
    home = tmp_path / "lakehouse"

    wrong = lab(home, "check", str(learner_copy(tmp_path / "wrong", retry, wrong=True)))
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "built by" in wrong.stdout  # the first check builds the start of the milestone
    assert re.search(rf"{re.escape(retry.exercise)}\s.*failed", wrong.stdout), wrong.stdout
    assert retry.left_by_mistake(home), "the wrong answer no longer writes what it used to"

    fixed = lab(home, "check", str(learner_copy(tmp_path / "fixed", retry, wrong=False)))
    done, total = passed(fixed.stdout)
    assert fixed.returncode == 0 and done == total, fixed.stdout + fixed.stderr
    assert "kept state" in fixed.stdout  # started again from the kept copy: no rebuild
    assert (home / "states" / milestone / "state.json").is_file()
    # the moment of the reset: a check in JupyterLab names an earlier failed attempt only after it
    started = json.loads((home / "states" / "started.json").read_text())
    assert started["milestone"] == int(milestone)
    if milestone != "01":  # the namespaces are part of every later start state
        assert not retry.left_by_mistake(home), "what the wrong answer wrote is still there"
