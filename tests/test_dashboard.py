"""M10 on a real small lakehouse: the dashboard, the static report and the S3 export.

One `lab run` for 2025-03-29..31 builds gold once for the module (about a minute and a half).
Every number the tests expect comes from their own DuckDB query over gold's Iceberg tables
(pyiceberg scans), never from the module under test; the app and the report only lend their
number formatting. Servers are real and local: Streamlit (in-process for AppTest, as
`lab dashboard` for the browser test) and moto's S3 server, all on 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import duckdb
import pyarrow as pa
import pytest

from lab_env.config import get_settings, load_settings
from lab_env.dashboard import data
from lab_env.lake.catalog import get_catalog
from tests.pipeline_runs import free_port, lab, lab_env_vars, stop_group

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "lab_env" / "dashboard" / "app.py"
SCREENSHOT = REPO / "docs" / "img" / "dashboard.png"
START, END = "2025-03-29", "2025-03-31"
LAST = dt.date(2025, 3, 31)
TABLES = ("dim_asset", "fct_asset_daily", "asset_rolling", "daily_rankings")
# What the S3 tests give boto3 through the standard chain: it must never be printed.
SECRET = "m10-secret-Zq8vX3kP0wLr"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LAB_HOME with bronze, silver and published gold for three days, and its run folder."""
    home = tmp_path_factory.mktemp("m10") / "lakehouse"
    result = lab(home, "run", "--start", START, "--end", END)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return home


def gold_sql(home: Path, sql: str, params: list[Any] | None = None) -> list[tuple]:
    """``sql`` over gold's tables, read by this test with pyiceberg into its own DuckDB."""
    catalog = get_catalog(load_settings(home=home))
    con = duckdb.connect()
    for name in TABLES:
        catalog.load_table(f"gold.{name}").scan().to_duckdb(name, connection=con)
    return con.execute(sql, params or []).fetchall()


def gold_arrow(home: Path, name: str) -> pa.Table:
    rows = get_catalog(load_settings(home=home)).load_table(f"gold.{name}").scan().to_arrow()
    keys = ["trade_date", "asset_id"] if "trade_date" in rows.column_names else ["asset_id"]
    return rows.sort_by([(k, "ascending") for k in keys])


@pytest.fixture
def at_home(built: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("LAB_HOME", str(built))
    get_settings.cache_clear()
    yield built
    get_settings.cache_clear()


# ----- the app's logic, without a browser (Streamlit's AppTest) -----


def app_test() -> Any:
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(APP), default_timeout=120).run()


def metric(at: Any, label: str) -> Any:
    (found,) = [m for m in at.metric if m.label == label]
    return found


def test_the_market_tab_shows_gold_of_the_latest_day(at_home: Path) -> None:
    at = app_test()
    assert not at.exception and not at.error, at.exception or at.error
    assert at.selectbox(key="day").value == LAST
    (cap, volume, assets), = gold_sql(
        at_home, "SELECT sum(market_cap_usd)::DOUBLE, sum(volume_usd_24h)::DOUBLE, count(*) "
                 "FROM fct_asset_daily WHERE trade_date = $1", [LAST])
    assert metric(at, "Market cap").value == data.usd(cap)
    assert metric(at, "24h volume").value == data.usd(volume)
    assert metric(at, "Assets").value == str(assets)
    leaders = at.table[0].value
    top = gold_sql(at_home, "SELECT symbol FROM daily_rankings WHERE trade_date = $1 "
                            "ORDER BY market_cap_rank LIMIT 10", [LAST])
    assert list(leaders["symbol"]) == [s for (s,) in top]


