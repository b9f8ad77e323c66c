"""Helpers for tests that run the pipeline or a server in subprocesses, each LAB_HOME its own."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from lab_env.config import load_settings
from lab_env.lake.catalog import get_catalog
from lab_env.ports import free_ports

REPO = Path(__file__).resolve().parents[1]

# Columns that say when or by which run a row was written, not what the data is.
RUN_COLUMNS = {"ingest_run_id", "silver_run_id", "fetched_at"}


# `lab check` keeps its kernel this long after a check (lab_env.course.kept): long enough for a
# test's next check, short enough that the many test homes' kernels do not pile up.
CHECK_KERNEL_IDLE_S = "120"


def lab_env_vars(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    return env | {"LAB_HOME": str(home), "LAB_CHECK_KERNEL_IDLE_S": CHECK_KERNEL_IDLE_S}


def python(
    *args: str, env: dict[str, str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """This venv's Python run with ``args`` (``-c CODE`` or ``-m MODULE ...``), output as text."""
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def lab(
    home: Path, *args: str, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return python(
        "-m", "lab_env.cli", *args, env=lab_env_vars(home) | (env or {}), cwd=REPO, timeout=timeout
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


def free_port() -> int:
    [port] = free_ports(1)
    return port


def airflow_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    airflow = str(Path(sys.executable).with_name("airflow"))
    return subprocess.run(
        [airflow, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def stop_group(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Stop a server started with ``start_new_session=True``, and everything it started."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


@contextlib.contextmanager
def lab_environment(**env: str) -> Iterator[None]:
    """Set LAB_* variables for this process and the kernels it starts; restore them after
    (``get_settings()`` follows: it is read again on entry and on exit)."""
    import pytest

    from lab_env.config import get_settings

    mp = pytest.MonkeyPatch()
    for name, value in env.items():
        mp.setenv(name, value)
    get_settings.cache_clear()
    try:
        yield
    finally:
        mp.undo()
        get_settings.cache_clear()
