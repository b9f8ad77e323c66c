"""The quality gate with real parts: Iceberg tables, Spark's WAP branch, Great Expectations,
a webhook receiver, and chromium rendering the Data Docs.

Each test builds a small clean lake of its own (namespaces ``qsilver``/``qgold``, three assets,
three days): silver and gold's first two days on main, and the third day of gold written by
Spark to the run's audit branch (``spark.wap.branch``), as the gold step does in production.
A test plants one defect, runs the gate for the third day, and looks at what it did.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog

from lab_env.quality import CRITICAL, WARNING, audit_branch
from lab_env.quality.gate import GateReport, QualityGateFailed, run_gate
from lab_env.quality.suites import ASSET_FIELDS, SUITES_BY_LAYER, severity
from tests.mistakes import mistake

pytestmark = pytest.mark.spark

REPO = Path(__file__).resolve().parents[1]
SILVER, GOLD = "qsilver", "qgold"
ASSETS = {"alpha": ("ALP", 100.0, 1_000.0), "beta": ("BET", 10.0, 5_000.0),
          "gamma": ("GAM", 1.0, 20_000.0)}  # symbol, price, supply
DAYS = [dt.date(2031, 1, 1), dt.date(2031, 1, 2), dt.date(2031, 1, 3)]
RUN_DAY = DAYS[-1]
RUN_ID = "test-run-1"
BRANCH = audit_branch(RUN_ID)
PRICE, AMOUNT = pa.decimal128(38, 24), pa.decimal128(38, 18)
UTC_TS = pa.timestamp("us", tz="UTC")


# ----- a small clean lake -----


def _points(day: dt.date) -> list[dict[str, Any]]:
    rows = []
    for n, (asset_id, (_, price, supply)) in enumerate(ASSETS.items()):
        for hour in range(24):
            value = price * (1 + 0.001 * hour + 0.01 * n + 0.02 * DAYS.index(day))
            rows.append({"asset_id": asset_id,
                         "observed_at": dt.datetime.combine(day, dt.time(hour), dt.UTC),
                         "price_usd": Decimal(f"{value:.6f}"),
                         "circulating_supply": Decimal(f"{supply:.2f}")})
    return rows


def silver_tables() -> dict[str, pa.Table]:
    points = [p for day in DAYS for p in _points(day)]
    snapshots = [{"asset_id": p["asset_id"], "snapshot_date": p["observed_at"].date(),
                  "price_usd": p["price_usd"], "supply": p["circulating_supply"],
                  "market_cap_usd": (p["price_usd"] * p["circulating_supply"]).quantize(
                      Decimal("0.01"))}
                 for p in points if p["observed_at"].hour == 23]
    first = dt.datetime.combine(DAYS[0], dt.time(23), dt.UTC)
    last = dt.datetime.combine(DAYS[-1], dt.time(23), dt.UTC)
    return {
        "asset_prices": pa.Table.from_pylist(points, pa.schema([
            ("asset_id", pa.string()), ("observed_at", UTC_TS), ("price_usd", PRICE),
            ("circulating_supply", AMOUNT)])),
        "asset_snapshots": pa.Table.from_pylist(snapshots, pa.schema([
            ("asset_id", pa.string()), ("snapshot_date", pa.date32()), ("price_usd", PRICE),
            ("supply", AMOUNT), ("market_cap_usd", AMOUNT)])),
        "assets": pa.Table.from_pylist(
            [{"asset_id": a, "symbol": s, "first_seen": first, "last_seen": last}
             for a, (s, _, _) in ASSETS.items()],
            pa.schema([("asset_id", pa.string()), ("symbol", pa.string()),
                       ("first_seen", UTC_TS), ("last_seen", UTC_TS)])),
    }


FCT = pa.schema([("trade_date", pa.date32()), ("asset_id", pa.string()), ("symbol", pa.string()),
                 ("open_usd", PRICE), ("high_usd", PRICE), ("low_usd", PRICE),
                 ("close_usd", PRICE), ("observations", pa.int32()),
                 ("market_cap_usd", AMOUNT)])
ROLLING = pa.schema([("trade_date", pa.date32()), ("asset_id", pa.string()),
                     ("ma_7d_usd", PRICE), ("ma_30d_usd", PRICE)])
RANKINGS = pa.schema([("trade_date", pa.date32()), ("asset_id", pa.string()),
                      ("market_cap_rank", pa.int32())])
DIM = pa.schema([("asset_id", pa.string()), ("symbol", pa.string())])


def gold_rows(day: dt.date) -> dict[str, list[dict[str, Any]]]:
    """The gold marts of one day, computed from the clean silver points."""
    facts = []
    for asset_id, (symbol, _, _) in ASSETS.items():
        prices = [p["price_usd"] for p in _points(day) if p["asset_id"] == asset_id]
        supply = Decimal(f"{ASSETS[asset_id][2]:.2f}")
        facts.append({"trade_date": day, "asset_id": asset_id, "symbol": symbol,
                      "open_usd": prices[0], "high_usd": max(prices), "low_usd": min(prices),
                      "close_usd": prices[-1], "observations": len(prices),
                      "market_cap_usd": (prices[-1] * supply).quantize(Decimal("0.01"))})
    by_cap = sorted(facts, key=lambda f: f["market_cap_usd"], reverse=True)
    return {
        "fct_asset_daily": facts,
        "asset_rolling": [{"trade_date": day, "asset_id": f["asset_id"], "ma_7d_usd": None,
                           "ma_30d_usd": None} for f in facts],
        "daily_rankings": [{"trade_date": day, "asset_id": f["asset_id"], "market_cap_rank": n}
                           for n, f in enumerate(by_cap, start=1)],
    }


GOLD_SCHEMAS = {"fct_asset_daily": FCT, "asset_rolling": ROLLING, "daily_rankings": RANKINGS}


def _replace(catalog: Catalog, name: str, data: pa.Table, wap: bool = False) -> None:
    if catalog.table_exists(name):
        catalog.drop_table(name)
    props = {"write.wap.enabled": "true"} if wap else {}
    catalog.create_table(name, schema=data.schema, properties=props).append(data)


def write_to_branch(spark: Any, name: str, rows: list[dict[str, Any]], branch: str) -> None:
    """Append ``rows`` to ``name`` with Spark while ``spark.wap.branch`` is set: the WAP write."""
    spark.conf.set("spark.wap.branch", branch)
    try:
        frame = spark.createDataFrame([tuple(r.values()) for r in rows],
                                      spark.table(name).schema)
        frame.writeTo(name).append()
    finally:
        spark.conf.unset("spark.wap.branch")


@pytest.fixture(scope="session")
def gx_loaded() -> None:
    """Import Great Expectations once (it takes seconds) before the timed tests."""
    from lab_env.quality.suites import load_gx

    load_gx()


@pytest.fixture
def lake(catalog: Catalog, spark: Any, gx_loaded: None) -> Callable[..., dict[str, int | None]]:
    """Build the clean lake; the returned function writes the run's day of gold to the branch.

    ``write_run(**replace)`` takes replacement rows per gold table (default: the clean rows)
    and returns main's snapshot id of each gold table, taken before the gate runs.
    """
    for namespace in (SILVER, GOLD):
        catalog.create_namespace_if_not_exists(namespace)
    for name, data in silver_tables().items():
        _replace(catalog, f"{SILVER}.{name}", data)
    _replace(catalog, f"{GOLD}.dim_asset", pa.Table.from_pylist(
        [{"asset_id": a, "symbol": s} for a, (s, _, _) in ASSETS.items()], DIM), wap=True)
    for mart, schema in GOLD_SCHEMAS.items():
        rows = [r for day in DAYS[:-1] for r in gold_rows(day)[mart]]
        _replace(catalog, f"{GOLD}.{mart}", pa.Table.from_pylist(rows, schema), wap=True)

    def write_run(**replace: list[dict[str, Any]]) -> dict[str, int | None]:
        run_rows = gold_rows(RUN_DAY) | replace
        for mart in GOLD_SCHEMAS:
            write_to_branch(spark, f"{GOLD}.{mart}", run_rows[mart], BRANCH)
        return main_snapshots(catalog)

    return write_run


def main_snapshots(catalog: Catalog) -> dict[str, int | None]:
    ids = {}
    for mart in ("dim_asset", *GOLD_SCHEMAS):
        snapshot = catalog.load_table(f"{GOLD}.{mart}").current_snapshot()
        ids[mart] = snapshot.snapshot_id if snapshot else None
    return ids


def gate(tmp_path: Path) -> GateReport:
    return run_gate(RUN_DAY, RUN_DAY, RUN_ID, layers=("silver", "gold"), silver=SILVER,
                    gold=GOLD, folder=tmp_path / "run")


def failed(report: GateReport, suite: str, expectation: str, column: str) -> bool:
    return any(o.suite == suite and o.expectation == expectation and o.column == column
               and o.severity == CRITICAL for o in report.failures())


# ----- the suites -----


def test_every_expectation_is_tagged_and_described(gx_loaded: None) -> None:
    for layer, build in SUITES_BY_LAYER.items():
        suites = build(DAYS[0], RUN_DAY)
        assert suites, layer
        levels = set()
        for suite in suites:
            assert suite.name.startswith(f"{layer}."), suite.name
            for expectation in suite.expectations:
                levels.add(severity(expectation))
                assert expectation.description, f"{suite.name}: {expectation.expectation_type}"
        assert levels <= {CRITICAL, WARNING}
        assert CRITICAL in levels, f"{layer} has no blocking expectation"


# ----- the gate -----


def test_spark_writes_the_run_to_its_branch_and_main_stays(
    lake: Callable[..., dict[str, int | None]], catalog: Catalog, spark: Any
) -> None:
    before = {m: catalog.load_table(f"{GOLD}.{m}").current_snapshot().snapshot_id
              for m in GOLD_SCHEMAS}
    after = lake()
    for mart in GOLD_SCHEMAS:
        table = catalog.load_table(f"{GOLD}.{mart}")
        assert after[mart] == before[mart], f"{mart}: the WAP write moved main"
        branch_rows = table.scan(snapshot_id=table.snapshot_by_name(BRANCH).snapshot_id)
        assert branch_rows.to_arrow().num_rows == 3 * len(DAYS)
        assert table.scan().to_arrow().num_rows == 3 * (len(DAYS) - 1)
    # While spark.wap.branch is set, Spark itself reads the branch (gold's compare-then-write).
    spark.conf.set("spark.wap.branch", BRANCH)
    try:
        assert spark.table(f"{GOLD}.fct_asset_daily").count() == 3 * len(DAYS)
    finally:
        spark.conf.unset("spark.wap.branch")
    assert spark.table(f"{GOLD}.fct_asset_daily").count() == 3 * (len(DAYS) - 1)


def test_a_clean_run_is_published(
    lake: Callable[..., dict[str, int | None]], catalog: Catalog, tmp_path: Path,
    webhook: list[dict[str, str]],
) -> None:
    lake()
    branch_heads = {m: catalog.load_table(f"{GOLD}.{m}").snapshot_by_name(BRANCH).snapshot_id
                    for m in GOLD_SCHEMAS}
    report = gate(tmp_path)
    assert report.verdict == "PUBLISHED", report.describe()
    assert not report.failures(CRITICAL)
    assert sorted(report.published) == sorted(f"{GOLD}.{m}" for m in GOLD_SCHEMAS)
    for mart, head in branch_heads.items():
        table = catalog.load_table(f"{GOLD}.{mart}")
        assert table.current_snapshot().snapshot_id == head, f"{mart} main is not the branch"
        assert BRANCH not in table.refs()
    assert catalog.load_table(f"{GOLD}.fct_asset_daily").scan(
        row_filter=f"trade_date = '{RUN_DAY}'").to_arrow().num_rows == 3
    assert webhook == []
    index = Path(report.docs)
    assert index.is_file() and (index.parent / "report.json").is_file()


def _null_close() -> dict[str, list[dict[str, Any]]]:
    facts = gold_rows(RUN_DAY)["fct_asset_daily"]
    facts[1]["close_usd"] = None
    return {"fct_asset_daily": facts}


def _duplicate_fact() -> dict[str, list[dict[str, Any]]]:
    facts = gold_rows(RUN_DAY)["fct_asset_daily"]
    return {"fct_asset_daily": [*facts, dict(facts[0])]}


def _orphan_fact() -> dict[str, list[dict[str, Any]]]:
    rows = gold_rows(RUN_DAY)
    ghost = dict(rows["fct_asset_daily"][0], asset_id="ghostcoin", symbol="GHO")
    return {"fct_asset_daily": [*rows["fct_asset_daily"], ghost],
            "asset_rolling": [*rows["asset_rolling"],
                              dict(rows["asset_rolling"][0], asset_id="ghostcoin")],
            "daily_rankings": [*rows["daily_rankings"],
                               {"trade_date": RUN_DAY, "asset_id": "ghostcoin",
                                "market_cap_rank": 4}]}


def _stale_silver(catalog: Catalog) -> None:
    """Silver stops a day early: the run's day never arrived."""
    catalog.load_table(f"{SILVER}.asset_prices").delete(
        f"observed_at >= '{RUN_DAY.isoformat()}T00:00:00+00:00'")


