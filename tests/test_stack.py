"""The native stack (`lab stack`) and the whole pipeline on the compose profile against it.

The module starts one stack in a LAB_HOME of its own (SeaweedFS, the Iceberg REST catalog
fixture, a Spark standalone master and worker, all on 127.0.0.1), stops it by pid at the end and
checks that no process of it is left. The pipeline (bronze, silver, gold, quality over two days,
then `lab maintain`) runs there on the compose profile and, in another LAB_HOME, on the local
profile: every silver and gold table must hold the same rows.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pipeline_runs import assert_same_tables, lab, lab_env_vars, tables

from lab_env.config import load_settings, stack_env_file
from lab_env.errors import LabError
from lab_env.machine import stack as native

pytestmark = [pytest.mark.compose, pytest.mark.spark]

REPO = Path(__file__).resolve().parents[1]
DAYS = ("2025-03-30", "2025-03-31")
MAINTAINED = ("silver.asset_prices", "gold.fct_asset_daily")


def lab_process(home: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`lab` started in the background as pipeline_runs.lab runs it, its output in ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "lab_env.cli", *args], env=lab_env_vars(home), cwd=REPO,
            stdout=out, stderr=subprocess.STDOUT,
        )


def output(result: object) -> str:
    return f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[native.Stack]:
    """One running stack for the module; `lab stack down` stops it, and nothing of it is left."""
    home = tmp_path_factory.mktemp("stack") / "lakehouse"
    result = lab(home, "stack", "up", timeout=300)
    started = native.load(home)
    try:
        assert result.returncode == 0, output(result)
        assert started is not None
        yield started
    finally:
        stopped = lab(home, "stack", "down", timeout=120)
        if started is not None:
            left = native.processes_left(started)
            if left:  # never leave a JVM behind, even when the assertion below fails
                for service in started.services:
                    native.stop_service(service, timeout=5)
            assert stopped.returncode == 0, output(stopped)
            assert not left, f"`lab stack down` left process groups {left} running"
            assert not stack_env_file(home).exists()


@pytest.fixture(autouse=True)
def stack_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process too, settings come from the stack's LAB_HOME (the session pins local)."""
    monkeypatch.delenv("LAB_PROFILE", raising=False)


def _socket_inodes(pgids: set[int]) -> set[str]:
    """The socket inodes held by every process in these process groups (Linux /proc)."""
    inodes = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            pgrp = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2])
            if pgrp not in pgids:
                continue
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except (OSError, IndexError, ValueError):
            continue
    return inodes


LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


def _listening(inodes: set[str]) -> list[tuple[str, int]]:
    """(address in /proc's hex, port) of each listening TCP socket among ``inodes``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                found.append((address, int(port, 16)))
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc")
def test_every_service_listens_on_loopback_only(stack: native.Stack) -> None:
    listening = _listening(_socket_inodes({s.pid for s in stack.services}))
    recorded = {port for s in stack.services for port in s.ports.values()}
    assert recorded <= {port for _, port in listening}, "a recorded port is not listening"
    beyond = [(a, p) for a, p in listening if a not in LOOPBACK]
    assert not beyond, f"listening beyond 127.0.0.1: {beyond}"


def test_seaweedfs_keeps_its_socket_and_its_log_in_the_stack_folder(stack: native.Stack) -> None:
    """By default SeaweedFS's S3 gateway listens on /tmp/seaweedfs-s3-<port>.sock and it logs
    to weed.* files in the temp folder: both stayed there after the stack stopped."""
    (s3,) = [s for s in stack.services if s.name == "s3"]
    gateway = native.stack_dir(stack.home) / "s3.sock"
    assert gateway.is_socket()
    assert not Path(f"/tmp/seaweedfs-s3-{s3.ports['s3']}.sock").exists()
    assert not list(Path(tempfile.gettempdir()).glob("weed.*"))
    assert "master_grpc_server" in Path(s3.log).read_text()  # its log, where `lab stack` says


def test_status_shows_each_service_healthy(stack: native.Stack) -> None:
    result = lab(stack.home, "stack", "status")
    assert result.returncode == 0, output(result)
    for name in native.SERVICES:
        (line,) = [ln for ln in result.stdout.splitlines() if f" {name} " in ln]
        assert line.split()[0] == "ok", line
    assert "1 worker(s) alive" in result.stdout


def test_a_second_up_keeps_the_running_stack(stack: native.Stack) -> None:
    result = lab(stack.home, "stack", "up")
    assert result.returncode == 0, output(result)
    again = native.load(stack.home)
    assert again is not None
    assert [s.pid for s in again.services] == [s.pid for s in stack.services]


def test_s3_enforces_the_credentials_and_has_the_bucket(stack: native.Stack) -> None:
    import boto3
    from botocore.exceptions import ClientError

    settings = load_settings(home=stack.home)

    def client(key: str, secret: str):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3", endpoint_url=settings.s3_endpoint, aws_access_key_id=key,
            aws_secret_access_key=secret, region_name=settings.s3_region,
        )

    good = client(settings.s3_access_key, settings.s3_secret_key.get_secret_value())
    good.head_bucket(Bucket=settings.bucket)
    for key, secret in ((settings.s3_access_key, "wrong-secret"), ("nobody", "nothing")):
        with pytest.raises(ClientError) as failed:
            client(key, secret).list_objects_v2(Bucket=settings.bucket)
        assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_lab_reads_the_stack_settings(
    stack: native.Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(home=stack.home)
    services = {s.name: s for s in stack.services}
    assert settings.profile == "compose"
    assert settings.s3_endpoint == services["s3"].url
    assert settings.rest_uri == services["rest"].url
    assert settings.spark_master == services["spark-master"].url
    assert stack_env_file(stack.home).stat().st_mode & 0o077 == 0, "stack.env holds a secret"
    # The environment still wins over the file.
    monkeypatch.setenv("LAB_PROFILE", "local")
    assert load_settings(home=stack.home).profile == "local"


def test_the_rest_catalog_runs_the_compose_fixture_configuration(stack: native.Stack) -> None:
    """Same CATALOG_* keys as docker-compose.yml's `rest` service, and its JVM runs the fixture."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    wanted = set(compose["services"]["rest"]["environment"])
    settings = load_settings(home=stack.home)
    ours = native.rest_environment(settings, stack.folder, settings.s3_endpoint, 8181)
    assert wanted <= set(ours), wanted - set(ours)
    (rest,) = [s for s in stack.services if s.name == "rest"]
    with urllib.request.urlopen(rest.health, timeout=5) as response:
        config = json.load(response)
    assert "GET /v1/{prefix}/namespaces" in config["endpoints"]
    cmdline = Path(f"/proc/{rest.pid}/cmdline").read_bytes().split(b"\0")
    assert any(b"iceberg-open-api-1.9.2.jar" in part for part in cmdline)


