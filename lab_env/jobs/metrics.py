"""Run metrics the Prometheus way: what each production step did, kept for graphs and alerts.

After every step of ``lab run`` and every task of the ``lakehouse_daily`` DAG,
:func:`record_step` writes that step's metrics to ``LAB_HOME/metrics/lakehouse_<step>.prom``
(node-exporter's textfile format, replaced atomically, so a scrape never reads half a file)
and, when ``LAB_METRICS_PUSHGATEWAY`` names one, pushes them to a Prometheus Pushgateway
under ``job="lakehouse", step="<step>"``. Each step replaces only its own file and group.

Every series carries a ``step`` label; docs/operations.md lists them, and
docker/prometheus/alerts.yml alerts on two: gold stale for more than a day, a gate blocked.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lab_env.config import Settings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from lab_env.jobs.runner import StepResult

log = logging.getLogger("lakehouse.metrics")

JOB = "lakehouse"
# The mart whose newest day says how fresh gold is (one row per asset per trade_date).
FRESHNESS_TABLE = "gold.fct_asset_daily"
FRESHNESS_COLUMN = "trade_date"
VERDICTS = ("PUBLISHED", "PASSED", "BLOCKED")


def metrics_dir(settings: Settings) -> Path:
    """Where the textfiles go: point node-exporter's ``--collector.textfile.directory`` here."""
    return settings.lab_home / "metrics"


def textfile(settings: Settings, step: str) -> Path:
    return metrics_dir(settings) / f"{JOB}_{step}.prom"


def gold_newest_day(settings: Settings) -> dt.date | None:
    """The newest ``trade_date`` in gold on ``main`` (what readers see), or None if empty."""
    import pyarrow.compute as pc
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    from lab_env.lake.catalog import get_catalog

    try:
        table = get_catalog(settings).load_table(FRESHNESS_TABLE)
    except (NoSuchTableError, NoSuchNamespaceError):
        return None
    days = table.scan(selected_fields=(FRESHNESS_COLUMN,)).to_arrow()[FRESHNESS_COLUMN]
    newest = pc.max(days).as_py() if len(days) else None
    return newest.date() if isinstance(newest, dt.datetime) else newest


def gate_verdict(folder: Path) -> str | None:
    """The quality gate's verdict for the run in ``folder`` (its ``quality/report.json``)."""
    report = folder / "quality" / "report.json"
    if not report.is_file():
        return None
    return str(json.loads(report.read_text())["verdict"])


def step_registry(
    result: StepResult,
    *,
    newest_gold_day: dt.date | None,
    verdict: str | None,
    now: float | None = None,
) -> CollectorRegistry:
    """One step's metrics in a registry of their own (one textfile, one Pushgateway group)."""
    from prometheus_client import CollectorRegistry, Gauge

    now = time.time() if now is None else now
    registry = CollectorRegistry()
    step = {"step": result.name}

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, ("step", *labels), registry=registry)

    gauge("lakehouse_step_duration_seconds", "Wall time of the step's notebook").labels(
        **step).set(result.seconds)
    gauge("lakehouse_step_success", "1 if the step's notebook ran to the end, else 0").labels(
        **step).set(int(result.ok))
    gauge("lakehouse_step_last_run_timestamp_seconds", "When the step last finished").labels(
        **step).set(now)
    written = gauge(
        "lakehouse_rows_written", "Rows the step's commits added to a table", ("table",))
    deleted = gauge(
        "lakehouse_rows_deleted", "Rows the step's commits removed from a table", ("table",))
    total = gauge("lakehouse_table_rows", "Rows in a table after the step's last commit",
                  ("table",))
    for change in result.tables:
        written.labels(table=change.table, **step).set(change.added_records)
        deleted.labels(table=change.table, **step).set(change.deleted_records)
        total.labels(table=change.table, **step).set(change.total_records)
    if verdict is not None:
        states = gauge("lakehouse_quality_verdict",
                       "The quality gate's verdict: 1 on the one it reached", ("verdict",))
        for state in VERDICTS:
            states.labels(verdict=state, **step).set(int(state == verdict))
        gauge("lakehouse_quality_gate_blocked",
              "1 if the gate blocked the publish of gold (a critical expectation failed)").labels(
            **step).set(int(verdict == "BLOCKED"))
    if newest_gold_day is not None:
        # A day's gold is complete when the day ends: its age counts from the next midnight.
        complete = dt.datetime.combine(newest_gold_day + dt.timedelta(days=1), dt.time(),
                                       dt.UTC).timestamp()
        gauge("lakehouse_gold_newest_day_timestamp_seconds",
              "End (UTC) of the newest trade_date in gold on main").labels(**step).set(complete)
        gauge("lakehouse_gold_age_seconds",
              "Age of gold's newest day when the step finished").labels(**step).set(
            now - complete)
    return registry


def record_step(result: StepResult, folder: Path, settings: Settings) -> Path:
    """Write one finished step's metrics to its textfile (and push them if configured).

    Returns the textfile. A Pushgateway that cannot be reached is logged, never raised: the
    metrics must not fail the run they describe.
    """
    from prometheus_client import push_to_gateway, write_to_textfile

    registry = step_registry(
        result,
        newest_gold_day=gold_newest_day(settings),
        verdict=gate_verdict(folder) if result.name == "quality" else None,
    )
    path = textfile(settings, result.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)  # a temp file renamed over the old one
    if settings.metrics_pushgateway:
        try:
            push_to_gateway(settings.metrics_pushgateway, job=JOB,
                            grouping_key={"step": result.name}, registry=registry, timeout=10)
        except OSError as exc:
            log.error("metrics push to %s failed: %s", settings.metrics_pushgateway, exc)
    return path
