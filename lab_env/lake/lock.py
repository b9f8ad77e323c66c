"""One writer per LAB_HOME: the lock that ``lab run``, ``lab ingest``, ``lab restore``,
``lab maintain`` and the DAG's tasks hold while they write the lakehouse.

Iceberg keeps two writers from corrupting a table, but not from failing each other half-way
with an error that does not say why. The lock is an OS file lock (``filelock``: ``flock`` on
Linux and macOS) on ``LAB_HOME/.lab.lock``; the operating system releases it when its process
dies, however it dies, so the lock of a killed run is simply free for the next one. Beside it,
``.lab.lock.json`` records who holds it (run id, pid, host, start, command), so a second writer
can name the holder: it waits up to ``LAB_LOCK_WAIT_S`` seconds, then fails with one line.

The lock is re-entrant within the process that holds it (``lab run`` takes it, then
``run_pipeline`` takes it again) and in the processes it starts while holding it: notebook
kernels inherit a token in their environment, so ``run_pipeline`` called in a notebook that
``lab restore`` executes runs under its parent's lock instead of waiting for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lab_env.config import Settings
from lab_env.errors import LabError

if TYPE_CHECKING:
    from filelock import BaseFileLock

log = logging.getLogger(__name__)

LOCK_FILE = ".lab.lock"
HOLDER_FILE = ".lab.lock.json"
# Tokens of the locks held by this process's ancestors, inherited through the environment.
INHERITED = "_LAB_LOCK_TOKENS"
# How long a refused writer waits for a holder that has locked but not yet recorded itself.
_RECORD_GRACE_S = 1.0


@dataclass(frozen=True)
class Holder:
    """Who holds a LAB_HOME: what the holder record says."""

    run_id: str | None
    pid: int
    host: str
    since: str  # ISO 8601, UTC
    command: str
    token: str

    def describe(self) -> str:
        """``run X (pid N, since T, `command`)``, for messages."""
        here = self.host == socket.gethostname()
        where = f"pid {self.pid}" + ("" if here else f" on {self.host}")
        since = self.since.replace("T", " ").removesuffix("+00:00")
        if self.run_id:
            return f"run {self.run_id} ({where}, since {since} UTC, `{self.command}`)"
        return f"`{self.command}` ({where}, since {since} UTC)"

    def alive(self) -> bool:
        """Whether the holder's process still runs (assumed, for a holder on another host)."""
        return self.host != socket.gethostname() or _pid_alive(self.pid)


class LakehouseBusy(LabError):
    """Another writer holds LAB_HOME; the message names it."""

    exit_code = 1  # the command did not run; running it again later is the fix

    def __init__(self, home: Path, holder: Holder | None, waited: float) -> None:
        who = holder.describe() if holder else "another process (it has not recorded itself)"
        stop = f"; or stop it: kill {holder.pid}" if holder else ""
        super().__init__(
            f"LAB_HOME {home} is in use by {who}; waited {waited:g}s.",
            f"wait for it to finish, then run this again (LAB_LOCK_WAIT_S sets how long to "
            f"wait){stop}.",
        )
        self.holder = holder


@dataclass
class _Held:
    lock: BaseFileLock
    holder: Holder
    depth: int


_held: dict[Path, _Held] = {}
_guard = threading.RLock()