def _negative_price(catalog: Catalog) -> None:
    table = catalog.load_table(f"{SILVER}.asset_prices")
    at = dt.datetime.combine(RUN_DAY, dt.time(5), dt.UTC)
    row = table.scan(row_filter=f"asset_id = 'beta' AND observed_at = '{at.isoformat()}'")
    bad = row.to_arrow().to_pylist()
    bad[0]["price_usd"] = Decimal("-10.5")
    table.overwrite(pa.Table.from_pylist(bad, table.schema().as_arrow()),
                    overwrite_filter=f"asset_id = 'beta' AND observed_at = '{at.isoformat()}'")


DEFECTS = {
    # defect: (gold rows to write instead, a change to silver, the expectation that must fail)
    "nulls": (_null_close, None, ("gold.fct_asset_daily", "expect_column_values_to_not_be_null",
                                  "close_usd")),
    "duplicates": (_duplicate_fact, None, ("gold.fct_asset_daily",
                                           "expect_compound_columns_to_be_unique",
                                           "asset_id, trade_date")),
    "orphan fact": (_orphan_fact, None, ("gold.reconciliation",
                                         "expect_column_values_to_be_in_set", "orphan_facts")),
    "stale data": (dict, _stale_silver, ("silver.asset_prices",
                                         "expect_column_max_to_be_between", "observed_at")),
    "negative price": (dict, _negative_price, ("silver.asset_prices",
                                               "expect_column_values_to_be_between",
                                               "price_usd")),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_a_planted_defect_blocks_the_publish(
    defect: str, lake: Callable[..., dict[str, int | None]], catalog: Catalog, tmp_path: Path,
    webhook: list[dict[str, str]], caplog: pytest.LogCaptureFixture,
) -> None:
    gold_change, silver_change, (suite, expectation, column) = DEFECTS[defect]
    if silver_change:
        silver_change(catalog)
    main_before = lake(**gold_change())
    with caplog.at_level("ERROR", logger="lakehouse.alerts"), \
            pytest.raises(QualityGateFailed) as raised:
        gate(tmp_path)
    report = raised.value.report
    assert report.verdict == "BLOCKED"
    assert failed(report, suite, expectation, column), report.describe()
    assert main_snapshots(catalog) == main_before, "main moved although the audit failed"
    for mart in GOLD_SCHEMAS:
        assert BRANCH in catalog.load_table(f"{GOLD}.{mart}").refs(), f"{mart} lost its branch"
    if gold_change is not dict:  # the planted rows wait on the branch for inspection
        table = catalog.load_table(f"{GOLD}.fct_asset_daily")
        on_branch = table.scan(snapshot_id=table.snapshot_by_name(BRANCH).snapshot_id,
                               row_filter=f"trade_date = '{RUN_DAY}'").to_arrow()
        assert on_branch.num_rows == len(gold_change()["fct_asset_daily"])
    assert len(webhook) == 1 and suite in webhook[0]["failed"]
    assert webhook[0]["run_id"] == RUN_ID and webhook[0]["branch"] == BRANCH
    assert any("ALERT" in r.message and "Quality gate" in r.message for r in caplog.records)
    assert "lab docs --run" in str(raised.value)


def test_warnings_are_reported_and_do_not_block(
    lake: Callable[..., dict[str, int | None]], catalog: Catalog, tmp_path: Path,
    webhook: list[dict[str, str]], caplog: pytest.LogCaptureFixture,
) -> None:
    facts = gold_rows(RUN_DAY)["fct_asset_daily"]
    facts[2]["symbol"] = None
    lake(fct_asset_daily=facts)
    with caplog.at_level("WARNING", logger="lakehouse.quality"):
        report = gate(tmp_path)
    assert report.verdict == "PUBLISHED"
    warned = report.failures(WARNING)
    assert [(o.suite, o.column) for o in warned] == [("gold.fct_asset_daily", "symbol")]
    assert any("quality warning" in r.message for r in caplog.records)
    assert webhook == []
    assert BRANCH not in catalog.load_table(f"{GOLD}.fct_asset_daily").refs()


# ----- bronze -----


def test_bronze_suites_catch_unparsable_and_out_of_window_payloads(
    tmp_path: Path, gx_loaded: None
) -> None:
    from lab_env.lake.storage import get_store

    day = dt.date(2032, 2, 2)
    store = get_store()
    part = f"bronze/coincap/asset_history/ingest_date={day}/asset_id="
    inside = int(dt.datetime.combine(day, dt.time(3), dt.UTC).timestamp() * 1000)
    outside = int(dt.datetime.combine(day + dt.timedelta(days=3), dt.time(), dt.UTC)
                  .timestamp() * 1000)
    points = [{"priceUsd": "1.5", "time": inside + n * 3_600_000} for n in range(24)]
    points.append({"priceUsd": "1.5", "time": outside})
    for key, body in ((f"{part}alpha/history-ok.json", json.dumps({"data": points})),
                      (f"{part}beta/history-cut.json", '{"data": [{"priceUsd": "1.')):
        store.put(key, body.encode())
        store.put(f"{key}.meta.json", b"{}")
    assets_key = f"bronze/coincap/assets/ingest_date={day}/assets-x.json"
    store.put(assets_key, json.dumps({"data": [
        {f: "1" for f in ("id", "rank", "symbol", "name", "supply", "priceUsd", "marketCapUsd")}
        for _ in range(20)]}).encode())  # no .meta.json beside it
    with pytest.raises(QualityGateFailed) as raised:
        run_gate(day, day, "bronze-test", layers=("bronze",), folder=tmp_path / "run",
                 alert=False)
    report = raised.value.report
    failures = {(o.suite, o.column) for o in report.failures(CRITICAL)}
    assert ("bronze.asset_history", "parses") in failures
    assert ("bronze.history_points", "observed_at") in failures
    assert ("bronze.assets", "has_meta") in failures
    assert ("bronze.assets", "parses") not in failures


def test_bronze_audits_the_answer_silver_reads_the_newest_of_each_folder(
    tmp_path: Path, gx_loaded: None
) -> None:
    """A day fetched twice keeps both answers; the audit, like silver, reads the newer one."""
    from lab_env.lake.storage import get_store

    store = get_store()
    start = int(dt.datetime(2033, 3, 3, tzinfo=dt.UTC).timestamp() * 1000)
    priced = [{"priceUsd": "2.5", "time": start + n * 3_600_000} for n in range(24)]
    unpriced = [{"priceUsd": None, "time": start + n * 3_600_000} for n in range(24)]
    assets = json.dumps({"data": [{f: "1" for f in ASSET_FIELDS} for _ in range(20)]}).encode()

    def day_with(first: list[dict], then: list[dict], day: dt.date) -> None:
        store.put(f"bronze/coincap/assets/ingest_date={day}/assets-x.json", assets)
        store.put(f"bronze/coincap/assets/ingest_date={day}/assets-x.json.meta.json", b"{}")
        folder = f"bronze/coincap/asset_history/ingest_date={day}/asset_id=alpha"
        for name, records, fetched in (("a", first, "T09:00:00.000+00:00"),
                                       ("b", then, "T08:00:00.000+00:00")):
            key = f"{folder}/history-{name}.json"  # "b" sorts last but was fetched first
            store.put(key, json.dumps({"data": records}).encode())
            store.put(f"{key}.meta.json",
                      json.dumps({"fetched_at": f"{day}{fetched}"}).encode())

    def critical_failures(day: dt.date) -> set[tuple[str, str | None]]:
        try:
            run_gate(day, day, f"bronze-{day}", layers=("bronze",), folder=tmp_path / str(day),
                     alert=False)
        except QualityGateFailed as failed:
            return {(o.suite, o.column) for o in failed.report.failures(CRITICAL)}
        return set()

    healed, broken = dt.date(2033, 3, 3), dt.date(2033, 3, 4)
    day_with(priced, unpriced, healed)  # the null prices were fetched first, then replaced
    shifted = [{**p, "time": p["time"] + 86_400_000} for p in priced]
    day_with([{**p, "priceUsd": None} for p in shifted], shifted, broken)  # the other way round
    assert ("bronze.history_points", "price_usd") not in critical_failures(healed)
    assert ("bronze.history_points", "price_usd") in critical_failures(broken)


# ----- Data Docs in a browser -----

CHROMIUM = shutil.which("chromium")


def render(page: Path, profile: Path) -> str:
    """The DOM chromium builds for ``page``, after its scripts ran."""
    assert CHROMIUM is not None
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=3000",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_data_docs_render_every_suite_and_result_in_chromium(
    lake: Callable[..., dict[str, int | None]], tmp_path: Path, webhook: list[dict[str, str]],
) -> None:
    import html
    import re

    if CHROMIUM is None:
        pytest.fail("chromium is not installed: run `make system` (apt-get install chromium).")
    lake(**_duplicate_fact())
    with pytest.raises(QualityGateFailed) as raised:
        gate(tmp_path)
    report = raised.value.report
    index = Path(report.docs)
    dom = render(index, tmp_path / "chromium")
    rows = re.findall(r'<td class="suite">([^<]+)</td><td class="status">([^<]+)</td>', dom)
    shown = dict(rows)
    suites = {o.suite for o in report.outcomes}
    assert set(shown) == suites
    for suite in suites:
        blocked = any(o.suite == suite for o in report.failures(CRITICAL))
        assert (shown[suite] == "Failed") == blocked, suite
    assert shown["gold.fct_asset_daily"] == "Failed" and shown["silver.assets"] == "Passed"
    assert 'id="verdict"' in dom and "Blocked" in dom and BRANCH in dom
    links = re.findall(r'href="(data_docs/validations/[^"]+)"', dom)
    assert len(links) == len(suites)
    for link in links:
        parts = html.unescape(link).split("/")
        suite = f"{parts[2]}.{parts[3]}"  # data_docs/validations/<layer>/<name>/<run>/<time>/
        page = render(index.parent / html.unescape(link), tmp_path / "chromium")
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
        blocked = any(o.suite == suite and o.severity == CRITICAL for o in report.failures())
        warned = any(o.suite == suite for o in report.failures(WARNING))
        status = "Failed" if blocked or warned else "Succeeded"
        assert f"Status: {status}" in text, (suite, text[:500])
        for outcome in (o for o in report.outcomes if o.suite == suite):
            assert outcome.rule in html.unescape(text), (suite, outcome.rule)


