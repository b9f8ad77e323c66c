"""A bad upstream answer never blocks a day for good: a later fetch supersedes it, or it is retired.

One LAB_HOME walks the whole story an operator meets (docs/bronze.md, "Retiring a bad answer"):

0. the day's ``/assets`` answer arrives cut in half: it goes to ``_rejected`` with its reason,
   never to bronze, and the run fails saying so;
1. the source sends null prices; bronze stores them (they parse) and the day's next healthy run
   fetches again: the newer answer is what silver and the gate read, so the day publishes;
2. the source drops ``priceUsd``; bronze stores that too, and now the healthy re-fetch is
   identical to an answer already stored, so it is skipped and the bad one stays newest: the
   gate blocks the day, on every run;
3. ``lab bronze list`` names the bad answers and their run, ``lab bronze retire --run`` moves them
   to ``bronze/_retired/`` with the reason, and the next run publishes. Nothing was deleted.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from lab_env.config import load_settings
from lab_env.jobs.bronze import RETIRED, answers
from lab_env.lake.catalog import get_catalog
from lab_env.lake.storage import make_store
from lab_env.source.replay import replay_server
from tests.pipeline_runs import lab

pytestmark = pytest.mark.spark

DAY = "2025-03-31"
ASSETS = ("bitcoin", "ethereum", "tether")  # a part of the day: the story is the same, faster


def run(home: Path, *args: str, url: str | None = None) -> tuple[int, str]:
    env = {"LAB_COINCAP_URL": url} if url else None
    result = lab(home, "run", "--start", DAY, "--assets", *ASSETS, *args, env=env)
    return result.returncode, result.stdout + result.stderr


def published_rows(home: Path) -> int:
    """The day's rows on gold's main branch (what the gate published)."""
    table = get_catalog(load_settings(home=home)).load_table("gold.fct_asset_daily")
    return table.scan(row_filter=f"trade_date = '{DAY}'").count()


def test_a_superseded_or_retired_bad_answer_no_longer_blocks_the_day(tmp_path: Path) -> None:
    home = tmp_path / "lakehouse"
    store = make_store(load_settings(home=home))
    day = dt.date.fromisoformat(DAY)

    # 0. A cut /assets answer: rejected with its reason, the run fails, bronze holds nothing.
    with replay_server(truncate=1, route="assets") as url:
        code, out = run(home, "--steps", "bronze", url=url)
    assert code == 1 and "rejected" in out and "Traceback" not in out, out
    assert answers(store, day, day) == []
    (cut,) = [k for k in store.list("bronze/_rejected") if k.endswith(".meta.json")]
    assert json.loads(store.get(cut))["reason"].startswith("invalid JSON")

    # 1. Null prices from upstream, then a healthy run: the newer answer supersedes the bad one.
    with replay_server(null_field="priceUsd", route={"null_field": "history"}) as url:
        code, out = run(home, "--steps", "bronze", url=url)
    assert code == 0, out
    code, out = run(home)
    assert code == 0, f"the old null-price answers still block the day:\n{out}"
    assert published_rows(home) == len(ASSETS)
    stored = answers(store, day, day)
    bad_old = [a for a in stored if "no price" in a.problem]
    assert len(bad_old) == len(ASSETS) and not any(a.current for a in bad_old), stored

    # 2. A second bad answer, newer than the healthy one the next re-fetch repeats (and skips).
    with replay_server(rename_field="priceUsd=price", route={"rename_field": "history"}) as url:
        code, out = run(home, "--steps", "bronze", url=url)
    assert code == 0, out
    code, out = run(home)
    assert code == 1, out
    assert "bronze.asset_history" in out and "Traceback" not in out, out

    # 3. List, retire the bad run's answers, run again: the day publishes.
    listing = lab(home, "bronze", "list", "--start", DAY)
    assert listing.returncode == 0, listing.stderr
    assert "records without priceUsd" in listing.stdout
    current_bad = [a for a in answers(store, day, day) if a.current and a.problem]
    assert {a.problem for a in current_bad} == {"records without priceUsd"}
    (bad_run,) = {a.run_id for a in current_bad}
    retired = lab(home, "bronze", "retire", "--run", bad_run, "--start", DAY,
                  "--reason", "upstream sent history without priceUsd")
    assert retired.returncode == 0, retired.stderr
    assert len(re.findall(r"^retired: ", retired.stdout, re.M)) == len(ASSETS)

    code, out = run(home)
    assert code == 0, f"the retired answers still block the day:\n{out}"
    assert published_rows(home) == len(ASSETS)
    after = answers(store, day, day)
    assert not any(a.current and a.problem for a in after)
    assert {a.key for a in after} == {a.key for a in stored}, "only the retired answers left"
    # Nothing deleted: each retired answer is kept with its sidecar, the reason and its origin.
    kept = [k for k in store.list(RETIRED) if k.endswith(".meta.json")]
    assert len(kept) == len(ASSETS)
    record = json.loads(store.get(kept[0]))
    assert record["run_id"] == bad_run
    assert record["retired"]["reason"] == "upstream sent history without priceUsd"
    assert record["retired"]["from"] in {a.key for a in current_bad}
    assert store.exists(kept[0].removesuffix(".meta.json"))


def test_retire_refuses_what_is_not_a_bronze_answer(tmp_path: Path) -> None:
    home = tmp_path / "lakehouse"
    for args, says in (
        (("bronze/_rejected/x.body",), "is not a bronze answer"),
        (("bronze/coincap/assets/ingest_date=2025-03-31/assets-0.json",), "No bronze answer"),
        (("--run", "r1"), "--run needs the day"),
        ((), "Nothing to retire"),
    ):
        result = lab(home, "bronze", "retire", *args, "--reason", "test")
        assert result.returncode != 0 and says in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
