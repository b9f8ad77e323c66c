"""Stopping by pid, on real processes: a polite one, a stubborn one, and an orphan."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lab_env import processes

STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(120)"
)
POLITE = "import time; print('ready', flush=True); time.sleep(120)"


def started(code: str, **kw: object) -> subprocess.Popen[str]:
    process = subprocess.Popen(  # type: ignore[call-overload]
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, **kw
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


def test_a_process_that_ends_on_sigterm_is_stopped_at_once() -> None:
    process = started(POLITE)
    began = time.monotonic()
    processes.stop(process.pid, lambda: process.poll() is None, timeout_s=30)
    assert process.returncode == -signal.SIGTERM
    assert time.monotonic() - began < 10  # far from the 30 s it would wait for a stubborn one


def test_a_process_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    process = started(STUBBORN)
    processes.stop(process.pid, lambda: process.poll() is None, timeout_s=1)
    assert process.returncode == -signal.SIGKILL


def test_a_group_is_stopped_with_every_process_in_it(tmp_path: Path) -> None:
    """A service's own children (a worker's executors) go with it."""
    child_pid = tmp_path / "child.pid"
    leader = started(
        textwrap.dedent(f"""
            import subprocess, sys, time
            child = subprocess.Popen([sys.executable, "-c", {STUBBORN!r}],
                                     stdout=subprocess.DEVNULL)
            open({str(child_pid)!r}, "w").write(str(child.pid))
            print("ready", flush=True)
            time.sleep(120)
        """),
        start_new_session=True,
    )
    while not child_pid.exists() or not child_pid.read_text():
        time.sleep(0.05)
    child = int(child_pid.read_text())

    def child_alive() -> bool:
        try:
            return Path(f"/proc/{child}/stat").read_text().split(") ")[1][0] != "Z"
        except FileNotFoundError:
            return False

    processes.stop(leader.pid, lambda: leader.poll() is None or child_alive(), group=True,
                   timeout_s=1)
    assert leader.returncode == -signal.SIGTERM
    assert not child_alive()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux only")
def test_a_child_tied_to_its_parent_ends_when_the_parent_is_killed(tmp_path: Path) -> None:
    child_pid = tmp_path / "child.pid"
    parent = started(
        textwrap.dedent(f"""
            import signal, subprocess, sys
            from lab_env import processes
            child = subprocess.Popen([sys.executable, "-c", {POLITE!r}], stdout=subprocess.DEVNULL,
                                     start_new_session=True,
                                     preexec_fn=processes.die_with_parent(signal.SIGTERM))
            open({str(child_pid)!r}, "w").write(str(child.pid))
            print("ready", flush=True)
            child.wait()
        """)
    )
    child = int(child_pid.read_text())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{child}").exists(), "the orphan outlived its killed parent"


def test_identity_tells_a_running_process_from_an_ended_one() -> None:
    assert processes.identity(os.getpid()) == processes.identity(os.getpid()) is not None
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    alive = processes.identity(child.pid)
    assert alive is not None or child.poll() is not None
    deadline = time.monotonic() + 10
    while processes.identity(child.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    # exited and not yet reaped (a zombie) counts as ended
    assert processes.identity(child.pid) is None
    child.wait()
    assert processes.identity(child.pid) is None
