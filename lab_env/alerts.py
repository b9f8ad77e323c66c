"""Alerts for failed production runs: always a log line, and a post to each configured channel.

Channels: a Slack-style webhook (``LAB_ALERT_WEBHOOK_URL``) and a Telegram chat through the
Bot API (``LAB_TELEGRAM_BOT_TOKEN`` and ``LAB_TELEGRAM_CHAT_ID``). The token sits in the
request's path, so no URL of a channel is ever logged. :func:`local_receiver` is a channel on
this machine, to see exactly what an alert sends (the M5 lesson and the tests use it).
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import threading
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lab_env.config import Settings, get_settings

log = logging.getLogger("lakehouse.alerts")


# Telegram refuses a message longer than this many characters.
TELEGRAM_MAX_TEXT = 4096


def send_alert(title: str, details: Mapping[str, Any], settings: Settings | None = None) -> bool:
    """Log ``title`` with ``details`` and post them to every channel ``settings`` configure.

    Returns whether at least one channel is configured and every configured one accepted the
    alert. An unreachable channel is logged, never raised: the alert must not hide the
    failure that caused it.
    """
    body = {"text": title, **{k: str(v) for k, v in details.items()}}
    log.error("ALERT %s %s", title, json.dumps(body, sort_keys=True))
    settings = settings or get_settings()
    accepted = []
    if settings.alert_webhook_url is not None:
        url = settings.alert_webhook_url.get_secret_value()
        accepted.append(_post("webhook", url, body, secret=url))  # URLs carry tokens
    if settings.telegram_bot_token is not None and settings.telegram_chat_id is not None:
        url, message = telegram_request(settings, title, body)
        token = settings.telegram_bot_token.get_secret_value()
        accepted.append(_post("telegram", url, message, secret=token))
    return bool(accepted) and all(accepted)


def telegram_text(title: str, details: Mapping[str, str]) -> str:
    """The alert as a Telegram HTML message: the title in bold, then one line per detail."""
    pairs = [(k, v) for k, v in details.items() if k != "text"]
    text = "\n".join([f"<b>{html.escape(title)}</b>"]
                     + [f"<b>{html.escape(k)}</b>: {html.escape(v)}" for k, v in pairs])
    if len(text) <= TELEGRAM_MAX_TEXT:
        return text
    # Too long: plain text, cut between characters (a cut inside a tag or an entity would make
    # Telegram refuse the whole message).
    plain = "\n".join([title, *(f"{k}: {v}" for k, v in pairs)])
    pieces, size = [], 1  # room for the ellipsis
    for char in plain:
        piece = html.escape(char)
        if size + len(piece) > TELEGRAM_MAX_TEXT:
            break
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces) + "…"


def telegram_request(
    settings: Settings, title: str, details: Mapping[str, str]
) -> tuple[str, dict[str, str]]:
    """The Bot API's ``sendMessage`` URL and JSON body for this alert."""
    assert settings.telegram_bot_token is not None and settings.telegram_chat_id is not None
    token = settings.telegram_bot_token.get_secret_value()
    url = f"{settings.telegram_api_url.rstrip('/')}/bot{token}/sendMessage"
    return url, {
        "chat_id": settings.telegram_chat_id.get_secret_value(),
        "text": telegram_text(title, details),
        "parse_mode": "HTML",
    }


def _post(channel: str, url: str, body: Mapping[str, str], secret: str) -> bool:
    """POST ``body`` as JSON; whether the channel answered 2xx. ``secret`` is never logged."""
    try:
        request = urllib.request.Request(
            url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return 200 <= response.status < 300
    except (OSError, ValueError) as exc:  # ValueError: a malformed URL, quoted in the message
        log.error("alert %s failed: %s", channel, str(exc).replace(secret, "<secret>"))
        return False


def task_failure_alert(context: Mapping[str, Any]) -> None:
    """Airflow ``on_failure_callback``: one alert naming the DAG, task, date and error."""
    ti = context.get("task_instance") or context.get("ti")
    send_alert(
        f"Lakehouse task failed: {getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')}",
        {
            "dag_id": getattr(ti, "dag_id", ""),
            "task_id": getattr(ti, "task_id", ""),
            "run_id": context.get("run_id", ""),
            "logical_date": context.get("logical_date") or context.get("ds", ""),
            "try_number": getattr(ti, "try_number", ""),
            "error": context.get("exception", ""),
        },
    )


def deadline_missed_alert(context: Mapping[str, Any], promise: str = "") -> None:
    """Airflow deadline callback: the run missed its deadline (``promise`` says which one).

    The scheduler passes ``context`` with ``dag_run`` (the run as the REST API shows it) and
    ``deadline`` (its id and time).
    """
    run = context.get("dag_run") or {}
    deadline = context.get("deadline") or {}
    send_alert(
        f"Lakehouse deadline missed: {run.get('dag_id', '?')}: {promise or 'deadline'}",
        {
            "dag_id": run.get("dag_id", ""),
            "run_id": run.get("dag_run_id") or run.get("run_id", ""),
            "logical_date": run.get("logical_date", ""),
            "data_interval_end": run.get("data_interval_end", ""),
            "state": run.get("state", ""),
            "deadline": deadline.get("deadline_time", ""),
        },
    )


@dataclass(frozen=True)
class RawRequest:
    """One request exactly as the receiver got it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Received(list[dict[str, Any]]):
    """The JSON bodies posted to a :func:`local_receiver`, in order; ``requests`` keeps each
    request as it came, and ``url`` is where to post (its path is ``/alert``; any path works)."""

    def __init__(self, url: str = "") -> None:
        super().__init__()
        self.url = url
        self.requests: list[RawRequest] = []


@contextlib.contextmanager
def local_receiver() -> Iterator[Received]:
    """An HTTP channel on 127.0.0.1 that answers every POST with 204 and keeps it.

    Point ``alert_webhook_url`` (or ``telegram_api_url``) at ``received.url`` to see what an
    alert sends; the server stops when the ``with`` block ends.
    """
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.requests.append(
                RawRequest(self.command, self.path, dict(self.headers.items()), body)
            )
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass  # the requests are the output

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    received.url = f"http://127.0.0.1:{server.server_port}/alert"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()
