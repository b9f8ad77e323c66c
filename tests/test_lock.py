"""One writer per LAB_HOME: real processes contend for one lakehouse.

A stand-in holder is a Python process that takes the lock and sleeps; the second writer is
the real `lab` command. One end-to-end case races two real `lab run`s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab_env.config import load_settings
from lab_env.errors import LabError
from lab_env.lake.lock import HOLDER_FILE, INHERITED, LakehouseBusy, lakehouse_lock, read_holder

REPO = Path(__file__).resolve().parents[1]

HOLD = textwrap.dedent("""
    import sys, time
    from lab_env.config import get_settings
    from lab_env.lake.lock import lakehouse_lock

    with lakehouse_lock(get_settings(), sys.argv[1], "lab run --start 2025-03-30"):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
    print("released", flush=True)
""")


def env_for(home: Path, **extra: str) -> dict[str, str]:
    """This environment without LAB_* settings or inherited lock tokens, on ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_") and k != INHERITED}
    return env | {"LAB_HOME": str(home)} | extra


def holder(home: Path, run_id: str, seconds: float) -> subprocess.Popen[str]:
    """A process that holds ``home`` for ``seconds``; returns once it holds it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, run_id, str(seconds)],
        env=env_for(home), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line == "held\n", line + (proc.stderr.read() if proc.stderr else "")
    return proc


def lab(home: Path, *args: str, wait: str = "0.5", timeout: float = 120
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab_env.cli", *args],
        env=env_for(home, LAB_LOCK_WAIT_S=wait), cwd=REPO, capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def assert_refused(result: subprocess.CompletedProcess[str], run_id: str, pid: int) -> None:
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "Traceback" not in out and "at org.apache" not in out, out
    lines = result.stderr.splitlines()
    assert len(lines) == 1, out
    assert f"is in use by run {run_id} (pid {pid}, since " in lines[0], lines[0]
    assert "`lab run --start 2025-03-30`" in lines[0] and "Fix: wait for it to finish" in lines[0]
    assert f"kill {pid}" in lines[0]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "lakehouse"


@pytest.fixture
def held(home: Path) -> Iterator[subprocess.Popen[str]]:
    proc = holder(home, "run-A", 60)
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_writer_is_refused_with_one_line_naming_the_holder(
    home: Path, held: subprocess.Popen[str]
) -> None:
    began = time.monotonic()
    result = lab(home, "ingest", "--start", "2025-03-30", wait="1")
    assert time.monotonic() - began >= 1, "it waited LAB_LOCK_WAIT_S first"
    assert_refused(result, "run-A", held.pid)
    assert not (home / "runs").exists(), "the refused command did nothing"


def test_a_dry_run_and_readers_do_not_wait(home: Path, held: subprocess.Popen[str]) -> None:
    result = lab(home, "maintain", "--dry-run", "sandbox.none")
    assert result.returncode == 2 and "No table 'sandbox.none'" in result.stderr, result.stderr
    doctor = lab(home, "doctor")
    assert f"LAB_HOME lock: in use by run run-A (pid {held.pid}" in doctor.stdout, doctor.stdout


def test_a_waiting_writer_runs_once_the_holder_is_done(home: Path) -> None:
    first = holder(home, "run-A", 2)
    began = time.monotonic()
    second = subprocess.run(
        [sys.executable, "-c", HOLD, "run-B", "0"], env=env_for(home, LAB_LOCK_WAIT_S="60"),
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == ["held", "released"]
    assert first.wait(timeout=60) == 0
    assert time.monotonic() - began >= 1, "the second one waited for the first"
    assert not (home / HOLDER_FILE).exists(), "the record goes with the lock"


def test_the_lock_of_a_killed_holder_is_taken_over(home: Path) -> None:
    dead = holder(home, "run-killed", 60)
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    stale = read_holder(home)
    assert stale is not None and stale.run_id == "run-killed", "the record outlives its process"

    settings = load_settings(home=home, lock_wait_s=0)
    with lakehouse_lock(settings, "run-B", "lab run") as mine:
        assert mine.pid == os.getpid()
        assert read_holder(home) == mine
    assert read_holder(home) is None


def test_reentrant_in_the_process_and_in_the_processes_it_starts(home: Path) -> None:
    settings = load_settings(home=home, lock_wait_s=0)
    with lakehouse_lock(settings, None, "lab restore 6") as outer:
        with lakehouse_lock(settings, "restore-1", "lab restore 6") as inner:
            assert inner.token == outer.token and inner.run_id == "restore-1"
        # a notebook kernel this run starts: its run_pipeline runs under the same lock ...
        child = subprocess.run(
            [sys.executable, "-c", HOLD, "run-in-kernel", "0"],
            env=env_for(home) | {INHERITED: os.environ[INHERITED]},
            cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
        )
        assert child.returncode == 0 and "held" in child.stdout, child.stderr
        # ... and a stranger is refused
        stranger = lab(home, "ingest", "--start", "2025-03-30", wait="0")
        assert stranger.returncode == 1 and "run restore-1" in stranger.stderr, stranger.stderr
        assert read_holder(home) == inner, "the kernel did not rewrite the record"
    assert INHERITED not in os.environ


def test_a_lab_home_that_is_a_file_is_named(tmp_path: Path) -> None:
    home = tmp_path / "lakehouse"
    home.write_text("not a folder")
    with (
        pytest.raises(LabError, match="is a file, not a folder") as info,
        lakehouse_lock(load_settings(home=home), "r", "lab run"),
    ):
        pass
    assert not isinstance(info.value, LakehouseBusy)


@pytest.mark.notebook
def test_two_real_lab_runs_on_one_lab_home(home: Path) -> None:
    """While `lab run` works, a second one on the same LAB_HOME exits 1 with the holder."""
    args = [sys.executable, "-m", "lab_env.cli", "run", "--steps", "bronze", "--start",
            "2025-03-30"]
    first = subprocess.Popen(args, env=env_for(home), cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        record = read_holder(home)
        while (record is None or not record.run_id) and time.monotonic() < deadline:
            assert first.poll() is None, first.communicate()
            time.sleep(0.2)
            record = read_holder(home)
        assert record is not None and record.pid == first.pid and record.run_id

        second = subprocess.run(args, env=env_for(home, LAB_LOCK_WAIT_S="0"), cwd=REPO,
                                capture_output=True, text=True, timeout=120, check=False)
        assert first.poll() is None, "the first run was still working"
        out = second.stdout + second.stderr
        assert second.returncode == 1, out
        assert second.stdout == "" and len(second.stderr.splitlines()) == 1, out
        assert "Traceback" not in out and "at org.apache" not in out
        assert f"is in use by run {record.run_id} (pid {first.pid}," in second.stderr
        assert "`lab run --steps bronze --start 2025-03-30`" in second.stderr

        stdout, stderr = first.communicate(timeout=900)
        assert first.returncode == 0, stdout + stderr
        assert "Run complete." in stdout
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert read_holder(home) is None
