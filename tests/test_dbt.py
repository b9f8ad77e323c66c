"""M8: the dbt project on DuckDB over a real lakehouse, through `lab run`, `lab dbt` and a browser.

One small lakehouse per module: `lab run` over two days with the dbt step (dbt's first build:
every day), then one more day (an incremental build over gold's affected days). Gold runs in
both, so the dbt marts can be held against Spark's gold (the 04.4 rule: same rows, every
DECIMAL equal, doubles within 1e-9).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from lab_env.config import load_settings
from lab_env.course.checks.gold import difference, gold_rows
from lab_env.jobs.dbt import TESTS_FAILED, affected_days, duckdb_path, target_dir
from tests.pipeline_runs import lab

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("dbt")]

FIRST, SECOND, NEXT = dt.date(2025, 3, 1), dt.date(2025, 3, 2), dt.date(2025, 3, 3)
MODELS = (
    "stg_asset_prices",
    "stg_asset_snapshots",
    "stg_assets",
    "dim_asset",
    "fct_asset_daily",
    "mart_market_daily",
)
MARTS = ("dim_asset", "fct_asset_daily", "mart_market_daily")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lakehouse of three days whose dbt marts were built in full, then incrementally."""
    home = tmp_path_factory.mktemp("dbt") / "lakehouse"
    steps = ("--steps", "bronze", "silver", "gold", "dbt")  # the quality gate has its own tests
    first = lab(home, "run", "--start", str(FIRST), "--end", str(SECOND), *steps)
    assert first.returncode == 0, first.stdout + first.stderr
    second = lab(home, "run", "--start", str(NEXT), *steps)
    assert second.returncode == 0, second.stdout + second.stderr
    return home


def summary(home: Path, start: dt.date) -> dict:
    (path,) = (home / "runs").glob(f"{start}*/*/summary.json")
    return json.loads(path.read_text())


def marts(home: Path) -> dict[str, pa.Table]:
    """Every mart of the DuckDB file, rows sorted."""
    with duckdb.connect(str(duckdb_path(load_settings(home=home))), read_only=True) as con:
        tables = {m: con.sql(f"SELECT * FROM marts.{m}").to_arrow_table() for m in MARTS}
    return {m: t.sort_by([(c, "ascending") for c in t.column_names]) for m, t in tables.items()}


def test_the_dbt_step_builds_every_model_and_passes_every_test(home: Path) -> None:
    for start in (FIRST, NEXT):
        (dbt,) = [s for s in summary(home, start)["steps"] if s["name"] == "dbt"]
        assert dbt["ok"], dbt["error"]
        results = json.loads(Path(dbt["output"]).read_text())["results"]
        built = {
            r["unique_id"].split(".")[-1] for r in results if r["unique_id"].startswith("model.")
        }
        assert built == set(MODELS)
        tests = [r for r in results if r["unique_id"].startswith(("test.", "unit_test."))]
        assert len(tests) >= 25 and all(r["status"] == "pass" for r in tests)
        assert any(r["unique_id"].startswith("unit_test.") for r in tests)
        assert all(r["status"] in ("success", "pass", "no-op") for r in results)


def test_the_incremental_build_reads_and_writes_gold_affected_days(home: Path) -> None:
    settings = load_settings(home=home)
    # NEXT's history overlaps the day before by an hour: SECOND is affected too (late data).
    assert affected_days(settings, NEXT, NEXT) == (SECOND, NEXT)
    manifest = json.loads((target_dir(settings) / "manifest.json").read_text())
    prices = manifest["sources"]["source.lakehouse_lab.silver.asset_prices"]["config"]
    # read from 30 days before the first written day: the filter went into the pyiceberg scan
    assert "observed_at >= '2025-01-31T00:00:00+00:00'" in prices["row_filter"]
    assert "observed_at < '2025-03-04T00:00:00+00:00'" in prices["row_filter"]
    log = (home / "dbt" / "logs" / "dbt.log").read_text()
    assert "delete from" in log.lower()  # delete+insert on the written keys, not a rebuild


