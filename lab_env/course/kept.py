"""The kernel a learner's next ``lab check`` reuses, with its Spark warm.

A check runs a whole notebook, and in a kernel started for it most of the time goes to the JVM:
starting it, loading its classes and compiling the code the notebook runs (a check of 03 took
28 s that way on a quiet laptop, and 11-13 s when run again in the same kernel). So after a
check its kernel is kept, and the next check of a course notebook in the same LAB_HOME runs in
it. Only what cannot change a result carries over: imported modules and the JVM's classes and
compiled code. Each check gets an empty namespace, its own environment, the notebook's folder as
working directory, and a new SparkSession (:func:`lab_env.lake.spark.renew_session`: its own
settings, temporary views and catalog connection; cached data dropped), as a fresh kernel would.

The kernel ends itself after ``LAB_CHECK_KERNEL_IDLE_S`` seconds without a check (0: no kernel
is kept). A check that does not finish normally (interrupted, its kernel dead) stops it, and
so does a change of settings, environment or the lab's code: the next check starts clean.
``runs/checks/kernel.json`` records the kept kernel; :func:`stop` ends it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from lab_env import processes
from lab_env.config import Settings
from lab_env.jobs.runner import KERNEL, Kernel
from lab_env.lake.lock import INHERITED

RECORD = "kernel.json"
CONNECTION = "kernel-connection.json"
LOG = "kernel.log"
# Notebooks whose checks always get a kernel of their own: 09 starts a Kafka broker that lives
# as long as the kernel that started it.
FRESH_KERNEL = ("09_streaming.ipynb",)
# A kept kernel is reused until this long (or half its idle time) before it would end itself,
# so it cannot end while a check starts in it; it looks every WATCH_EVERY_S seconds (or a
# quarter of its idle time).
REUSE_MARGIN_S = 45.0
WATCH_EVERY_S = 15.0
READY_TIMEOUT_S = 120.0


@dataclass
class _Record:
    home: str
    pid: int
    identity: str  # processes.identity: a recycled pid is not taken for the kernel
    connection_file: str
    scratch: str  # Spark's local folder (and the JVM's temp folder): removed with the kernel
    key: str  # settings, environment and code the kernel started with (:func:`_key`)
    idle_since: float | None  # when its last check ended (time.time()); None while one runs

    def running(self) -> bool:
        return processes.identity(self.pid) == self.identity


def wanted(settings: Settings, notebook: Path) -> bool:
    """Whether a check of ``notebook`` runs in the kept kernel (course notebooks, local)."""
    return (
        settings.check_kernel_idle_s > 0
        and settings.is_local
        and notebook.name not in FRESH_KERNEL
    )


@contextlib.contextmanager
def check_kernel(
    settings: Settings, env: Mapping[str, str], cwd: Path
) -> Iterator[tuple[Kernel, bool]]:
    """The kept kernel of this LAB_HOME, ready for a check in ``cwd``, and whether it was kept
    from an earlier check (False: started now). ``env`` (from
    :func:`lab_env.jobs.runner.kernel_env`) is what a kernel starts with; pass
    :func:`check_env` of it to the notebook's execution. The caller holds the LAB_HOME lock."""
    key = _key(settings)
    record = _reusable(settings, key)
    kernel = None if record is None else _reused(record, cwd, settings)
    warm = kernel is not None
    if record is None or kernel is None:
        record = _launch(settings, key, env)
        try:
            kernel = _attach(record)
            _begin(kernel, record, cwd, settings)
        except BaseException:
            _stop(record)
            raise
    record.idle_since = None
    _write(settings, record)
    finished = False
    try:
        yield kernel, warm
        finished = True
    finally:
        if finished and record.running():
            record.idle_since = time.time()
            _write(settings, record)
        else:
            _stop(record)
            _record_path(settings).unlink(missing_ok=True)


def check_env(env: Mapping[str, str]) -> dict[str, str | None]:
    """The variables a check sets in the kept kernel before the notebook: ``env`` and the lock
    token of this process (a kept kernel started under an earlier check's lock)."""
    return {**env, INHERITED: os.environ.get(INHERITED)}


def stop(settings: Settings) -> bool:
    """End this LAB_HOME's kept kernel; False when none was running."""
    record = _read(settings)
    if record is None:
        return False
    running = record.running()
    _stop(record)
    _record_path(settings).unlink(missing_ok=True)
    return running


def begin_check(idle_s: float, scratch: str) -> None:
    """In the kept kernel, before each check: a new SparkSession, and (once) the watch that
    ends the kernel after ``idle_s`` seconds without executing anything."""
    from lab_env.lake.spark import renew_session

    renew_session()
    if not any(t.name == _WATCH_THREAD for t in threading.enumerate()):
        _watch_idle(idle_s, scratch)


_WATCH_THREAD = "lab-check-kernel-idle"


def _watch_idle(idle_s: float, scratch: str) -> None:
    from IPython import get_ipython

    shell = get_ipython()
    state = {"busy": False, "last": time.monotonic()}

    def started(info: object) -> None:
        state["busy"] = True

    def finished(result: object) -> None:
        state.update(busy=False, last=time.monotonic())

    shell.events.register("pre_run_cell", started)
    shell.events.register("post_run_cell", finished)

    def watch() -> None:
        from lab_env.lake.spark import exit_jvm

        while state["busy"] or time.monotonic() - state["last"] < idle_s:
            time.sleep(min(WATCH_EVERY_S, idle_s / 4))
        try:
            exit_jvm(timeout=60)  # Spark's exit hooks delete its files
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            os._exit(0)

    threading.Thread(target=watch, name=_WATCH_THREAD, daemon=True).start()


