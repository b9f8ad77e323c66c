"""Processes the lab starts and stops by pid: kernels, the Kafka broker, the stack's services."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

# After SIGKILL a process cannot refuse: this only gives the kernel time to end it.
KILL_GRACE_S = 5.0


def die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child sent ``sig`` when the process that started it ends.

    A child in a session of its own (``start_new_session``) is out of reach of its parent's
    process group, so without this it would outlive a killed parent. Linux only (``prctl``);
    elsewhere None, and the child is stopped by its pid as usual.
    """
    if not sys.platform.startswith("linux"):
        return None

    def preexec() -> None:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, sig)

    return preexec


def stop(pid: int, running: Callable[[], bool], *, group: bool = False,
         timeout_s: float = 20.0) -> None:
    """Stop ``pid`` (with ``group``, its whole process group): SIGTERM, then SIGKILL.

    ``running`` says whether what we started is still there; it is asked, not the pid, because
    a pid can be handed to another program once ours has ended. A child of this process is
    reaped on the way, so it does not linger as a zombie that still looks alive.
    """
    send = os.killpg if group else os.kill
    deadline = time.monotonic() + timeout_s
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if running():
            with contextlib.suppress(ProcessLookupError):
                send(pid, sig)
        while running() and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.2)
        deadline = time.monotonic() + KILL_GRACE_S
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def identity(pid: int) -> str | None:
    """Who ``pid`` is: its start time on Linux (a recycled pid gets another one), elsewhere
    ``"alive"``; None when no such process runs (an exited one waiting to be reaped included)."""
    if not Path("/proc/self/stat").is_file():  # no /proc (macOS): alive or not is all we know
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "alive"
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # after the parenthesised command name (which may hold spaces): field 3 the state, 22 the
    # start time
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]
