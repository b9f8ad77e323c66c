"""The DAG folder imports cleanly and every task is production-ready (retries, timeout, alert)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from lab_env.alerts import Received

pytestmark = pytest.mark.airflow

DAGS = Path(__file__).resolve().parents[1] / "dags"


@pytest.fixture(scope="module")
def dagbag():  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_dag_folder_imports_without_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}
    assert {"lakehouse_daily", "hello_lakehouse"} <= set(dagbag.dag_ids)


def test_every_dag_has_tags_retries_and_timeouts(dagbag) -> None:  # type: ignore[no-untyped-def]
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"
            assert task.execution_timeout is not None, f"{dag_id}.{task.task_id} has no timeout"


def test_production_dag_shape(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags["lakehouse_daily"]
    order = ["bronze", "bronze_landed", "silver", "gold", "quality", "dbt"]
    for upstream, downstream in itertools.pairwise(order):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    # gold is visible to what is scheduled on it only once the quality gate published it
    assert [a.uri for a in dag.get_task("quality").outlets] == ["lakehouse://gold/fct_asset_daily"]
    assert not dag.get_task("gold").outlets
    for task in dag.tasks:
        assert task.retry_exponential_backoff >= 2.0  # a multiplier since Airflow 3, not a flag
        assert task.on_failure_callback, f"{task.task_id} raises no alert"
    params = {"start_date", "end_date", "full_refresh", "assets", "evolve_schema"}
    assert params <= set(dag.params.keys())


def test_a_day_is_processed_after_it_has_ended(dagbag) -> None:  # type: ignore[no-untyped-def]
    """The run with logical date D covers [D, D+1) and starts at D+1 00:00, never during D."""
    import datetime as dt

    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    timetable = coerce_to_core_timetable(dagbag.dags["lakehouse_daily"].timetable)
    first = timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(
            earliest=dt.datetime(2025, 1, 1, tzinfo=dt.UTC), latest=None, catchup=True
        ),
    )
    assert first is not None
    assert first.logical_date == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert first.data_interval.end == dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    assert first.run_after == dt.datetime(2025, 1, 2, tzinfo=dt.UTC)


def test_heavy_imports_stay_inside_tasks() -> None:
    source = (DAGS / "lakehouse_daily.py").read_text()
    header = source.split("def lakehouse_daily")[0]
    top_level = [line for line in header.splitlines() if line.startswith(("import ", "from "))]
    for heavy in ("pyspark", "papermill", "pandas", "lab_env"):
        assert not any(heavy in line for line in top_level), heavy


def test_failure_callback_logs_and_posts_the_alert(
    dagbag,
    webhook: list[dict[str, str]],
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    task = dagbag.dags["lakehouse_daily"].get_task("silver")

    class TI:
        dag_id, task_id, try_number = "lakehouse_daily", "silver", 3

    callback = task.on_failure_callback
    callbacks = callback if isinstance(callback, list) else [callback]
    with caplog.at_level("ERROR", logger="lakehouse.alerts"):
        for cb in callbacks:
            cb(
                {
                    "task_instance": TI(),
                    "run_id": "scheduled__2025-01-02",
                    "ds": "2025-01-02",
                    "exception": RuntimeError("silver blew up"),
                }
            )
    assert any("ALERT" in r.message and "silver" in r.message for r in caplog.records)
    assert len(webhook) == 1
    alert = webhook[0]
    assert alert["task_id"] == "silver" and "silver blew up" in alert["error"]
    assert alert["logical_date"] == "2025-01-02"


def test_unreachable_webhook_never_hides_the_failure(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from lab_env.alerts import send_alert
    from lab_env.config import get_settings

    monkeypatch.setenv("LAB_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/nowhere")
    get_settings.cache_clear()
    with caplog.at_level("ERROR", logger="lakehouse.alerts"):
        assert send_alert("boom", {"x": 1}) is False
    assert any("webhook" in r.message for r in caplog.records)
    get_settings.cache_clear()


def test_gold_is_due_three_hours_after_the_day_ends(dagbag) -> None:  # type: ignore[no-untyped-def]
    """Airflow 3's deadline alert (SLAs' replacement), as the scheduler reads it."""
    import datetime as dt

    from airflow.sdk import DeadlineReference, SyncCallback
    from airflow.serialization.serialized_objects import DagSerialization

    dag = dagbag.dags["lakehouse_daily"]
    [deadline] = dag.deadline
    # The logical date is the interval's start: one day later the interval ends.
    assert deadline.reference == DeadlineReference.DAGRUN_LOGICAL_DATE
    assert deadline.interval == dt.timedelta(days=1, hours=3)
    assert isinstance(deadline.callback, SyncCallback)
    assert deadline.callback.path == "lab_env.alerts.deadline_missed_alert"
    serialized = json.dumps(DagSerialization.to_dict(dag)["dag"]["deadline"])
    assert "lab_env.alerts.deadline_missed_alert" in serialized
    assert "DagRunLogicalDateDeadline" in serialized


def test_a_missed_deadline_alerts_every_channel(
    dagbag,  # type: ignore[no-untyped-def]
    alert_receiver: tuple[str, Received],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The callback runs as Airflow's executor runs it: imported by path, with its context."""
    import structlog
    from airflow.sdk.execution_time.callback_supervisor import execute_callback

    from lab_env.config import get_settings

    url, received = alert_receiver
    monkeypatch.setenv("LAB_ALERT_WEBHOOK_URL", url)
    monkeypatch.setenv("LAB_TELEGRAM_API_URL", url.removesuffix("/alert"))
    monkeypatch.setenv("LAB_TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("LAB_TELEGRAM_CHAT_ID", "42")
    get_settings.cache_clear()
    [deadline] = dagbag.dags["lakehouse_daily"].deadline
    # What the scheduler's Deadline.handle_miss hands over (airflow/models/deadline.py).
    context = {
        "dag_run": {
            "dag_id": "lakehouse_daily",
            "dag_run_id": "scheduled__2025-03-31T00:00:00+00:00",
            "logical_date": "2025-03-31T00:00:00Z",
            "data_interval_end": "2025-04-01T00:00:00Z",
            "state": "running",
        },
        "deadline": {"id": "0199", "deadline_time": "2025-04-01T03:00:00Z"},
    }
    ok, error = execute_callback(
        deadline.callback.path,
        {**deadline.callback.kwargs, "context": context},
        "lakehouse_daily.py",
        str(DAGS),
        structlog.get_logger(),
    )
    get_settings.cache_clear()
    assert (ok, error) == (True, None)
    webhook, chat = received  # the webhook first, then Telegram
    assert webhook["text"] == (
        "Lakehouse deadline missed: lakehouse_daily: gold published within 3:00:00 after the "
        "day ends"
    )
    assert webhook["logical_date"] == "2025-03-31T00:00:00Z"
    assert webhook["deadline"] == "2025-04-01T03:00:00Z"
    assert chat["chat_id"] == "42" and "Lakehouse deadline missed" in chat["text"]
    assert [r.path for r in received.requests] == ["/alert", "/bot123:abc/sendMessage"]


def test_report_and_export_follow_the_publish(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags["lakehouse_daily"]
    assert {"report", "export"} <= dag.get_task("quality").downstream_task_ids
    assert not dag.get_task("report").downstream_task_ids


def test_export_is_skipped_without_a_target(
    dagbag, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    import datetime as dt

    from airflow.sdk.exceptions import AirflowSkipException

    from lab_env.config import get_settings

    monkeypatch.delenv("LAB_EXPORT_TARGET", raising=False)
    get_settings.cache_clear()
    export = dagbag.dags["lakehouse_daily"].get_task("export").python_callable
    with pytest.raises(AirflowSkipException, match="LAB_EXPORT_TARGET"):
        export(params={}, run_id="manual__x",
               logical_date=dt.datetime(2025, 3, 31, tzinfo=dt.UTC))
    get_settings.cache_clear()


def test_airflow_waits_for_the_schedulers_sqlite_lock_instead_of_failing(tmp_path: Path) -> None:
    """`airflow backfill create` failed with `database is locked` while the scheduler wrote:
    with lab_env.jobs.airflow_db.ENV (set for this test run as for the compose service) Airflow's
    connections wait up to a minute, past sqlite3's default of 5 s."""
    import sqlite3
    import threading
    import time

    from airflow.configuration import conf
    from sqlalchemy import create_engine, text

    connect_args = conf.getimport("database", "sql_alchemy_connect_args")
    db = tmp_path / "airflow.db"
    scheduler = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    scheduler.execute("CREATE TABLE dag_run (id INTEGER)")
    scheduler.execute("BEGIN EXCLUSIVE")  # the scheduler, writing
    threading.Timer(6, scheduler.execute, ["COMMIT"]).start()
    engine = create_engine(f"sqlite:///{db}", connect_args=dict(connect_args))
    began = time.monotonic()
    with engine.begin() as command:  # `airflow backfill create`, writing too
        command.execute(text("INSERT INTO dag_run VALUES (1)"))
    assert time.monotonic() - began > 5
    assert scheduler.execute("SELECT count(*) FROM dag_run").fetchone() == (1,)
