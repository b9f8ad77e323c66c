"""Production runs end to end: Airflow's dag.test(), `lab run`, and a run killed part-way.

(The real Airflow scheduler's backfill is in tests/test_backfill.py.)

Each scenario runs bronze -> silver -> gold for one date in a LAB_HOME of its own, in
subprocesses, so no scenario shares a Spark session or a catalog with another.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_runs import assert_same_tables, lab, lab_env_vars, python

from lab_env.jobs import airflow_db

pytestmark = [pytest.mark.notebook, pytest.mark.airflow]

REPO = Path(__file__).resolve().parents[1]
DATE = "2025-02-14"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One clean `lab run` of DATE: what every other way of running DATE must equal."""
    home = tmp_path_factory.mktemp("reference")
    result = lab(home, "run", "--start", DATE, "--end", DATE)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Run complete." in result.stdout
    assert "silver.asset_prices" in result.stdout  # the summary lists the tables touched
    return home


def test_running_a_date_twice_changes_nothing(reference: Path, tmp_path: Path) -> None:
    import shutil

    home = tmp_path / "twice"
    shutil.copytree(reference, home)
    result = lab(home, "run", "--start", DATE, "--end", DATE)
    assert result.returncode == 0, result.stdout[-3000:]
    assert_same_tables(reference, home)


def test_airflow_dag_test_builds_the_same_tables(reference: Path, tmp_path: Path) -> None:
    home = tmp_path / "airflow-run"
    env = lab_env_vars(home) | {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        **airflow_db.ENV,
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    migrate = subprocess.run(
        [airflow, "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    script = (
        "import datetime as dt\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"dag = DagBag(dag_folder={str(REPO / 'dags')!r}).dags['lakehouse_daily']\n"
        # Airflow 3.3.2's dag.test() cannot mark a run of a DAG with a deadline successful: it
        # looks the alerts up by id in a table only the DAG processor fills ('dict' object has
        # no attribute 'hex'). The scheduler handles it (test_backfill runs this DAG with its
        # deadline); test_dags checks the deadline itself. Here only the tables matter.
        "dag.deadline = None\n"
        f"run = dag.test(logical_date=dt.datetime.fromisoformat('{DATE}T00:00:00+00:00'))\n"
        "print('DAG RUN STATE', run.state)\n"
    )
    result = python("-c", script, env=env, cwd=REPO, timeout=900)
    assert "DAG RUN STATE success" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]
    assert_same_tables(reference, home)
    runs = list((home / "runs" / DATE).iterdir())
    assert len(runs) == 1 and {p.name for p in runs[0].iterdir()} >= {
        "02_bronze.ipynb",
        "03_silver.ipynb",
        "04_gold.ipynb",
    }


@pytest.mark.parametrize("kill_in", ["03_silver.ipynb", "04_gold.ipynb"])
def test_a_killed_run_leaves_no_partial_result_after_the_rerun(
    reference: Path, tmp_path: Path, kill_in: str
) -> None:
    home = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "lab_env.cli", "run", "--start", DATE, "--end", DATE],
        env=lab_env_vars(home),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # Kill the whole run (runner, kernel, JVM) a few seconds into the chosen step.
    deadline = time.monotonic() + 600
    while not list(home.glob(f"runs/*/*/{kill_in}")) and time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before the step to kill it in"
        time.sleep(0.5)
    time.sleep(8)
    assert processes_of(home), "the run's kernel should be working by now"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    # The kernel and its JVM run in a session of their own, yet die with the run: within 2 s.
    deadline = time.monotonic() + 2
    while processes_of(home) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not processes_of(home), "the run's kernel or its JVM outlived the killed run"
    result = lab(home, "run", "--start", DATE, "--end", DATE)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert_same_tables(reference, home)


def processes_of(home: Path) -> list[int]:
    """The live processes whose environment holds LAB_HOME=home (a run, its kernel, its JVM)."""
    needle = f"LAB_HOME={home}\0".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if needle in (proc / "environ").read_bytes():
                    found.append(int(proc.name))
            except OSError:  # gone meanwhile, or not ours to read
                continue
    return found
