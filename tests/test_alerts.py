"""Alerts to Telegram's Bot API: the exact request a real receiver gets, and a token never shown."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest

from lab_env.alerts import (
    TELEGRAM_MAX_TEXT,
    Received,
    local_receiver,
    send_alert,
    telegram_text,
)
from lab_env.config import get_settings, load_settings

TOKEN = "7312664801:AAH-lab_Secret-TokenZ9"
CHAT = "-1001234567890"


@pytest.fixture
def telegram(
    alert_receiver: tuple[str, Received], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Received]:
    """A bot token and chat id, with the Bot API's base URL pointed at a real local receiver."""
    url, received = alert_receiver
    monkeypatch.setenv("LAB_TELEGRAM_API_URL", url.removesuffix("/alert"))
    monkeypatch.setenv("LAB_TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("LAB_TELEGRAM_CHAT_ID", CHAT)
    monkeypatch.delenv("LAB_ALERT_WEBHOOK_URL", raising=False)
    get_settings.cache_clear()
    yield received
    get_settings.cache_clear()


def test_telegram_alert_is_the_bot_api_request_byte_for_byte(
    telegram: Received, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level("DEBUG"):
        accepted = send_alert(
            "Quality gate blocked <gold> & more", {"run_id": "r1", "failed": "price < 0"}
        )
    assert accepted
    [request] = telegram.requests
    assert request.method == "POST"
    assert request.path == f"/bot{TOKEN}/sendMessage"
    expected = (
        b'{"chat_id": "-1001234567890", "text": "<b>Quality gate blocked &lt;gold&gt; &amp; more'
        b'</b>\\n<b>run_id</b>: r1\\n<b>failed</b>: price &lt; 0", "parse_mode": "HTML"}'
    )
    assert request.body == expected
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Content-Length"] == str(len(expected))
    printed = capfd.readouterr()
    assert TOKEN not in printed.out + printed.err + caplog.text
    assert "ALERT Quality gate blocked" in caplog.text  # the log line is still there


def test_webhook_and_telegram_both_get_the_alert(
    telegram: Received, alert_receiver: tuple[str, Received], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = alert_receiver
    monkeypatch.setenv("LAB_ALERT_WEBHOOK_URL", url)
    get_settings.cache_clear()
    assert send_alert("Lakehouse task failed", {"task_id": "silver"})
    assert sorted(r.path for r in telegram.requests) == ["/alert", f"/bot{TOKEN}/sendMessage"]
    webhook = next(json.loads(r.body) for r in telegram.requests if r.path == "/alert")
    assert webhook == {"text": "Lakehouse task failed", "task_id": "silver"}


def test_a_token_in_a_failing_request_is_never_logged(
    telegram: Received,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # A malformed base URL: urllib's error quotes the whole URL, token included.
    monkeypatch.setenv("LAB_TELEGRAM_API_URL", "api.telegram.org")
    get_settings.cache_clear()
    with caplog.at_level("DEBUG"):
        assert send_alert("boom", {"x": "1"}) is False
    # Nobody listening: the connection error is logged, the alert does not raise.
    monkeypatch.setenv("LAB_TELEGRAM_API_URL", "http://127.0.0.1:9")
    get_settings.cache_clear()
    with caplog.at_level("DEBUG"):
        assert send_alert("boom", {"x": "1"}) is False
    assert caplog.text.count("alert telegram failed") == 2
    assert "<secret>" in caplog.text
    printed = capfd.readouterr()
    assert TOKEN not in printed.out + printed.err + caplog.text
    assert telegram.requests == []


def test_settings_never_show_the_token_or_chat(telegram: Received) -> None:
    settings = load_settings()
    assert settings.telegram_bot_token is not None
    assert settings.telegram_bot_token.get_secret_value() == TOKEN
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert TOKEN not in text and CHAT not in text


def test_telegram_needs_both_token_and_chat(
    telegram: Received, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LAB_TELEGRAM_CHAT_ID")
    get_settings.cache_clear()
    assert send_alert("boom", {}) is False  # no channel configured: the log line only
    assert telegram.requests == []


def test_a_long_alert_is_cut_to_what_telegram_takes_without_breaking_an_entity() -> None:
    text = telegram_text("Gate blocked", {"failed": "a < b & " * 2000})
    assert len(text) <= TELEGRAM_MAX_TEXT
    assert text.endswith("…") and "<b>" not in text  # plain text once cut
    body = text.removesuffix("…")
    # every & starts a whole entity: the cut fell between characters, not inside "&lt;"
    assert all(body[i:].startswith(("&lt;", "&amp;")) for i, c in enumerate(body) if c == "&")


def test_settings_passed_in_choose_the_channels_without_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the M5 lesson does: a receiver of its own, named in settings it passes down."""
    monkeypatch.delenv("LAB_ALERT_WEBHOOK_URL", raising=False)
    get_settings.cache_clear()
    with local_receiver() as received:
        settings = load_settings(alert_webhook_url=received.url)
        assert send_alert("Lakehouse task failed", {"try_number": 3}, settings=settings)
        assert not send_alert("Lakehouse task failed", {"try_number": 3})  # no channel in env
    assert received == [{"text": "Lakehouse task failed", "try_number": "3"}]
    [request] = received.requests
    assert (request.method, request.path) == ("POST", "/alert")
    with pytest.raises(OSError):  # the receiver is gone with its block
        urllib.request.urlopen(received.url, data=b"{}", timeout=5)