@contextlib.contextmanager
def lakehouse_lock(
    settings: Settings, run_id: str | None = None, what: str = ""
) -> Iterator[Holder]:
    """Hold LAB_HOME for one writer while the block runs; yield the holder record.

    ``run_id`` and ``what`` (the command, e.g. ``lab run --start 2025-03-30``) go into the
    record that a refused writer quotes. Raises :class:`LakehouseBusy` when another process
    still holds it after ``settings.lock_wait_s`` seconds.
    """
    home = settings.lab_home
    path = home / LOCK_FILE
    with _guard:
        held = _held.get(path)
        if held is not None:  # re-entered in this process
            held.depth += 1
            if run_id and not held.holder.run_id:  # the command took it before the run had an id
                held.holder = dataclasses.replace(held.holder, run_id=run_id)
                _write_holder(home, held.holder)
    if held is not None:
        try:
            yield held.holder
        finally:
            with _guard:
                held.depth -= 1
        return
    inherited = _inherited(home)
    if inherited is not None:  # a parent process holds it and started this one
        yield inherited
        return
    lock = _acquire(home, settings.lock_wait_s)
    previous = read_holder(home)
    holder = Holder(
        run_id=run_id or None,
        pid=os.getpid(),
        host=socket.gethostname(),
        since=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        command=what or "python",
        token=uuid.uuid4().hex,
    )
    if previous is not None:  # its process died holding the lock: the OS released it
        log.info("LAB_HOME %s: taking over from %s, which ended without releasing it",
                 home, previous.describe())
    try:
        _write_holder(home, holder)
    except BaseException:
        lock.release()
        raise
    entry = _Held(lock, holder, 1)
    with _guard:
        _held[path] = entry
        _set_inherited(holder.token, add=True)
    try:
        yield holder
    finally:
        with _guard:
            entry.depth -= 1
            if entry.depth == 0:
                del _held[path]
                _set_inherited(entry.holder.token, add=False)
                with contextlib.suppress(OSError):
                    current = read_holder(home)
                    if current is not None and current.token == entry.holder.token:
                        (home / HOLDER_FILE).unlink()
                lock.release()


def read_holder(home: Path) -> Holder | None:
    """The holder record under ``home``: the current holder's if the lock is held, else None
    or the record of a holder that died without releasing it."""
    try:
        data = json.loads((home / HOLDER_FILE).read_text(encoding="utf-8"))
        return Holder(**{f.name: data[f.name] for f in dataclasses.fields(Holder)})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def current_holder(home: Path) -> Holder | None:
    """Who holds ``home`` now, by its record: None if nobody does (or a dead process did)."""
    holder = read_holder(home)
    return holder if holder is not None and holder.alive() else None


def _acquire(home: Path, wait: float) -> BaseFileLock:
    from filelock import FileLock, Timeout

    try:
        home.mkdir(parents=True, exist_ok=True)
        # Not thread-local: the whole process holds it. No soft-lock fallback: a file that is
        # not released when its process dies would lock LAB_HOME for ever.
        lock = FileLock(str(home / LOCK_FILE), thread_local=False, fallback_to_soft=False)
        lock.acquire(timeout=wait)
    except Timeout:
        raise LakehouseBusy(home, _holder_of_busy(home), wait) from None
    except OSError as exc:
        raise unusable_home(home, exc) from None
    return lock


def unusable_home(home: Path, exc: OSError) -> LabError:
    """The error for a LAB_HOME that cannot be written: a file, read-only, not creatable."""
    if home.exists() and not home.is_dir():
        problem = f"LAB_HOME {home} is a file, not a folder."
    else:
        problem = f"LAB_HOME {home} cannot be written ({exc.strerror}: {exc.filename or home})."
    return LabError(
        problem, "set LAB_HOME to a folder you can write, e.g. export LAB_HOME=$HOME/lakehouse."
    )


def _holder_of_busy(home: Path) -> Holder | None:
    """The record of a holder that is known to hold the lock now: it may not have written it
    yet (it writes right after locking), so a missing or dead record is read again shortly."""
    deadline = time.monotonic() + _RECORD_GRACE_S
    while True:
        holder = current_holder(home)
        if holder is not None or time.monotonic() > deadline:
            return holder
        time.sleep(0.1)


def _write_holder(home: Path, holder: Holder) -> None:
    """Write the record whole or not at all: a reader never sees half of it."""
    tmp = home / f"{HOLDER_FILE}.{holder.token}.tmp"
    tmp.write_text(json.dumps(dataclasses.asdict(holder), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, home / HOLDER_FILE)


def _inherited(home: Path) -> Holder | None:
    """The holder of ``home`` if it is an ancestor of this process that holds it now."""
    tokens = os.environ.get(INHERITED, "").split()
    if not tokens:
        return None
    holder = current_holder(home)  # released: its record is gone; died: its pid is
    return holder if holder is not None and holder.token in tokens else None


def _set_inherited(token: str, *, add: bool) -> None:
    """Hand the token to the processes this one starts while it holds the lock."""
    tokens = [t for t in os.environ.get(INHERITED, "").split() if t != token]
    if add:
        tokens.append(token)
    if tokens:
        os.environ[INHERITED] = " ".join(tokens)
    else:
        os.environ.pop(INHERITED, None)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