def _record_path(settings: Settings) -> Path:
    return settings.runs_dir / "checks" / RECORD


def _read(settings: Settings) -> _Record | None:
    path = _record_path(settings)
    try:
        record = _Record(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    # A copied LAB_HOME carries the record of another home's kernel: not this home's to use.
    return record if record.home == str(settings.lab_home) else None


def _write(settings: Settings, record: _Record) -> None:
    path = _record_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(record), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _key(settings: Settings) -> str:
    """What a kernel keeps from its start: the settings, this process's LAB_/Spark/Java
    environment, the virtual environment and the lab's code (where it is, its newest file)."""
    package = Path(__file__).resolve().parents[1]  # lab_env/
    environment = sorted(
        (k, v) for k, v in os.environ.items()
        if k.startswith(("LAB_", "SPARK_", "PYSPARK_", "JAVA_", "_JAVA_"))
    )
    newest = max(p.stat().st_mtime_ns for p in package.rglob("*.py"))
    blob = json.dumps([settings.model_dump_json(), environment, sys.prefix, str(package), newest])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _reusable(settings: Settings, key: str) -> _Record | None:
    """The kept kernel if a check may run in it now; a kernel that may not is stopped."""
    record = _read(settings)
    if record is None:
        return None
    idle = None if record.idle_since is None else time.time() - record.idle_since
    limit = settings.check_kernel_idle_s
    if (
        record.key == key
        and idle is not None  # None: a check in it never finished (its `lab check` was killed)
        and idle < limit - min(REUSE_MARGIN_S, limit / 2)
        and record.running()
    ):
        return record
    _stop(record)
    return None


def _launch(settings: Settings, key: str, env: Mapping[str, str]) -> _Record:
    """Start a kernel that outlives this process: in a session of its own (a Ctrl-C in the
    terminal does not reach it), without the parent watch ipykernel does for Jupyter."""
    from jupyter_client.connect import write_connection_file
    from jupyter_client.kernelspec import KernelSpecManager

    folder = _record_path(settings).parent
    folder.mkdir(parents=True, exist_ok=True)
    connection = folder / CONNECTION
    connection.unlink(missing_ok=True)
    write_connection_file(str(connection), ip="127.0.0.1")  # free ports, a new signing key
    spec = KernelSpecManager().get_kernel_spec(KERNEL)
    argv = [arg.replace("{connection_file}", str(connection)) for arg in spec.argv]
    if argv[0] in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        argv[0] = sys.executable  # as jupyter_client does: this venv's interpreter
    scratch = tempfile.mkdtemp(prefix="lab-kernel-")
    started = {k: v for k, v in os.environ.items() if k != "JPY_PARENT_PID"}
    started |= dict(spec.env) | dict(env) | {"SPARK_LOCAL_DIRS": scratch}
    with (folder / LOG).open("ab") as log:  # what the kernel and its JVM print themselves
        process = subprocess.Popen(
            argv, cwd=folder, env=started, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True,
        )
    identity = processes.identity(process.pid) or ""
    return _Record(str(settings.lab_home), process.pid, identity, str(connection), scratch, key,
                   None)


def _attach(record: _Record) -> Kernel:
    """A :class:`Kernel` over the kept kernel's process, which this process did not start."""
    from jupyter_client.manager import AsyncKernelManager

    class KeptKernelManager(AsyncKernelManager):
        @property
        def has_kernel(self) -> bool:  # a kernel runs: nbclient must not start another
            return True

        async def _async_is_alive(self) -> bool:
            return record.running()

        is_alive = _async_is_alive

    manager = KeptKernelManager(kernel_name=KERNEL)
    manager.load_connection_file(record.connection_file)
    client = manager.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=READY_TIMEOUT_S)
    finally:
        client.stop_channels()
    return Kernel.running(manager)


def _reused(record: _Record, cwd: Path, settings: Settings) -> Kernel | None:
    """The kept kernel, ready for this check; None (and stopped) if it ended meanwhile or
    cannot take code: the check starts a new one."""
    try:
        kernel = _attach(record)
        _begin(kernel, record, cwd, settings)
    except Exception:
        _stop(record)
        return None
    return kernel


def _begin(kernel: Kernel, record: _Record, cwd: Path, settings: Settings) -> None:
    kernel.run_code(
        "import os as _os\n"
        f"_os.chdir({str(cwd)!r})\n"
        "from lab_env.course.kept import begin_check as _begin_check\n"
        f"_begin_check({settings.check_kernel_idle_s!r}, {record.scratch!r})\n"
    )


def _stop(record: _Record) -> None:
    """End the kernel and its JVM (its process group: the kernel leads its own session)."""

    def running() -> bool:
        if record.running():
            return True
        try:
            os.killpg(record.pid, 0)  # the JVM, still running its exit hooks
        except (ProcessLookupError, PermissionError):
            return False
        return True

    if record.running():
        processes.stop(record.pid, running, group=True)
    shutil.rmtree(record.scratch, ignore_errors=True)
