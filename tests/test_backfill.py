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

import pytest
from pipeline_runs import (
    airflow_cli,
    assert_same_tables,
    free_port,
    lab,
    lab_env_vars,
    stop_group,
)

pytestmark = [pytest.mark.notebook, pytest.mark.airflow]

BACKFILL = ("2025-02-13", "2025-02-14")
REPO = Path(__file__).resolve().parents[1]


def test_an_airflow_backfill_builds_the_same_tables_as_lab_run(tmp_path: Path) -> None:
    """`airflow backfill create` over a range, run by a real scheduler, equals `lab run`."""
    import json

    first, last = BACKFILL
    by_lab = tmp_path / "lab-run"
    result = lab(by_lab, "run", "--start", first, "--end", last)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    home = tmp_path / "backfill"
    port = free_port()
    env = lab_env_vars(home) | {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__CORE__PARALLELISM": "2",
        # standalone starts its parts as `airflow ...` commands: this venv's, found on PATH
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    log = (tmp_path / "standalone.log").open("w")
    standalone = subprocess.Popen(  # scheduler, API server, DAG processor, triggerer
        [str(Path(sys.executable).with_name("airflow")), "standalone"],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while "lakehouse_daily" not in airflow_cli(env, "dags", "list").stdout:
            said = (tmp_path / "standalone.log").read_text()[-3000:]
            assert standalone.poll() is None and time.monotonic() < deadline, said
            time.sleep(5)
        assert airflow_cli(env, "dags", "unpause", "lakehouse_daily").returncode == 0
        created = airflow_cli(env, "backfill", "create", "--dag-id", "lakehouse_daily",
                              "--from-date", first, "--to-date", last, "--max-active-runs", "1")
        assert created.returncode == 0, created.stdout[-2000:] + created.stderr[-2000:]

        deadline = time.monotonic() + 2400
        while True:
            listed = airflow_cli(env, "dags", "list-runs", "lakehouse_daily", "-o", "json")
            rows = [line for line in listed.stdout.splitlines() if line.startswith("[")]
            states = {run["logical_date"][:10]: run["state"] for run in json.loads(rows[0] or "[]")}
            if len(states) == 2 and not {"queued", "running"} & set(states.values()):
                break
            assert time.monotonic() < deadline, f"backfill still running: {states}"
            time.sleep(15)
    finally:
        stop_group(standalone)
        log.close()

    assert states == {first: "success", last: "success"}, states
    # One DAG run per logical date, each in its own run folder.
    dated = sorted(p.name for p in (home / "runs").iterdir() if p.name[:4].isdigit())
    assert dated == [first, last]
    assert_same_tables(by_lab, home)
