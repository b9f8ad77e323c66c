"""The synthetic samples and the replay server that serves them like the API (real HTTP)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import itertools
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from lab_env.cli import main
from lab_env.cli.source import serve_samples_command
from lab_env.errors import LabError
from lab_env.source import samples
from lab_env.source.replay import Faults, ReplayServer, replay_server

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-test-PLANTED-123"
MAR30 = 1743292800000  # 2025-03-30T00:00Z in epoch ms
HOUR = 3_600_000


def get(url: str, **params: Any) -> requests.Response:
    headers = params.pop("headers", {})
    return requests.get(url, params=params, headers=headers, timeout=10)


# ----- the samples -----


def test_samples_are_what_lab_samples_writes_from_the_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["samples", "--seed", str(samples.DEFAULT_SEED), "--out", str(tmp_path)]) == 0
    said = capsys.readouterr().out.splitlines()
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert len(said) == len(written) == 20 + 2  # a history per asset, the snapshots, MANIFEST
    assert all(f"wrote {p} ({p.stat().st_size:,} bytes)" in said for p in written)
    for path in written:
        committed = samples.SAMPLES_DIR / path.relative_to(tmp_path)
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} differs from what `lab samples` writes: regenerate it"
        )
    size = sum(p.stat().st_size for p in samples.SAMPLES_DIR.rglob("*") if p.is_file())
    assert size < 5_000_000


def test_samples_cover_the_contract_range_for_20_assets() -> None:
    ids = samples.asset_ids()
    assert len(ids) == 20
    snapshots = samples.load_snapshots()
    assert sorted(snapshots) == [d.isoformat() for d in samples.sample_days()]
    assert len(snapshots) == 90
    for asset_id in ids:
        points = samples.load_history(asset_id)
        times = [p["time"] for p in points]
        assert len(points) == 90 * 24
        assert times[0] == 1735689600000 and times[-1] == 1743462000000  # 01-01 00:00, 03-31 23:00
        assert all(b - a == HOUR for a, b in itertools.pairwise(times))
        assert points[0]["date"] == "2025-01-01T00:00:00.000Z"
        assert all(isinstance(p["circulatingSupply"], str) for p in points)


def test_snapshots_agree_with_the_history_and_rank_by_market_cap() -> None:
    snapshots = samples.load_snapshots()
    history = {asset_id: samples.load_history(asset_id) for asset_id in samples.asset_ids()}
    for day, snapshot in snapshots.items():
        rows = snapshot["data"]
        assert snapshot["timestamp"] == samples.snapshot_ms(dt.date.fromisoformat(day))
        assert [row["rank"] for row in rows] == [str(n) for n in range(1, 21)]
        caps = [float(row["marketCapUsd"]) for row in rows]
        assert caps == sorted(caps, reverse=True)
        index = (dt.date.fromisoformat(day) - samples.SAMPLE_START).days * 24 + 23
        for row in rows:
            last = history[row["id"]][index]
            assert row["priceUsd"] == last["priceUsd"]
            assert row["supply"] == last["circulatingSupply"]
            for name in ("supply", "marketCapUsd", "volumeUsd24Hr", "priceUsd",
                         "changePercent24Hr", "vwap24Hr"):
                assert isinstance(row[name], str) and math.isfinite(float(row[name]))
            assert row["maxSupply"] is None or float(row["maxSupply"]) >= float(row["supply"])
            assert float(row["priceUsd"]) > 0


def test_planted_defects_are_exactly_the_documented_ones() -> None:
    manifest = json.loads((samples.SAMPLES_DIR / samples.MANIFEST_FILE).read_text())
    nulls, texts = [], []
    for asset_id in samples.asset_ids():
        for point in samples.load_history(asset_id):
            value = point["priceUsd"]
            if value is None:
                nulls.append({"asset_id": asset_id, "hour": point["date"][:16]})
            else:
                try:
                    float(value)
                except ValueError:
                    texts.append({"asset_id": asset_id, "hour": point["date"][:16], "value": value})
    key = lambda d: (d["asset_id"], d["hour"])  # noqa: E731
    assert sorted(nulls, key=key) == sorted(manifest["planted_null_price"], key=key)
    assert texts == manifest["planted_text_price"] and len(texts) == 1
    assert manifest["synthetic"] is True
    assert "SYNTHETIC" in (samples.SAMPLES_DIR / "README.md").read_text()


# ----- the routes -----


@pytest.fixture(scope="module")
def server() -> Any:
    with ReplayServer() as running:
        yield running


def test_assets_pages_with_limit_and_offset(server: ReplayServer) -> None:
    first = get(f"{server.url}/assets", limit=15).json()
    rest = get(f"{server.url}/assets", limit=15, offset=15).json()
    assert len(first["data"]) == 15 and len(rest["data"]) == 5
    assert [r["rank"] for r in first["data"] + rest["data"]] == [str(n) for n in range(1, 21)]
    picked = get(f"{server.url}/assets", ids="solana,bitcoin").json()["data"]
    assert sorted(r["id"] for r in picked) == ["bitcoin", "solana"]
    assert get(f"{server.url}/assets", limit=0).status_code == 400


def test_as_of_header_picks_the_snapshot(server: ReplayServer) -> None:
    latest = get(f"{server.url}/assets").json()
    assert latest["timestamp"] == samples.snapshot_ms(samples.SAMPLE_END)
    jan = get(f"{server.url}/assets", headers={"X-Replay-As-Of": "2025-01-15"}).json()
    assert jan["timestamp"] == samples.snapshot_ms(dt.date(2025, 1, 15))
    assert jan["data"] != latest["data"]
    outside = get(f"{server.url}/assets", headers={"X-Replay-As-Of": "2024-12-31"})
    assert outside.status_code == 404 and "2025-01-01..2025-03-31" in outside.json()["error"]
    assert get(f"{server.url}/assets", headers={"X-Replay-As-Of": "soon"}).status_code == 400


def test_history_window_is_inclusive_and_ends_at_the_as_of_day(server: ReplayServer) -> None:
    url = f"{server.url}/assets/bitcoin/history"
    day = get(url, interval="h1", start=MAR30 - HOUR, end=MAR30 + 24 * HOUR - 1).json()["data"]
    assert len(day) == 25 and day[0]["date"] == "2025-03-29T23:00:00.000Z"
    assert day[-1]["date"] == "2025-03-30T23:00:00.000Z"
    capped = get(url, interval="h1", start=MAR30, end=MAR30 + 48 * HOUR,
                 headers={"X-Replay-As-Of": "2025-03-30"}).json()
    assert len(capped["data"]) == 24 and capped["timestamp"] == samples.snapshot_ms(
        dt.date(2025, 3, 30)
    )
    daily = get(url, interval="d1", start=MAR30 - 2 * 24 * HOUR, end=MAR30).json()["data"]
    assert [p["date"] for p in daily] == [
        "2025-03-28T00:00:00.000Z", "2025-03-29T00:00:00.000Z", "2025-03-30T00:00:00.000Z"
    ]


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/assets/nocoin/history", {"interval": "h1"}, 404),
        ("/assets/bitcoin/history", {"interval": "m5"}, 400),
        ("/assets/bitcoin/history", {"interval": "h1", "start": MAR30}, 400),
        ("/markets", {}, 404),
    ],
)
def test_bad_requests_get_api_style_errors(
    server: ReplayServer, path: str, params: dict[str, Any], status: int
) -> None:
    resp = get(f"{server.url}{path}", **params)
    assert resp.status_code == status and "error" in resp.json()


def test_api_key_is_required_only_when_started_with_one() -> None:
    with replay_server(api_key=KEY) as url:
        refused = get(f"{url}/assets")
        wrong = get(f"{url}/assets", headers={"Authorization": "Bearer nope"})
        allowed = get(f"{url}/assets", headers={"Authorization": f"Bearer {KEY}"})
    assert refused.status_code == 401 and wrong.status_code == 401 and allowed.status_code == 200
    for resp in (refused, wrong, allowed):
        assert KEY not in resp.text and KEY not in json.dumps(dict(resp.headers))


# ----- the faults -----


def test_counted_faults_hit_the_first_n_requests_of_their_route() -> None:
    with ReplayServer(rate_limit=2, retry_after="7", route="history") as srv:
        assets = get(f"{srv.url}/assets")
        hist = [get(f"{srv.url}/assets/tron/history", interval="h1") for _ in range(3)]
    assert assets.status_code == 200
    assert [r.status_code for r in hist] == [429, 429, 200]
    assert hist[0].headers["Retry-After"] == "7"


def test_truncate_cuts_valid_json_in_half_with_a_consistent_length() -> None:
    with ReplayServer(truncate=1) as srv:
        cut = get(f"{srv.url}/assets", limit=3)
        whole = get(f"{srv.url}/assets", limit=3)
    assert cut.status_code == 200 and int(cut.headers["Content-Length"]) == len(cut.content)
    assert cut.content == whole.content[: len(whole.content) // 2]
    with pytest.raises(ValueError):
        json.loads(cut.content)


def test_field_faults_rename_add_and_null_per_route() -> None:
    with ReplayServer(
        rename_field="priceUsd=price", extra_field="note=hi", null_field="circulatingSupply",
        route={"rename_field": "history", "extra_field": "assets", "null_field": "history"},
    ) as srv:
        assets = get(f"{srv.url}/assets", limit=2).json()["data"]
        points = get(f"{srv.url}/assets/xrp/history", interval="h1",
                     start=MAR30, end=MAR30 + HOUR).json()["data"]
    assert all(row["note"] == "hi" and "priceUsd" in row for row in assets)
    assert len(points) == 2
    for point in points:
        assert "priceUsd" not in point and isinstance(point["price"], str)
        assert point["circulatingSupply"] is None and "note" not in point


def test_slow_requests_wait_before_answering() -> None:
    with ReplayServer(delay=0.5, slow_requests=1) as srv:
        first = requests.get(f"{srv.url}/assets", timeout=10)
        second = requests.get(f"{srv.url}/assets", timeout=10)
    assert first.elapsed.total_seconds() >= 0.5
    assert [s.faults for s in srv.requests] == [["delay"], []]
    assert second.status_code == 200


def test_faults_refuse_unknown_routes_and_names() -> None:
    with pytest.raises(LabError, match="route"):
        Faults(rate_limit=1, route="markets")
    with pytest.raises(LabError, match="fault"):
        Faults(route={"teleport": "assets"})
    with pytest.raises(LabError, match="OLD=NEW"):
        Faults(rename_field="priceUsd")


def serving(monkeypatch: pytest.MonkeyPatch) -> list[Faults]:
    """The faults of each server `lab serve-samples` starts; it stops at once, as on Ctrl-C."""
    served: list[Faults] = []

    def serve_forever(self: ReplayServer) -> None:
        served.append(self.faults)
        raise KeyboardInterrupt

    monkeypatch.setattr(ReplayServer, "serve_forever", serve_forever)
    return served


def test_serve_samples_flags_become_faults(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served = serving(monkeypatch)
    assert main([
        "serve-samples", "--rate-limit", "3", "--retry-after", "2", "--server-errors", "-1",
        "--delay", "0.5", "--slow-requests", "2", "--truncate", "1",
        "--rename-field", "priceUsd=price", "--null-field", "vwap24Hr",
        "--route", "truncate=history", "--route", "server-errors=assets",
    ]) == 0
    assert served == [Faults(
        rate_limit=3, retry_after="2", server_errors=-1, delay=0.5, slow_requests=2, truncate=1,
        rename_field="priceUsd=price", null_field="vwap24Hr",
        route={"truncate": "history", "server_errors": "assets"},
    )]
    assert "'route': {'truncate': 'history', 'server_errors': 'assets'}" in capsys.readouterr().out


def test_serve_samples_without_flags_is_a_well_behaved_api(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served = serving(monkeypatch)
    assert main(["serve-samples", "--route", "truncate=assets", "--route", "history"]) == 0
    assert served == [Faults(route="history")]  # a plain route replaces the ones before it
    assert main(["serve-samples"]) == 0
    assert served[1] == Faults()
    assert "faults: none; API key required: no" in capsys.readouterr().out


def test_every_fault_has_a_flag() -> None:
    flags = {param.name for param in serve_samples_command.params}
    assert {f.name for f in dataclasses.fields(Faults)} <= flags


def test_lab_serve_samples_serves_until_interrupted() -> None:
    lab = Path(sys.executable).with_name("lab")
    proc = subprocess.Popen(
        [str(lab), "serve-samples", "--rate-limit", "1"],
        stdout=subprocess.PIPE, text=True, env=os.environ.copy(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.rsplit(" at ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v3")
        assert get(f"{url}/assets").status_code == 429
        assert len(get(f"{url}/assets").json()["data"]) == 20
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


# Bronze's cells keep the server in an ExitStack that nothing closes (the kernel is killed at
# the end); the same lines run as a plain script leave it to the garbage collector at exit.
LEFT_OPEN = """
import contextlib, requests
from lab_env.source.replay import replay_server
_servers = contextlib.ExitStack()
url = _servers.enter_context(replay_server())
requests.get(f"{url}/assets", timeout=10).raise_for_status()
print("served", flush=True)
"""


def test_a_script_that_leaves_the_server_open_still_exits() -> None:
    """Python exits with the server never stopped: its serving thread is frozen by then, and
    stopping it by the book waited for that thread forever."""
    try:
        done = subprocess.run([sys.executable, "-c", LEFT_OPEN], capture_output=True, text=True,
                              timeout=60, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("the script served, then hung at exit stopping the replay server")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "served"


def test_samples_files_are_gzip_json() -> None:
    for path in (samples.SAMPLES_DIR / samples.HISTORY_DIR).glob("*.json.gz"):
        payload = json.loads(gzip.decompress(path.read_bytes()))
        assert payload["interval"] == "h1" and payload["id"] == path.name.split(".")[0]
