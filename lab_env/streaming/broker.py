"""A real Apache Kafka broker on 127.0.0.1: one KRaft node (broker and controller in one JVM).

``lab kafka start`` runs ``kafka.Kafka`` from the broker's Maven Central jars (jars/jars.lock,
profile ``kafka-broker``; ``make jars`` fetches them) with a generated ``server.properties``. Its
storage is formatted once with a cluster id; its data, log and state file live in
``LAB_HOME/kafka``. ``lab kafka stop`` stops it by the pid in that state file. On the Compose
stack the ``kafka`` service plays the same part (LAB_KAFKA_BOOTSTRAP=localhost:9092).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from lab_env import processes
from lab_env.config import Settings, get_settings
from lab_env.errors import LabError
from lab_env.lake import jars
from lab_env.ports import free_ports

MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
READY_LINE = "Kafka Server started"
NODE_ID = 1
# A small broker for a shared laptop: a quarter GB of heap, the serial collector, and the quick
# JIT alone (C1), as the Spark driver has: the lab's streams are small, and a start and stop
# cost 5.2 s of CPU instead of 9.0 s (docs/streaming.md).
QUICK_JVM = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
JVM_OPTS = ("-Xms64m", "-Xmx320m", *QUICK_JVM, "-Djava.awt.headless=true")
# Three partitions by default: enough to show keys, ordering per partition and consumer groups.
DEFAULT_PARTITIONS = 3

LOG4J2 = """\
# The broker's log (LAB_HOME/kafka/broker.log): INFO, one line per event.
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.state.name = state.change.logger
logger.state.level = WARN
"""


@dataclass(frozen=True)
class BrokerState:
    """What ``LAB_HOME/kafka/broker.json`` records about the running broker."""

    pid: int
    port: int
    controller_port: int
    cluster_id: str
    started_at: float
    # A broker tied to the process that started it (a notebook's kernel): that process's pid
    # and identity (lab_env.processes.identity). None: it runs until `lab kafka stop`.
    owner: int | None = None
    owner_identity: str | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def owner_gone(self) -> bool:
        """Tied to a process that has ended: the broker got SIGTERM and is shutting down."""
        return self.owner is not None and processes.identity(self.owner) != self.owner_identity


def kafka_home(settings: Settings) -> Path:
    """Where the broker keeps its data, log, configuration and state file."""
    return settings.lab_home / "kafka"


def _state_file(settings: Settings) -> Path:
    return kafka_home(settings) / "broker.json"


def _read_state(settings: Settings) -> BrokerState | None:
    try:
        return BrokerState(**json.loads(_state_file(settings).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _is_our_broker(pid: int) -> bool:
    """True if ``pid`` is alive and runs kafka.Kafka (a recycled pid is somebody else's)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc (macOS): trust the state file
    return MAIN_CLASS.encode() in cmdline


def port_open(port: int) -> bool:
    """True if a server accepts connections on 127.0.0.1:``port``."""
    with contextlib.closing(socket.socket()) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0




def status(settings: Settings | None = None) -> BrokerState | None:
    """The running broker of this LAB_HOME, or None."""
    settings = settings or get_settings()
    state = _read_state(settings)
    if state is None or not _is_our_broker(state.pid):
        return None
    return state


def bootstrap_servers(settings: Settings | None = None) -> str:
    """LAB_KAFKA_BOOTSTRAP, else the address of the broker ``lab kafka start`` runs."""
    settings = settings or get_settings()
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    state = status(settings)
    if state is None:
        raise LabError(
            f"No Kafka broker is running for LAB_HOME {settings.lab_home}.",
            "start one with `lab kafka start` "
            "(or set LAB_KAFKA_BOOTSTRAP to a broker's host:port).",
        )
    return state.bootstrap


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (22 characters).

    Like Kafka's own ``Uuid.randomUuid``, never one that starts with ``-``: the storage tool
    would read it as an option (``argument --cluster-id/-t: expected one argument``).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def server_properties(home: Path, port: int, controller_port: int) -> str:
    """One node that is both broker and controller (KRaft), reachable on 127.0.0.1 only."""
    single = "1"  # one broker: every internal topic has one replica
    lines = {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.voters": f"{NODE_ID}@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(home / "data"),
        "num.partitions": str(DEFAULT_PARTITIONS),
        "offsets.topic.replication.factor": single,
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": single,
        "transaction.state.log.min.isr": single,
        "transaction.state.log.num.partitions": "3",
        "share.coordinator.state.topic.replication.factor": single,
        "share.coordinator.state.topic.min.isr": single,
        # A consumer group starts consuming at once instead of waiting 3 s for more members.
        "group.initial.rebalance.delay.ms": "0",
        # A laptop's lab: a week of ticks at most, in small segments.
        "log.retention.hours": "168",
        "log.segment.bytes": str(16 * 1024 * 1024),
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def start(
    settings: Settings | None = None, port: int = 0, timeout_s: float = 90.0,
    tied: bool = False,
) -> tuple[BrokerState, bool]:
    """Start this LAB_HOME's broker (or find it running); returns (state, started_now).

    ``tied``: the broker stops when this process ends (Linux), e.g. with a notebook's kernel,
    even if the notebook stops before its last cell.
    """
    from lab_env.lake.spark import check_java

    settings = settings or get_settings()
    if not 0 <= port <= 65535:
        raise LabError(f"Port {port} is not a TCP port.", "use 1-65535, or 0 for any free port.")
    running = status(settings)
    if running is not None and running.owner_gone:
        # Kernel > Restart: the old kernel's broker is still shutting down when the new kernel
        # asks for one. Reusing it would fail a moment later; wait for it, then start anew.
        _stop_pid(running.pid)
        running = None
    if running is not None:
        return running, False
    java = check_java()
    classpath = os.pathsep.join(str(p) for p in jars.kafka_broker_classpath(settings))
    home = kafka_home(settings)
    (home / "data").mkdir(parents=True, exist_ok=True)
    previous = _read_state(settings)
    if port == 0 and previous is not None and not port_open(previous.port):
        port = previous.port  # the same address as last time, if it is still free
    if port:
        with socket.socket() as probe:  # a taken port fails here, not in the broker's log
            probe.bind(("127.0.0.1", port))
    free = [p for p in free_ports(3) if p != port]
    port, controller_port = port or free[0], free[1]
    props = home / "server.properties"
    props.write_text(server_properties(home, port, controller_port))
    (home / "log4j2.properties").write_text(LOG4J2)
    cluster_id = _format_storage(java, classpath, home, props)

    log_file = home / "broker.log"
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            [java, *JVM_OPTS, f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
             f"-Dkafka.logs.dir={home}", f"-Djava.io.tmpdir={tempfile.gettempdir()}",
             "-cp", classpath, MAIN_CLASS, str(props)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=home,
            start_new_session=True,  # Ctrl-C in a notebook or terminal does not reach it
            # tied: SIGTERM the broker when the process that started it ends
            preexec_fn=processes.die_with_parent(signal.SIGTERM) if tied else None,
        )
    owner = os.getpid() if tied else None
    state = BrokerState(proc.pid, port, controller_port, cluster_id, time.time(), owner,
                        processes.identity(owner) if owner else None)
    _state_file(settings).write_text(json.dumps(asdict(state)))
    offset = log_file.stat().st_size
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _state_file(settings).unlink(missing_ok=True)
            raise LabError(
                f"The Kafka broker exited with code {proc.returncode} while starting "
                f"({_last_error(log_file)}).",
                f"read {log_file}; `lab kafka start --port N` picks another port.",
            )
        if port_open(port) and READY_LINE in _tail(log_file, offset):
            return state, True
        time.sleep(0.3)
    _stop_pid(proc.pid)
    _state_file(settings).unlink(missing_ok=True)
    raise LabError(
        f"The Kafka broker did not start within {timeout_s:.0f} s.",
        f"read {log_file}; on a busy machine try again.",
    )


def _format_storage(java: str, classpath: str, home: Path, props: Path) -> str:
    """Format the KRaft log directory once (a new cluster id); later starts reuse it."""
    meta = home / "data" / "meta.properties"
    if meta.is_file():
        for line in meta.read_text().splitlines():
            if line.startswith("cluster.id="):
                return line.split("=", 1)[1].strip()
    cluster_id = new_cluster_id()
    result = subprocess.run(
        [java, "-Xmx128m", *QUICK_JVM, f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
         "-cp", classpath, STORAGE_TOOL, "format", "-t", cluster_id, "-c", str(props)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise LabError(
            f"Kafka could not format its storage in {home / 'data'} "
            f"({detail[-1] if detail else 'exit code ' + str(result.returncode)}).",
            f"remove {home} (a broker's data you no longer need) and run `lab kafka start` again.",
        )
    return cluster_id


def _tail(path: Path, offset: int) -> str:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode("utf-8", "replace")


def _last_error(log_file: Path) -> str:
    lines = [line for line in _tail(log_file, 0).splitlines()
             if "ERROR" in line or "Exception" in line]
    return lines[-1].strip()[:300] if lines else "no error in its log"


def _stop_pid(pid: int, timeout_s: float = 30.0) -> None:
    """SIGTERM (the broker shuts down cleanly), then SIGKILL if it is still there."""
    processes.stop(pid, lambda: _is_our_broker(pid), timeout_s=timeout_s)


def stop(settings: Settings | None = None) -> BrokerState | None:
    """Stop this LAB_HOME's broker; returns what was stopped (None: none was running)."""
    settings = settings or get_settings()
    state = status(settings)
    if state is not None:
        _stop_pid(state.pid)
    _state_file(settings).unlink(missing_ok=True)
    return state
