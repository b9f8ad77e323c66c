"""An Airflow backfill run by a real scheduler builds the same tables as `lab run`.

In a module of its own: it is the longest test of the suite, and an xdist worker takes a test
module whole, so here it runs beside the other production scenarios instead of after them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from pipeline_runs import (
    airflow_cli,
    assert_same_tables,
    lab,
    lab_env_vars,
    stop_group,
)
from tenacity import retry, retry_if_result, stop_after_attempt, wait_fixed

from lab_env.jobs import airflow_db
from lab_env.ports import free_ports

pytestmark = [pytest.mark.notebook, pytest.mark.airflow]

BACKFILL = ("2025-02-13", "2025-02-14")
REPO = Path(__file__).resolve().parents[1]


def _get(url: str) -> Any:
    """The JSON an Airflow API server answers, or None while it cannot answer yet."""
    try:
        response = requests.get(url, timeout=10)
    except requests.ConnectionError:
        return None
    return response.json() if response.status_code == 200 else None


def _locked(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode != 0 and "database is locked" in result.stdout + result.stderr


@retry(retry=retry_if_result(_locked), stop=stop_after_attempt(3), wait=wait_fixed(3),
       retry_error_callback=lambda state: state.outcome.result())  # type: ignore[union-attr]
def airflow_write(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """An `airflow` command that writes the metadata database while the scheduler writes it.

    The minute's wait for SQLite's lock (lab_env.jobs.airflow_db) covers a writer that waits its
    turn. It cannot cover a transaction that SQLite refuses at once instead of letting it wait
    (when waiting could deadlock, or when another commit made its read snapshot stale in WAL
    mode): `backfill create` failed so within a second, with `database is locked`. Nothing of
    it was committed, so the command runs again, as a user would run it again. (The compose
    stack's Postgres has no such case.)
    """
    return airflow_cli(env, *args)


def test_an_airflow_backfill_builds_the_same_tables_as_lab_run(tmp_path: Path) -> None:
    """`airflow backfill create` over a range, run by a real scheduler, equals `lab run`."""

    first, last = BACKFILL
    by_lab = tmp_path / "lab-run"
    result = lab(by_lab, "run", "--start", first, "--end", last)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    home = tmp_path / "backfill"
    port, worker_logs, trigger_logs = free_ports(3)
    env = lab_env_vars(home) | {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_logs),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_logs),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__CORE__PARALLELISM": "2",
        # the test reads the runs through the REST API, as a dashboard would: no login here
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        # `backfill create` writes the runs while the scheduler writes: wait for SQLite's lock
        **airflow_db.ENV,
        # standalone starts its parts as `airflow ...` commands: this venv's, found on PATH
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    log = (tmp_path / "standalone.log").open("w")
    standalone = subprocess.Popen(  # scheduler, API server, DAG processor, triggerer
        [str(Path(sys.executable).with_name("airflow")), "standalone"],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    # Polled over HTTP: an `airflow` command costs some 4 s of CPU to start, taken from the
    # scheduler and the tasks it runs.
    api = f"http://127.0.0.1:{port}/api/v2/dags/lakehouse_daily"
    try:
        deadline = time.monotonic() + 600
        while _get(api) is None:  # the API is up and the DAG parsed
            said = (tmp_path / "standalone.log").read_text()[-3000:]
            assert standalone.poll() is None and time.monotonic() < deadline, said
            time.sleep(2)
        paused = airflow_write(env, "dags", "unpause", "lakehouse_daily")
        assert paused.returncode == 0, paused.stdout[-2000:] + paused.stderr[-2000:]
        created = airflow_write(env, "backfill", "create", "--dag-id", "lakehouse_daily",
                                "--from-date", first, "--to-date", last, "--max-active-runs", "1")
        assert created.returncode == 0, created.stdout[-2000:] + created.stderr[-2000:]

        deadline = time.monotonic() + 2400
        while True:
            runs = (_get(f"{api}/dagRuns") or {}).get("dag_runs", [])
            states = {run["logical_date"][:10]: run["state"] for run in runs}
            if len(states) == 2 and not {"queued", "running"} & set(states.values()):
                break
            assert standalone.poll() is None, (tmp_path / "standalone.log").read_text()[-3000:]
            assert time.monotonic() < deadline, f"backfill still running: {states}"
            time.sleep(5)
    finally:
        stop_group(standalone)
        log.close()

    assert states == {first: "success", last: "success"}, states
    # One DAG run per logical date, each in its own run folder.
    dated = sorted(p.name for p in (home / "runs").iterdir() if p.name[:4].isdigit())
    assert dated == [first, last]
    assert_same_tables(by_lab, home)