def test_lab_docs_prints_and_serves_the_report(
    lake: Callable[..., dict[str, int | None]], tmp_path: Path, lab_home: Path
) -> None:
    lake()
    report = run_gate(RUN_DAY, RUN_DAY, RUN_ID, layers=("silver", "gold"), silver=SILVER,
                      gold=GOLD)  # into the run folder under LAB_HOME, where `lab docs` looks
    env = {"LAB_HOME": str(lab_home), "PATH": "/usr/bin:/bin"}
    shown = subprocess.run([sys.executable, "-m", "lab_env.cli", "docs", "--run", RUN_ID],
                           env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
                           check=False)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == report.docs
    missing = subprocess.run([sys.executable, "-m", "lab_env.cli", "docs", "--run", "nope"],
                             env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
                             check=False)
    assert missing.returncode == 2 and "No quality report for run nope" in missing.stderr
    server = subprocess.Popen(
        [sys.executable, "-m", "lab_env.cli", "docs", "--run", RUN_ID, "--serve", "--port", "0"],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        server.stdout.readline()  # the report's path
        url = server.stdout.readline().split()[1]
        assert url.startswith("http://127.0.0.1:")
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as answer:
                    body = answer.read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.5)
        assert "Quality report" in body and "gold.fct_asset_daily" in body
    finally:
        server.terminate()
        server.wait(timeout=30)