def test_the_movers_and_asset_tabs_follow_the_chosen_day_and_asset(at_home: Path) -> None:
    day = dt.date(2025, 3, 30)
    at = app_test()
    at.selectbox(key="day").select(day).run()
    at.selectbox(key="asset").select("ethereum").run()
    assert not at.exception, at.exception
    (close, ma7, rank), = gold_sql(
        at_home, "SELECT r.close_usd::DOUBLE, r.ma_7d_usd::DOUBLE, k.market_cap_rank "
                 "FROM asset_rolling r JOIN daily_rankings k USING (trade_date, asset_id) "
                 "WHERE asset_id = 'ethereum' AND trade_date = $1", [day])
    assert metric(at, "Close").value == data.usd(close)
    assert metric(at, "7-day average").value == data.usd(ma7)
    assert metric(at, "Market-cap rank").value == f"#{rank}"
    movers = gold_sql(at_home, "SELECT symbol, daily_return FROM daily_rankings "
                               "WHERE trade_date = $1 AND is_top_mover", [day])
    (table,) = [t.value for t in at.table if "move" in t.value.columns]
    assert sorted(table.index) == sorted(s for s, _ in movers)
    assert len(movers) == 6  # three gainers and three losers
    shown = dict(zip(table.index, table["daily return"], strict=True))
    assert all(shown[s] == data.pct(r) for s, r in movers)


def test_the_freshness_tab_shows_the_last_runs_verdict(at_home: Path) -> None:
    at = app_test()
    (report,) = at_home.glob("runs/*/*/quality/report.json")
    verdict = json.loads(report.read_text())["verdict"]
    assert verdict == "PUBLISHED"
    assert metric(at, "Last quality verdict").value == verdict
    assert metric(at, "Latest trade day").value == END
    assert metric(at, "Days in gold").value == str(
        gold_sql(at_home, "SELECT count(DISTINCT trade_date) FROM fct_asset_daily")[0][0])
    assert any(report.parents[1].name in s.value for s in at.success)


def test_without_gold_the_app_says_how_to_build_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "empty"))
    get_settings.cache_clear()
    at = app_test()
    get_settings.cache_clear()
    assert not at.exception
    assert "gold.dim_asset does not exist" in at.error[0].value
    assert "lab run" in at.error[0].value


# ----- the static report -----


def test_the_report_is_self_contained_and_shows_golds_numbers(built: Path) -> None:
    result = lab(built, "report")  # default: into the latest run's folder
    assert result.returncode == 0, result.stderr
    (page,) = built.glob("runs/*/*/report.html")
    assert result.stdout.strip() == str(page)
    html = page.read_text(encoding="utf-8")
    outside = [u for u in re.findall(r"https?://[^\s\"'<>)]+", html)
               if urlparse(u).hostname != "127.0.0.1"]
    assert not outside, outside[:5]
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert html.count("<svg") == 4  # market, ranks, two assets
    (cap, assets), = gold_sql(built, "SELECT sum(market_cap_usd)::DOUBLE, count(*) "
                                     "FROM fct_asset_daily WHERE trade_date = $1", [LAST])
    assert f'id="market-cap">{data.usd(cap)}<' in html
    assert f'id="assets">{assets}<' in html
    movers = gold_sql(built, "SELECT symbol, daily_return FROM daily_rankings "
                             "WHERE trade_date = $1 AND is_top_mover", [LAST])
    for symbol, ret in movers:
        assert re.search(rf"<td>{symbol}</td>.*?{re.escape(data.pct(ret))}", html), symbol
    assert 'id="verdict">PUBLISHED<' in html


