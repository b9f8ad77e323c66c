"""
### Lakehouse daily: bronze -> silver -> gold for the run's logical date

Runs the lab's solution notebooks as production jobs with papermill, one task per layer, for
the **logical date** of the DAG run (the day whose data is processed, not the day the run
happens). Each executed notebook is kept under `LAB_HOME/runs/<date>/<run_id>/`.

The schedule is a *data interval* timetable: the run for 2025-01-01 covers
[2025-01-01 00:00, 2025-01-02 00:00) UTC and starts when that day is over, so it never
processes a day that is still being written. (Airflow 3's plain `"@daily"` is a *trigger*
timetable: its run for a day starts at that day's midnight, with the day not yet happened.)

- Retries with exponential backoff and an execution timeout on every task.
- A failed task raises an alert: a log line always, a webhook post when
  `LAB_ALERT_WEBHOOK_URL` is set, a Telegram message when `LAB_TELEGRAM_BOT_TOKEN` and
  `LAB_TELEGRAM_CHAT_ID` are.
- A deadline (Airflow 3's replacement for SLAs): gold for a day is published by 03:00 UTC the
  day after it (three hours after the data interval ends), or the same channels get an alert.
- Every layer's task writes its run metrics (duration, rows per table, gate verdict, gold's
  age) for Prometheus (docs/operations.md).
- `bronze_landed` waits until the day's bronze files exist before silver reads them.
- `gold` writes to the run's Iceberg audit branch; `quality` validates every layer with Great
  Expectations and publishes gold (fast-forwards `main`), or fails without retrying, keeping
  `main` as it was and the data on the branch (docs/quality.md). Gold's Asset is updated by
  `quality`, so what is scheduled on gold waits for the publish.
- `dbt` then builds the dbt marts in DuckDB from the run's silver (docs/dbt.md): only the
  affected days of the incremental model, then every dbt test; a failing test fails the task
  without retrying.
- After the publish, `report` writes the run's static gold report (`report.html`, one
  self-contained page) into the run folder, and `export` copies gold's days as Parquet with a
  manifest to `LAB_EXPORT_TARGET` (S3; credentials from the standard AWS chain). Without that
  setting the export is skipped.
- Params (trigger with config): `start_date`/`end_date` to run a range in one go,
  `full_refresh` to rebuild silver and gold, `assets` to fetch some assets' history only,
  `evolve_schema` to let silver add fields the source newly sends.

Backfill a range: `airflow backfill create --dag-id lakehouse_daily --from-date 2025-01-01
--to-date 2025-01-31`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import (
    Asset,
    DeadlineAlert,
    DeadlineReference,
    Param,
    SyncCallback,
    dag,
    task,
)

# Airflow 3.3 keeps the Task SDK's timetables here; later releases export them from airflow.sdk.
from airflow.sdk.definitions.timetables.interval import CronDataIntervalTimetable

BRONZE = Asset("lakehouse://bronze/coincap")
SILVER = Asset("lakehouse://silver/asset_prices")
GOLD = Asset("lakehouse://gold/fct_asset_daily")
DBT_MARTS = Asset("lakehouse://dbt/fct_asset_daily")

# A run's data interval is one day, and its logical date is that interval's start: gold for the
# day is due GOLD_DUE after the interval ends. The run succeeding (quality published gold) meets
# the deadline; otherwise the scheduler runs the callback, which alerts the task-failure channels.
INTERVAL = dt.timedelta(days=1)
GOLD_DUE = dt.timedelta(hours=3)
GOLD_DEADLINE = DeadlineAlert(
    reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
    interval=INTERVAL + GOLD_DUE,
    # By its path, so this file does not import lab_env at the top; the executor imports it.
    callback=SyncCallback(
        "lab_env.alerts.deadline_missed_alert",
        kwargs={"promise": f"gold published within {GOLD_DUE} after the day ends"},
    ),
    name="gold_published",
)


def _alert(context: dict[str, Any]) -> None:
    from lab_env.alerts import task_failure_alert

    task_failure_alert(context)


def _window(context: dict[str, Any]) -> tuple[dt.date, dt.date]:
    """The dates a run processes: the params' range if given, else the logical date."""
    params = context["params"]
    logical = context["logical_date"].date() if context.get("logical_date") else None
    start = params.get("start_date") or (logical.isoformat() if logical else None)
    end = params.get("end_date") or start
    if start is None:
        raise ValueError("No logical date and no start_date param: pass start_date in the config.")
    return dt.date.fromisoformat(start), dt.date.fromisoformat(end)


