"""Alerts for failed production runs: always a log line, and a webhook post when configured."""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Mapping
from typing import Any

from lab_env.config import get_settings

log = logging.getLogger("lakehouse.alerts")


def send_alert(title: str, details: Mapping[str, Any]) -> bool:
    """Log ``title`` with ``details`` and POST them to ``LAB_ALERT_WEBHOOK_URL`` if it is set.

    Returns whether the webhook accepted the alert. An unreachable webhook is logged, never
    raised: the alert must not hide the failure that caused it.
    """
    body = {"text": title, **{k: str(v) for k, v in details.items()}}
    log.error("ALERT %s %s", title, json.dumps(body, sort_keys=True))
    secret = get_settings().alert_webhook_url
    if secret is None:
        return False
    url = secret.get_secret_value()
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return 200 <= response.status < 300
    except OSError as exc:
        log.error("alert webhook failed: %s", exc)  # the URL may hold a token: not logged
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