# ----- the browser: `lab dashboard` in headless Debian chromium -----


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "lab dashboard exited"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="no Debian chromium")
def test_the_dashboard_in_a_browser_makes_no_outside_request(built: Path, tmp_path: Path
                                                              ) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    log = (tmp_path / "dashboard.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "lab_env.cli", "dashboard", "--port", str(port)],
        env=lab_env_vars(built), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    requests: list[str] = []
    blocked: list[str] = []
    try:
        wait_for(f"http://127.0.0.1:{port}/_stcore/health", server)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})

                def guard(route: Any) -> None:
                    url = route.request.url
                    requests.append(url)
                    if urlparse(url).hostname == "127.0.0.1" or url.startswith(("data:",
                                                                                 "blob:")):
                        route.continue_()
                    else:
                        blocked.append(url)
                        route.abort()

                page.route("**/*", guard)
                page.on("websocket", lambda ws: requests.append(ws.url))
                page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle")
                value = page.locator('[data-testid="stMetricValue"]').first
                value.wait_for(timeout=90_000)
                page.get_by_text("Top 10 by market cap").wait_for(timeout=60_000)
                page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=60_000)
                page.wait_for_timeout(1500)  # let the chart draw
                cap, = gold_sql(built, "SELECT sum(market_cap_usd)::DOUBLE FROM "
                                       "fct_asset_daily WHERE trade_date = $1", [LAST])[0]
                assert value.inner_text().strip() == data.usd(cap)
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOT), full_page=True)

                page.get_by_role("tab", name="Top movers").click()
                movers = page.locator('[data-testid="stTable"]').filter(has_text="gainer")
                movers.wait_for(timeout=30_000)
                text = movers.inner_text()
                for symbol, ret in gold_sql(built, "SELECT symbol, daily_return FROM "
                                                   "daily_rankings WHERE trade_date = $1 "
                                                   "AND is_top_mover", [LAST]):
                    assert symbol in text and data.pct(ret) in text, (symbol, text)
            finally:
                browser.close()
    finally:
        stop_group(server)
        log.close()
    assert requests, "the page made no request at all"
    assert not blocked, f"requests beyond 127.0.0.1: {blocked}"
    assert all(urlparse(u).hostname == "127.0.0.1" for u in requests if "://" in u
               and not u.startswith(("data:", "blob:")))
    assert SCREENSHOT.stat().st_size > 20_000
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----- the export to S3 (moto's S3 server on 127.0.0.1) -----


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real S3 server on 127.0.0.1 with one bucket; the AWS variables to reach it."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "m10-access-key", "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_DEFAULT_REGION": "us-east-1", "LAB_EXPORT_ENDPOINT": f"http://{host}:{port}"}
    boto3.session.Session(env["AWS_ACCESS_KEY_ID"], SECRET, region_name="us-east-1").client(
        "s3", endpoint_url=env["LAB_EXPORT_ENDPOINT"]).create_bucket(Bucket="exports")
    yield env
    server.stop()


@pytest.fixture
def s3_env(s3: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield s3
    get_settings.cache_clear()


def export_cli(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``lab export`` with exactly the AWS variables in ``env`` (none of this process's)."""
    base = {k: v for k, v in lab_env_vars(home).items() if not k.startswith("AWS_")}
    return subprocess.run([sys.executable, "-m", "lab_env.cli", "export", *args],
                          env=base | env, cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False)


def objects(env: dict[str, str], bucket: str, prefix: str) -> dict[str, bytes]:
    import boto3

    client = boto3.session.Session().client("s3", endpoint_url=env["LAB_EXPORT_ENDPOINT"])
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            for o in listed}


def test_export_round_trips_gold_twice_without_duplicates_or_leaks(
    built: Path, s3_env: dict[str, str]
) -> None:
    from lab_env.dashboard.export import read_export

    runs = [export_cli(built, s3_env, "--to", "s3://exports/gold") for _ in range(2)]
    for result in runs:
        assert result.returncode == 0, result.stderr
        assert SECRET not in result.stdout + result.stderr
        assert "m10-access-key" not in result.stdout + result.stderr
    assert "unchanged 0" in runs[0].stdout and "removed 0" in runs[0].stdout
    assert "written 0" in runs[1].stdout and "removed 0" in runs[1].stdout  # same bytes

    stored = objects(s3_env, "exports", "gold/")
    assert all(SECRET.encode() not in body for body in stored.values())
    manifest = json.loads(stored["gold/manifest.json"])
    listed = {f["key"] for t in manifest["tables"].values() for f in t["files"]}
    assert listed | {"gold/manifest.json"} == set(stored)  # no file outside the manifest
    days = {(name, f["trade_date"]) for name, t in manifest["tables"].items() for f in t["files"]
            if "trade_date" in f}
    assert len(days) == sum(len(t["files"]) for n, t in manifest["tables"].items()
                            if n != "dim_asset")  # one file per table and day
    exported = read_export("s3://exports/gold")  # checks every file's SHA-256
    for name in TABLES:
        assert exported[name].sort_by(
            [(k, "ascending") for k in (["trade_date", "asset_id"] if name != "dim_asset"
                                        else ["asset_id"])]).equals(gold_arrow(built, name)), name
        assert manifest["tables"][name]["rows"] == exported[name].num_rows


class FailingSwap:
    """A real boto3 client that fails the manifest PUT: an export cut off before its swap."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def put_object(self, **kw: Any) -> Any:
        if kw["Key"].endswith("manifest.json"):
            raise ConnectionError("cut off before the manifest swap")
        return self.client.put_object(**kw)


def test_reexporting_a_day_replaces_it_atomically(built: Path, s3_env: dict[str, str]) -> None:
    """A changed day goes out as a new file; until the manifest swaps, readers see the old one."""
    import pyarrow.compute as pc

    from lab_env.dashboard.export import export_gold, read_export, s3_client

    settings = load_settings(home=built)
    catalog = get_catalog(settings)
    catalog.create_namespace_if_not_exists("gold_changed")
    for name in TABLES:  # a copy of gold in which 2025-03-31 loses bitcoin's rows
        ident = f"gold_changed.{name}"
        if catalog.table_exists(ident):
            catalog.purge_table(ident)
        rows = gold_arrow(built, name)
        if name != "dim_asset":
            rows = rows.filter(pc.invert(pc.and_(pc.equal(rows["trade_date"], LAST),
                                                 pc.equal(rows["asset_id"], "bitcoin"))))
        catalog.create_table(ident, schema=rows.schema).append(rows)
    target = "s3://exports/day"
    first = export_gold(target, settings=settings)
    before = read_export(target)
    with pytest.raises(ConnectionError):
        export_gold(target, LAST, LAST, settings=settings, namespace="gold_changed",
                    client=FailingSwap(s3_client(settings)))
    assert all(read_export(target)[n].equals(before[n]) for n in TABLES)  # old export intact

    again = export_gold(target, LAST, LAST, settings=settings, namespace="gold_changed")
    # The day's file of each daily table is new; dim_asset has the same bytes, so the same key.
    assert again.days == [str(LAST)] and (again.written, again.unchanged) == (3, 1)
    assert again.deleted == 3  # the day's old files, once the new manifest is in place
    after = read_export(target)
    for name in ("fct_asset_daily", "asset_rolling", "daily_rankings"):
        days = after[name].column("trade_date").to_pylist()
        assert days.count(LAST) == before[name].column("trade_date").to_pylist().count(LAST) - 1
        keys = list(zip(days, after[name].column("asset_id").to_pylist(), strict=True))
        assert len(keys) == len(set(keys)), f"{name}: a row is exported twice"
        old_days = pc.not_equal(before[name]["trade_date"], LAST)
        new_days = pc.not_equal(after[name]["trade_date"], LAST)
        assert after[name].filter(new_days).equals(before[name].filter(old_days))
    assert first.written == sum(1 for _ in before["fct_asset_daily"]
                                .column("trade_date").unique()) * 3 + 1


def test_export_refuses_a_target_that_is_not_s3(built: Path, s3_env: dict[str, str]) -> None:
    result = export_cli(built, s3_env, "--to", "exports/gold")
    assert result.returncode == 2 and "s3://bucket/prefix" in result.stderr
    missing = export_cli(built, s3_env, "--to", "s3://no-such-bucket/gold")
    assert missing.returncode == 2 and "does not exist" in missing.stderr, missing.stderr
    assert SECRET not in missing.stdout + missing.stderr
    nocreds = export_cli(built, {k: v for k, v in s3_env.items() if not k.startswith("AWS_")}
                         | {"AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                            "AWS_CONFIG_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"},
                         "--to", "s3://exports/gold")
    assert nocreds.returncode == 2 and "No AWS credentials" in nocreds.stderr, nocreds.stderr