def _run_layer(name: str, context: dict[str, Any]) -> dict[str, Any]:
    """Execute one layer's notebook for this run and return what it did."""
    from lab_env.config import get_settings
    from lab_env.errors import LabError
    from lab_env.jobs.runner import kernel_env, run_parameters, run_step, step_named
    from lab_env.lake.lock import lakehouse_lock

    settings = get_settings()
    start, end = _window(context)
    run_id = context["run_id"]
    params = run_parameters(
        start,
        end,
        run_id,
        bool(context["params"].get("full_refresh")),
        context["params"].get("assets") or (),
        bool(context["params"].get("evolve_schema")),
    )
    folder = settings.run_folder(start, end, run_id)
    # One writer per LAB_HOME: while a `lab run` holds it, the task fails and retries later.
    with (
        lakehouse_lock(settings, run_id, f"lakehouse_daily.{name}"),
        kernel_env(settings, record_progress=False) as env,
    ):
        result = run_step(step_named(name), params, folder, settings, env=env)
    if not result.ok:
        if result.refused:
            from airflow.sdk.exceptions import AirflowFailException

            # Bad data stays bad on a retry: fail now (the alert callback still runs).
            raise AirflowFailException(result.error)
        raise LabError(result.error)
    return {
        "seconds": round(result.seconds, 1),
        "notebook": result.output,
        "tables": {c.table: c.added_records for c in result.tables},
    }


DEFAULT_ARGS = {
    "owner": "lakehouse-lab",
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,  # a multiplier in Airflow 3: 30 s, then 60 s, ...
    "max_retry_delay": dt.timedelta(minutes=10),
    "execution_timeout": dt.timedelta(minutes=30),
    "on_failure_callback": _alert,
}


@dag(
    dag_id="lakehouse_daily",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    end_date=dt.datetime(2025, 3, 31, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    deadline=GOLD_DEADLINE,
    doc_md=__doc__,
    tags=["lakehouse", "production"],
    params={
        "start_date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="first date to process (default: the logical date)",
        ),
        "end_date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="last date to process, inclusive (default: start_date)",
        ),
        "full_refresh": Param(False, type="boolean", description="rebuild silver and gold"),
        "evolve_schema": Param(
            False, type="boolean", description="silver adds new source fields as columns"
        ),
        "assets": Param(
            [],
            type="array",
            items={"type": "string"},
            description="asset ids whose history bronze fetches, e.g. [\"bitcoin\"] (empty: all)",
        ),
    },
)
def lakehouse_daily() -> None:
    @task(outlets=[BRONZE])
    def bronze(**context: Any) -> dict[str, Any]:
        """Fetch the day's API responses into immutable bronze files."""
        return _run_layer("bronze", context)

    @task.sensor(poke_interval=10, timeout=600, mode="reschedule")
    def bronze_landed(**context: Any) -> bool:
        """Wait until every day of the window has its bronze asset-list file."""
        from lab_env.lake.storage import get_store
        from lab_env.paths import BRONZE as BRONZE_PREFIX

        start, end = _window(context)
        store = get_store()
        days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
        return all(store.list(f"{BRONZE_PREFIX}/assets/ingest_date={day}") for day in days)

    @task(outlets=[SILVER])
    def silver(**context: Any) -> dict[str, Any]:
        """Type, deduplicate and upsert the day's bronze into silver Iceberg tables."""
        return _run_layer("silver", context)

    @task
    def gold(**context: Any) -> dict[str, Any]:
        """Recompute the gold marts for the days the run touched, on the run's audit branch."""
        return _run_layer("gold", context)

    @task(outlets=[GOLD])
    def quality(**context: Any) -> dict[str, Any]:
        """Audit the run; publish gold (fast-forward main to the audit branch) or stop here."""
        return _run_layer("quality", context)

    @task(outlets=[DBT_MARTS])
    def dbt(**context: Any) -> dict[str, Any]:
        """Build the dbt marts (DuckDB) over the run's affected days; fail when a dbt test fails."""
        return _run_layer("dbt", context)

    @task
    def report(**context: Any) -> str:
        """Publish the run's gold report (report.html) into the run folder."""
        from lab_env.config import get_settings
        from lab_env.dashboard.report import REPORT, build_report

        settings = get_settings()
        start, end = _window(context)
        folder = settings.run_folder(start, end, context["run_id"])
        return str(build_report(folder / REPORT, settings))

    @task
    def export(**context: Any) -> dict[str, Any]:
        """Export the run's gold days to LAB_EXPORT_TARGET (skipped when it is not set)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from lab_env.config import get_settings
        from lab_env.dashboard.export import export_gold

        settings = get_settings()
        if not settings.export_target:
            raise AirflowSkipException("LAB_EXPORT_TARGET is not set: nothing to export to.")
        start, end = _window(context)
        result = export_gold(settings.export_target, start, end, settings=settings)
        return {"manifest": result.manifest, "days": result.days, "rows": result.rows,
                "written": result.written, "deleted": result.deleted}

    published = bronze() >> bronze_landed() >> silver() >> gold() >> quality()
    published >> [dbt(), report(), export()]


lakehouse_daily()
