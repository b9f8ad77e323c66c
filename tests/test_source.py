"""The CoinCap client against a real replay server on 127.0.0.1: retries, errors, secrets."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Iterator

import pytest

from lab_env.config import Settings
from lab_env.errors import LabError
from lab_env.source.client import CoinCapClient, retry_after_seconds
from lab_env.source.replay import ReplayServer

KEY = "sk-test-PLANTED-123"


@pytest.fixture
def caplog_source(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog
    for record in caplog.records:
        assert KEY not in record.getMessage(), f"the API key leaked into a log line: {record}"


def client(url: str, **policy: float) -> CoinCapClient:
    args = {"backoff_s": 0.01, "max_wait_s": 5.0, "timeout_s": 5.0, "max_tries": 4} | policy
    return CoinCapClient(url, KEY, **args)  # type: ignore[arg-type]


def test_assets_page_is_returned_as_received_with_its_request() -> None:
    with ReplayServer(api_key=KEY) as server:
        resp = client(server.url).assets(limit=5, offset=3, as_of="2025-02-01")
    assert resp.status == 200 and resp.ok and resp.parsed and resp.attempts == 1
    assert resp.path == "/assets" and resp.params == {"limit": 5, "offset": 3}
    assert json.loads(resp.body) == resp.data
    assert [row["rank"] for row in resp.records] == ["4", "5", "6", "7", "8"]
    assert resp.data["timestamp"] == 1738454399000  # 2025-02-01T23:59:59Z: the as-of snapshot
    assert all(isinstance(row["priceUsd"], str) for row in resp.records)


def test_bearer_header_arrives_and_the_key_is_never_echoed(
    caplog_source: pytest.LogCaptureFixture,
) -> None:
    with ReplayServer(api_key=KEY, rate_limit=1, retry_after="0") as server:
        resp = client(server.url).asset_history(
            "bitcoin", "h1", 1743375600000, 1743465599999, as_of=dt.date(2025, 3, 31)
        )
    assert resp.status == 200 and resp.attempts == 2
    assert [seen.authorized for seen in server.requests] == [True, True]
    assert [seen.as_of for seen in server.requests] == ["2025-03-31"] * 2
    for text in (resp.url, repr(resp), resp.body.decode(), json.dumps(resp.headers)):
        assert KEY not in text
    assert any("retry 1 of 3" in r.getMessage() for r in caplog_source.records)


def test_without_the_key_the_server_refuses_and_the_error_says_what_to_set() -> None:
    with ReplayServer(api_key=KEY) as server, pytest.raises(LabError) as info:
        CoinCapClient(server.url).assets()
    assert "HTTP 401" in str(info.value) and "LAB_COINCAP_API_KEY" in str(info.value)
    assert server.requests[0].authorized is False


def test_429_waits_at_least_retry_after(caplog_source: pytest.LogCaptureFixture) -> None:
    with ReplayServer(api_key=KEY, rate_limit=1, retry_after="1") as server:
        began = time.monotonic()
        resp = client(server.url).assets(limit=1)
        elapsed = time.monotonic() - began
    assert resp.status == 200 and resp.attempts == 2
    assert elapsed >= 1.0, f"retried after {elapsed:.2f}s although Retry-After said 1s"
    (line,) = [r.getMessage() for r in caplog_source.records if "retry" in r.getMessage()]
    assert "HTTP 429" in line and server.url in line


def test_retry_after_is_capped_by_max_wait() -> None:
    with ReplayServer(rate_limit=1, retry_after="3600") as server:
        began = time.monotonic()
        resp = client(server.url, max_wait_s=0.2).assets(limit=1)
    assert resp.attempts == 2 and time.monotonic() - began < 5


def test_retry_after_as_seconds_or_http_date() -> None:
    now = dt.datetime(2025, 3, 31, 12, 0, 0, tzinfo=dt.UTC)
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds("Mon, 31 Mar 2025 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Mon, 31 Mar 2025 11:00:00 GMT", now) == 0.0  # in the past
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


def test_500_then_success() -> None:
    with ReplayServer(server_errors=2) as server:
        resp = client(server.url).assets(limit=2)
    assert resp.status == 200 and resp.attempts == 3
    assert [seen.status for seen in server.requests] == [500, 500, 200]


def test_500_forever_ends_in_one_error_naming_url_and_status(
    caplog_source: pytest.LogCaptureFixture,
) -> None:
    with ReplayServer(api_key=KEY, server_errors=-1) as server, pytest.raises(LabError) as info:
        client(server.url, max_tries=3).asset_history("solana", start_ms=0, end_ms=1)
    message = str(info.value)
    assert f"{server.url}/assets/solana/history?interval=h1&start=0&end=1" in message
    assert "3 tries" in message and "HTTP 500" in message
    assert "\n" not in message and KEY not in message
    assert len(server.requests) == 3
    assert len([r for r in caplog_source.records if "retry" in r.getMessage()]) == 2


def test_slow_answer_times_out_then_the_retry_succeeds(
    caplog_source: pytest.LogCaptureFixture,
) -> None:
    with ReplayServer(delay=2.0, slow_requests=1) as server:
        resp = client(server.url, timeout_s=0.3).assets(limit=1)
    assert resp.status == 200 and resp.attempts == 2
    assert any("ReadTimeout" in r.getMessage() for r in caplog_source.records)


def test_connection_refused_ends_in_a_clear_error() -> None:
    server = ReplayServer()
    url = server.url
    server.stop()  # the port is closed now
    with pytest.raises(LabError) as info:
        client(url, max_tries=2).assets()
    assert url in str(info.value) and "ConnectionError" in str(info.value)


def test_truncated_json_is_returned_unparsed_and_not_retried() -> None:
    with ReplayServer(truncate=-1) as server:
        resp = client(server.url).assets(limit=3)
    assert resp.status == 200 and not resp.parsed and resp.data is None
    assert resp.error is not None and resp.error.startswith("invalid JSON")
    assert resp.attempts == 1 and len(server.requests) == 1
    assert resp.records == [] and resp.body  # the bytes are kept for the rejected area


def test_client_from_settings_reads_url_key_and_policy(fresh_settings: Settings) -> None:
    settings = fresh_settings.model_copy(
        update={"coincap_url": "http://127.0.0.1:9/v3", "coincap_max_tries": 2,
                "coincap_timeout_s": 1.5}
    )
    made = CoinCapClient.from_settings(settings)
    assert made.base_url == "http://127.0.0.1:9/v3"
    assert made.max_tries == 2 and made.timeout == (settings.coincap_connect_timeout_s, 1.5)
    with pytest.raises(LabError, match="LAB_COINCAP_URL"):
        CoinCapClient.from_settings(fresh_settings)


def test_a_url_carrying_credentials_is_refused() -> None:
    with pytest.raises(LabError) as info:
        CoinCapClient(f"https://rest.coincap.io/v3?apiKey={KEY}")
    assert "LAB_COINCAP_API_KEY" in str(info.value) and KEY not in str(info.value)