# ----- the 06.x self-checks: right answers pass, wrong ones fail with their hint -----

CHECK_DAYS = {"start_date": DAYS[0].isoformat(), "end_date": DAYS[1].isoformat()}
CHECK_LAKE = {"silver": SILVER, "gold": GOLD}


def _tag(expectation: Any, level: str) -> Any:
    expectation.meta = {"severity": level}
    return expectation


def test_quality_checks_pass_the_right_expectations(
    lake: Callable[..., dict[str, int | None]], catalog: Catalog
) -> None:
    from lab_env.course.checks import quality
    from lab_env.quality.suites import load_gx

    gxe = load_gx().expectations
    dim_ids = catalog.load_table(f"{GOLD}.dim_asset").scan().to_arrow()["asset_id"].to_pylist()
    answers = [
        (quality.negative_price, gxe.ExpectColumnValuesToBeBetween(
            column="price_usd", min_value=0, strict_min=True), CRITICAL, {"silver": SILVER}),
        (quality.duplicate_fact, gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["asset_id", "trade_date"]), CRITICAL, CHECK_LAKE),
        (quality.orphan_fact, gxe.ExpectColumnValuesToBeInSet(
            column="asset_id", value_set=dim_ids), CRITICAL, CHECK_LAKE),
        (quality.stale_facts, gxe.ExpectColumnMaxToBeBetween(
            column="trade_date", min_value=CHECK_DAYS["end_date"]), CRITICAL, CHECK_LAKE),
        (quality.missing_symbol, gxe.ExpectColumnValuesToNotBeNull(column="symbol"), WARNING,
         CHECK_LAKE),
    ]
    for check, rule, level, where in answers:
        result = check(_tag(rule, level), **CHECK_DAYS, **where)
        assert result.passed, result.message


