"""A corrected answer passes on the next ``lab check``, whatever the wrong one wrote.

The story from a learner's M3: 03.1 typed ``snapshot_at`` with a plain cast of the epoch
milliseconds, so silver got rows dated tens of thousands of years ahead. Silver keeps rows by
key, so after the fix those rows stayed, and every later check failed on them. ``lab check``
now starts from the lakehouse at the start of the milestone (built once by the earlier
solutions, then kept under LAB_HOME/states/), so the corrected notebook passes with no reset
by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lab_env.catalog import get_catalog
from lab_env.config import load_settings
from tests.pipeline_runs import REPO, lab

pytestmark = [pytest.mark.notebook, pytest.mark.spark]

RIGHT = 'F.timestamp_millis("timestamp_ms").alias("snapshot_at")'
WRONG = 'F.col("timestamp_ms").cast("timestamp").alias("snapshot_at")'


def learner_copy(folder: Path, *, wrong: bool) -> Path:
    """The 03 notebook with every exercise answered, 03.1 right or with the plain cast."""
    text = (REPO / "solutions" / "03_silver.ipynb").read_text()
    assert json.dumps(RIGHT)[1:-1] in text
    if wrong:
        text = text.replace(json.dumps(RIGHT)[1:-1], json.dumps(WRONG)[1:-1], 1)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "03_silver.ipynb"
    path.write_text(text)
    return path


def far_future_rows(home: Path) -> int:
    table = get_catalog(load_settings(home=home)).load_table("silver.asset_snapshots")
    return table.scan(row_filter="snapshot_at > '2100-01-01T00:00:00+00:00'").count()


def passed(output: str) -> tuple[int, int]:
    found = re.search(r"(\d+)/(\d+) exercises passed", output)
    assert found, output
    return int(found[1]), int(found[2])


def test_a_fixed_answer_passes_at_once_after_a_wrong_one_wrote_silver(tmp_path: Path) -> None:
    home = tmp_path / "lakehouse"

    wrong = lab(home, "check", str(learner_copy(tmp_path / "wrong", wrong=True)))
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "built by" in wrong.stdout  # the first check builds the start of milestone 03
    assert re.search(r"03\.1\s.*failed", wrong.stdout), wrong.stdout
    assert far_future_rows(home) > 0, "the wrong answer no longer writes what it used to"

    fixed = lab(home, "check", str(learner_copy(tmp_path / "fixed", wrong=False)))
    done, total = passed(fixed.stdout)
    assert fixed.returncode == 0 and done == total, fixed.stdout + fixed.stderr
    assert "kept state" in fixed.stdout  # started again from the kept copy: no rebuild
    assert far_future_rows(home) == 0
    assert (home / "states" / "03" / "state.json").is_file()
