"""Production runs end to end: Airflow's dag.test(), `lab run`, and a run killed part-way.

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

import pyarrow as pa
import pytest

from lab_env.catalog import get_catalog
from lab_env.config import load_settings

pytestmark = [pytest.mark.notebook, pytest.mark.airflow]

REPO = Path(__file__).resolve().parents[1]
DATE = "2025-02-14"
# Columns that say when or by which run a row was written, not what the data is.
RUN_COLUMNS = {"ingest_run_id", "silver_run_id", "fetched_at"}


def lab_env_vars(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    return env | {"LAB_HOME": str(home)}


def lab(home: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab_env.cli", *args],
        env=lab_env_vars(home),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def tables(home: Path) -> dict[str, pa.Table]:
    """Every silver and gold table under ``home``, run columns dropped, rows sorted."""
    catalog = get_catalog(load_settings(home=home))
    contents = {}
    for namespace in ("silver", "gold"):
        for ident in catalog.list_tables(namespace):
            data = catalog.load_table(ident).scan().to_arrow()
            keep = [c for c in data.column_names if c not in RUN_COLUMNS]
            data = data.select(keep)
            contents[".".join(ident)] = data.sort_by(
                [(c, "ascending") for c in keep if not pa.types.is_nested(data[c].type)]
            )
    return contents


def assert_same_tables(left: Path, right: Path) -> None:
    a, b = tables(left), tables(right)
    assert sorted(a) == sorted(b)
    assert any(t.num_rows for t in a.values()), "the runs built empty tables"
    for name in a:
        assert a[name].equals(b[name]), f"{name} differs"


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
        f"run = dag.test(logical_date=dt.datetime.fromisoformat('{DATE}T00:00:00+00:00'))\n"
        "print('DAG RUN STATE', run.state)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
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


BACKFILL = ("2025-02-13", "2025-02-14")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def airflow_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    airflow = str(Path(sys.executable).with_name("airflow"))
    return subprocess.run(
        [airflow, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


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
        os.killpg(standalone.pid, signal.SIGTERM)
        try:
            standalone.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(standalone.pid, signal.SIGKILL)
        log.close()

    assert states == {first: "success", last: "success"}, states
    # One DAG run per logical date, each in its own run folder.
    dated = sorted(p.name for p in (home / "runs").iterdir() if p.name[:4].isdigit())
    assert dated == [first, last]
    assert_same_tables(by_lab, home)