def test_quality_checks_fail_wrong_expectations_with_a_hint(
    lake: Callable[..., dict[str, int | None]]
) -> None:
    from lab_env.course.checks import quality
    from lab_env.quality.suites import load_gx

    gxe = load_gx().expectations
    positive = gxe.ExpectColumnValuesToBeBetween(column="price_usd", min_value=0, strict_min=True)
    cases = [
        # (check, answer, the severity to tag it with or None, where, words the hint must
        # contain, the mistake it applies)
        (quality.negative_price, "price_usd > 0", None, {"silver": SILVER},
         "not an expectation", mistake("06.1", "sql-string")),
        (quality.negative_price, positive, None, {"silver": SILVER},
         "meta={'severity': 'critical'}", mistake("06.1", "no-severity")),
        (quality.negative_price, gxe.ExpectColumnValuesToBeBetween(
            column="price_usd", min_value=50), CRITICAL, {"silver": SILVER},
         "fails on the clean data too", mistake("06.1", "threshold-from-the-data")),
        (quality.negative_price, gxe.ExpectColumnValuesToBeBetween(
            column="price_usd", min_value=0), CRITICAL, {"silver": SILVER},
         "lets a zero price through", mistake("06.1", "zero-allowed")),
        (quality.duplicate_fact, gxe.ExpectColumnValuesToBeUnique(column="asset_id"), CRITICAL,
         CHECK_LAKE, "fails on the clean data too", mistake("06.2", "one-column-unique")),
        (quality.duplicate_fact, gxe.ExpectColumnValuesToNotBeNull(column="asset_id"), CRITICAL,
         CHECK_LAKE, "lets a duplicated fact through", mistake("06.2", "wrong-expectation")),
        (quality.duplicate_fact, gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["asset_id", "trade_date"]), WARNING, CHECK_LAKE,
         "meta={'severity': 'critical'}", mistake("06.2", "warning-only")),
        (quality.orphan_fact, gxe.ExpectColumnValuesToBeInSet(
            column="asset_id", value_set=[*ASSETS, "ghostcoin"]), CRITICAL, CHECK_LAKE,
         "lets an orphan fact", mistake("06.3", "set-includes-the-orphan")),
        (quality.orphan_fact, gxe.ExpectColumnValuesToNotBeNull(column="asset_id"), CRITICAL,
         CHECK_LAKE, "lets an orphan fact", mistake("06.3", "not-null-instead-of-set")),
        (quality.orphan_fact, gxe.ExpectColumnValuesToBeInSet(
            column="asset_id", value_set=list(ASSETS)), WARNING, CHECK_LAKE,
         "meta={'severity': 'critical'}", mistake("06.3", "warning-only")),
        (quality.stale_facts, gxe.ExpectColumnMaxToBeBetween(
            column="trade_date", min_value=CHECK_DAYS["start_date"]), CRITICAL, CHECK_LAKE,
         "lets stale facts", mistake("06.4", "start-date-not-end-date")),
        (quality.stale_facts, gxe.ExpectColumnMinToBeBetween(
            column="trade_date", min_value=CHECK_DAYS["end_date"]), CRITICAL, CHECK_LAKE,
         "fails on the clean data too", mistake("06.4", "min-not-max")),
        (quality.stale_facts, gxe.ExpectColumnMaxToBeBetween(
            column="trade_date", min_value=CHECK_DAYS["end_date"]), WARNING, CHECK_LAKE,
         "meta={'severity': 'critical'}", mistake("06.4", "warning-only")),
        (quality.missing_symbol, gxe.ExpectColumnValuesToNotBeNull(column="symbol"), CRITICAL,
         CHECK_LAKE, "meta={'severity': 'warning'}", mistake("06.5", "blocks-the-publish")),
        (quality.missing_symbol, gxe.ExpectColumnValuesToNotBeNull(column="asset_id"), WARNING,
         CHECK_LAKE, "lets a fact without its symbol", mistake("06.5", "wrong-column")),
        (quality.missing_symbol, "symbol IS NOT NULL", None, CHECK_LAKE, "not an expectation",
         mistake("06.5", "sql-string")),
    ]
    for check, answer, level, where, words, _applies in cases:
        if level is not None:
            answer = _tag(answer, level)
        result = check(answer, **CHECK_DAYS, **where)
        assert not result.passed, (check.__name__, answer)
        assert words in result.message, (check.__name__, result.message)
