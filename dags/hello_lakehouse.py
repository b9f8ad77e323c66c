"""
### Hello, lakehouse: is the lab's environment alive where Airflow runs?

The first DAG of the lab (milestone M1). It changes nothing; it proves that the workers can
use what every later DAG needs:

1. `doctor` runs the lab's environment checks (`lab doctor`: Java, the Iceberg jar, the SQLite
   JDBC driver or the REST catalog, raw storage) and fails with the fix if one is missing.
2. `list_namespaces` opens the Iceberg catalog `lake` with pyiceberg and lists its namespaces
   and tables.
3. `say_hello` logs a one-line summary.

Run it once without a scheduler:
`airflow dags test hello_lakehouse 2025-01-01`
(with `AIRFLOW__CORE__DAGS_FOLDER` pointing at this folder). It has no schedule: trigger it from
the UI or the CLI whenever you want to check the environment.
"""

from __future__ import annotations

import datetime as dt
import logging

from airflow.sdk import dag, task

log = logging.getLogger(__name__)

DEFAULT_ARGS = {
    "owner": "lakehouse-lab",
    # On the Compose stack the catalog can still be starting: give it two more chances.
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=20),
    "execution_timeout": dt.timedelta(minutes=5),
}


@dag(
    dag_id="hello_lakehouse",
    schedule=None,
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    tags=["lakehouse-lab", "m1", "hello"],
)
def hello_lakehouse() -> None:
    @task
    def doctor() -> dict[str, bool]:
        """Run `lab doctor`'s checks; fail with the first problem's fix."""
        from lab_env.config import get_settings
        from lab_env.errors import LabError
        from lab_env.machine.doctor import report, run_checks

        settings = get_settings()
        checks = run_checks(settings)
        log.info("\n%s", report(checks, settings.profile))
        failed = [c for c in checks if not c.ok]
        if failed:
            raise LabError(f"{failed[0].name}: {failed[0].detail}", failed[0].fix)
        return {c.name: c.ok for c in checks}

    @task
    def list_namespaces() -> dict[str, list[str]]:
        """Every namespace of the catalog with its tables."""
        from lab_env.lake.catalog import get_catalog

        catalog = get_catalog()
        found = {
            ns[0]: sorted(".".join(ident) for ident in catalog.list_tables(ns))
            for ns in catalog.list_namespaces()
        }
        for namespace, tables in found.items():
            log.info("namespace %s: %s", namespace, ", ".join(tables) or "no tables yet")
        return found

    @task
    def say_hello(namespaces: dict[str, list[str]]) -> str:
        """A one-line summary of what the environment holds."""
        from lab_env.config import get_settings

        settings = get_settings()
        tables = sum(len(t) for t in namespaces.values())
        message = (
            f"Hello from Airflow: profile {settings.profile}, catalog {settings.catalog_name!r}, "
            f"{len(namespaces)} namespace(s), {tables} table(s)."
        )
        log.info(message)
        return message

    namespaces = list_namespaces()
    doctor() >> namespaces
    say_hello(namespaces)


hello_lakehouse()