def test_the_marts_equal_spark_gold(home: Path) -> None:
    from tests.pipeline_runs import lab_environment

    built = marts(home)
    with lab_environment(LAB_HOME=str(home)):
        for mart in ("dim_asset", "fct_asset_daily"):
            spark_gold = gold_rows(mart, FIRST - dt.timedelta(days=1), NEXT)
            assert spark_gold.num_rows > 0
            assert difference(mart, built[mart], spark_gold) is None


def test_an_incremental_build_equals_a_full_refresh(home: Path) -> None:
    incremental = marts(home)
    result = lab(home, "dbt", "build", "--full-refresh")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 models" in result.stdout and "every day" in result.stdout
    full = marts(home)
    for mart in MARTS:
        assert incremental[mart].num_rows > 0
        assert incremental[mart].equals(full[mart]), f"{mart} differs from a full refresh"


def test_a_failing_dbt_test_fails_the_command_and_the_step_with_one_line(
    home: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "lakehouse"
    shutil.copytree(home, broken, ignore=shutil.ignore_patterns("runs", ".lab.lock*"))
    # A duplicate of a day the next incremental build does not rewrite: it stays, and the
    # grain test must catch it.
    with duckdb.connect(str(duckdb_path(load_settings(home=broken)))) as con:
        con.execute(
            "INSERT INTO marts.fct_asset_daily SELECT * FROM marts.fct_asset_daily "
            f"WHERE trade_date = DATE '{FIRST}' AND asset_id = 'bitcoin'"
        )
    command = lab(broken, "dbt", "build", "--start", str(NEXT))
    assert command.returncode != 0, command.stdout
    (line,) = [ln for ln in command.stderr.splitlines() if ln.strip()]  # one line, no traceback
    assert line.startswith(f"error: {TESTS_FAILED}: 1 of ") and " Fix: " in line, line
    assert "unique_combination_of_columns_fct_asset_daily" in line and "(1 failing row)" in line
    # the same through `lab run`: the dbt step fails, and with it the run
    run = lab(broken, "run", "--start", str(NEXT), "--steps", "dbt")
    assert run.returncode == 1 and "Traceback" not in run.stdout + run.stderr, run.stdout
    assert "Run failed." in run.stdout and TESTS_FAILED in run.stdout
    (dbt,) = summary(broken, NEXT)["steps"]
    assert not dbt["ok"] and dbt["error"] == line.removeprefix("error: ")


def test_the_docs_open_offline_and_show_every_model(home: Path) -> None:
    from playwright.sync_api import sync_playwright

    result = lab(home, "dbt", "docs")
    assert result.returncode == 0, result.stdout + result.stderr
    page_path = target_dir(load_settings(home=home)) / "static_index.html"
    manifest = json.loads((page_path.parent / "manifest.json").read_text())
    models = {k: v for k, v in manifest["nodes"].items() if v["resource_type"] == "model"}
    assert {node["name"] for node in models.values()} == set(MODELS)

    def offline(route) -> None:  # type: ignore[no-untyped-def]
        local = route.request.url.startswith(("file://", "data:", "http://127.0.0.1"))
        route.continue_() if local else route.abort()

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: run `make system` (apt-get install chromium).")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        try:
            page = browser.new_page()
            page.route("**/*", offline)
            for uid, node in models.items():
                page.goto(f"{page_path.as_uri()}#!/model/{uid}")
                first_words = " ".join(node["description"].split()[:4])
                page.wait_for_function(
                    "([name, words]) => document.body.innerText.includes(name)"
                    " && document.body.innerText.includes(words)"
                    " && document.body.innerText.includes('Columns')",
                    arg=[node["name"], first_words],
                    timeout=30_000,
                )
                for column in node["columns"]:
                    assert column in page.inner_text("body"), f"{uid}: no column {column}"
        finally:
            browser.close()
