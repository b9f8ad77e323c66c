"""Shared fixtures: a real LAB_HOME in a temp folder, one real Spark session, a real catalog.

Spark binds its Iceberg catalog when it starts, so the whole test session shares one
LAB_HOME (``lab_home``); tests that need isolation use their own table names or
``fresh_settings`` (a new LAB_HOME without Spark).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab_env.alerts import Received, local_receiver
from lab_env.config import Settings, get_settings, load_settings
from lab_env.course import kept
from lab_env.jobs import airflow_db
from tests.pipeline_runs import CHECK_KERNEL_IDLE_S

REPO = Path(__file__).resolve().parents[1]

# Every temporary file of the run's processes goes in one folder, removed when the run ends:
# kernels' scratch folders (Spark's local files, the JVM's native libraries), Airflow's homes,
# demo catalogs, a killed run's leftovers. The processes started later (xdist workers, kernels,
# `lab` commands, servers) find it in TMPDIR; pytest's own tmp_path folders stay where pytest
# keeps them (the last three runs, for reading after a failure).
TEST_TMP = "LAB_TEST_TMP"
_OWN_TMP = TEST_TMP not in os.environ  # this process made the folder: it removes it (below)
if _OWN_TMP:
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
    os.environ[TEST_TMP] = tempfile.mkdtemp(prefix="lab-tests-")
os.environ["TMPDIR"] = os.environ[TEST_TMP]
tempfile.tempdir = None  # gettempdir() reads TMPDIR again

# Airflow reads its configuration on first import: give the test run its own home first.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="lab-airflow-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ.update(airflow_db.ENV)  # SQLite: wait for the scheduler's writes, never fail on them
os.environ.setdefault("LAB_CHECK_KERNEL_IDLE_S", CHECK_KERNEL_IDLE_S)  # as `lab` commands get


def pytest_unconfigure(config: pytest.Config) -> None:
    if _OWN_TMP:
        _stop_kept_kernels(config)
        shutil.rmtree(os.environ[TEST_TMP], ignore_errors=True)


def _stop_kept_kernels(config: pytest.Config) -> None:
    """End the kernels `lab check` kept in the run's LAB_HOMEs (they would end by themselves
    a little later): every home is under pytest's base folder, the workers' ones included."""
    factory = getattr(config, "_tmp_path_factory", None)
    base = getattr(factory, "_basetemp", None)
    if base is None:
        return
    for record in Path(base).rglob(kept.RECORD):
        if record.parent.name == "checks" and record.parent.parent.name == "runs":
            kept.stop(load_settings(home=record.parents[2]))


@pytest.fixture(scope="session", autouse=True)
def lab_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test runs against a LAB_HOME of its own session, never ./lakehouse."""
    home = tmp_path_factory.mktemp("lakehouse")
    mp = pytest.MonkeyPatch()
    mp.setenv("LAB_HOME", str(home))
    mp.setenv("LAB_PROFILE", "local")
    mp.delenv("LAB_COINCAP_API_KEY", raising=False)
    mp.delenv("LAB_COINCAP_URL", raising=False)
    get_settings.cache_clear()
    yield home
    mp.undo()
    get_settings.cache_clear()


@pytest.fixture
def fresh_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings over a LAB_HOME of this test alone (for tests that do not start Spark)."""
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "lakehouse"))
    get_settings.cache_clear()
    yield load_settings()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def spark(lab_home: Path):  # type: ignore[no-untyped-def]
    """The one local Spark session of the test run, with the `lake` Iceberg catalog."""
    from lab_env.lake.spark import get_spark, stop_spark

    session = get_spark()  # its JVM's temp files go in TMPDIR, the run's folder (above)
    yield session
    stop_spark()


@pytest.fixture(scope="session")
def catalog(lab_home: Path):  # type: ignore[no-untyped-def]
    """The pyiceberg catalog over the session's LAB_HOME, with bronze/silver/gold created."""
    from lab_env.lake.catalog import ensure_namespaces, get_catalog

    cat = get_catalog()
    ensure_namespaces(cat)
    return cat


@pytest.fixture
def alert_receiver() -> Iterator[tuple[str, Received]]:
    """A real HTTP receiver on 127.0.0.1: its URL, and the JSON bodies posted to it (to any
    path of the server: ``/alert`` for a webhook, ``/bot<token>/sendMessage`` for Telegram)."""
    with local_receiver() as received:
        yield received.url, received


@pytest.fixture
def webhook(
    alert_receiver: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[dict[str, Any]]]:
    """LAB_ALERT_WEBHOOK_URL pointed at a real receiver, for this process; the alerts it got."""
    url, received = alert_receiver
    monkeypatch.setenv("LAB_ALERT_WEBHOOK_URL", url)
    get_settings.cache_clear()
    yield received
    get_settings.cache_clear()