def test_the_pipeline_on_the_compose_profile_builds_the_local_rows(
    stack: native.Stack, tmp_path: Path
) -> None:
    """bronze -> silver -> gold -> quality over two days, then `lab maintain`: same rows."""
    first, last = DAYS
    local_home = tmp_path / "local"
    # Side by side: the compose run's driver waits on its executor and on S3 much of the time.
    logs = [tmp_path / "compose-run.log", tmp_path / "local-run.log"]
    runs = [lab_process(home, log, "run", "--start", first, "--end", last)
            for home, log in zip((stack.home, local_home), logs, strict=True)]
    for run, log in zip(runs, logs, strict=True):
        run.wait(timeout=1200)
        assert run.returncode == 0, log.read_text()[-4000:]

    settings = load_settings(home=stack.home)
    assert settings.profile == "compose"
    assert load_settings(home=local_home).profile == "local"
    assert_same_tables(local_home, stack.home)

    # The tables live in S3 behind the REST catalog; the work ran on the standalone worker.
    compose_tables = tables(stack.home)
    assert {"silver", "gold"} == {name.split(".")[0] for name in compose_tables}
    master = next(s for s in stack.services if s.name == "spark-master")
    with urllib.request.urlopen(master.health, timeout=5) as response:
        apps = json.load(response)
    ran = [a for a in apps["activeapps"] + apps["completedapps"] if a["name"] == "lakehouse-lab"]
    assert ran, f"no lakehouse-lab application ran on {master.url}"
    import boto3

    s3 = boto3.client(
        "s3", endpoint_url=settings.s3_endpoint, aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key.get_secret_value(),
        region_name=settings.s3_region,
    )
    listed = s3.list_objects_v2(Bucket=settings.bucket, Prefix="warehouse/silver")
    assert any(o["Key"].endswith(".parquet") for o in listed.get("Contents", []))

    # Maintenance on s3:// (compaction, expiry, orphan files listed through S3A) keeps every row.
    # One table per layer: each table costs the same Spark actions, and the suite's time counts.
    maintained = lab(stack.home, "maintain", *MAINTAINED, "--older-than", "0s")
    assert maintained.returncode == 0, output(maintained)
    for name in MAINTAINED:
        assert f"Maintenance of {name}" in maintained.stdout, maintained.stdout[-2000:]
    assert "remove_orphan_files:" in maintained.stdout
    assert_same_tables(local_home, stack.home)


def test_a_port_taken_before_a_service_binds_it_is_one_line_with_a_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ports are free when `up` picks them; one taken before the service binds it is reported."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        free = native.free_ports
        monkeypatch.setattr(native, "free_ports", lambda count: [taken, *free(count - 1)])
        settings = load_settings(home=tmp_path / "lakehouse")
        with pytest.raises(LabError) as failed:
            native.start_s3(settings, tmp_path / "stack")
    assert f"port {taken}" in failed.value.problem
    assert failed.value.fix == "run `lab stack up` again: it picks new free ports."


def test_settings_follow_the_stack_file_while_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "lakehouse"
    assert load_settings(home=home).profile == "local"
    env_file = stack_env_file(home)
    env_file.parent.mkdir(parents=True)
    env_file.write_text("LAB_PROFILE=compose\nLAB_REST_URI=http://127.0.0.1:1234\n")
    assert (load_settings(home=home).profile, load_settings(home=home).rest_uri) == (
        "compose", "http://127.0.0.1:1234",
    )
    monkeypatch.setenv("LAB_REST_URI", "http://127.0.0.1:9")
    assert load_settings(home=home).rest_uri == "http://127.0.0.1:9"  # the environment wins
    env_file.unlink()  # what `lab stack down` does first
    assert load_settings(home=home).profile == "local"
