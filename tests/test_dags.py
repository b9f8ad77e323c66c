"""The DAG folder imports cleanly and every task is production-ready (retries, timeout, alert)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

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
    order = ["bronze", "bronze_landed", "silver", "gold", "quality"]
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
