"""The Compose stack, checked statically: it parses, is pinned, and agrees with lab_env."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from lab_env.config import Settings
from lab_env.lake import jars
from lab_env.lake.catalog import catalog_properties
from lab_env.lake.spark import spark_conf

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
SPARK_DEFAULTS = REPO / "docker" / "spark-defaults.conf"
DOCKERFILE = REPO / "docker" / "Dockerfile"
LAB_SERVICES = ("spark-master", "spark-worker", "jupyter", "airflow", "dashboard")

# ${VAR}, ${VAR:-default}, ${VAR-default}, and $$ (a literal $), as Compose interpolates them.
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Resolve Compose variables in every string of ``value`` against ``env``."""
    if isinstance(value, str):

        def one(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, operator, default = match.groups()
            if name in env and (env[name] or operator != ":-"):
                return env[name]
            return default or ""

        return _VARIABLE.sub(one, value)
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    return value


def load_compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml, anchors merged and variables resolved (to their defaults by default)."""
    return interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), env or {})


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, from either of Compose's two spellings."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def settings_fields() -> set[str]:
    """The LAB_* names lab_env reads, derived from the Settings model itself."""
    return {f"LAB_{name.upper()}" for name in Settings.model_fields}


def env_example_names() -> set[str]:
    """Every variable .env.example sets or shows (commented out), e.g. ``# LAB_SPARK_MASTER=``."""
    pattern = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)
    return set(pattern.findall(ENV_EXAMPLE.read_text()))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture
def container_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Settings as lab code inside the jupyter container builds them (no .env, no host LAB_*)."""
    for name in list(os.environ):
        if name.startswith("LAB_"):
            monkeypatch.delenv(name)
    for name, value in environment(compose["services"]["jupyter"]).items():
        monkeypatch.setenv(name, value)
    yield Settings(_env_file=None)  # type: ignore[call-arg]


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("no docker-compose binary (apt-get install docker-compose) to validate with")
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    result = subprocess.run(
        [binary, "--env-file", str(empty_env), "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "")},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_image_is_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image")
        assert image, f"{name}: no image name (a built service needs one with a tag)"
        reference, _, digest = image.partition("@")
        repository, _, tag = reference.rpartition(":")
        if "/" in tag or not repository:  # the colon was a registry port, not a tag
            tag = ""
        assert digest or (tag and tag != "latest"), f"{name}: image {image!r} is not pinned"


def test_built_services_share_one_lab_image(compose: dict[str, Any]) -> None:
    built = {name: s for name, s in compose["services"].items() if "build" in s}
    assert set(built) == set(LAB_SERVICES)
    assert len({s["image"] for s in built.values()}) == 1
    for service in built.values():
        assert (REPO / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


def test_healthy_dependencies_have_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    waited_on = 0
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for dependency, rule in depends.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if rule["condition"] == "service_healthy":
                waited_on += 1
                check = services[dependency].get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), (
                    f"{name} waits for {dependency} to be healthy, which has no healthcheck"
                )
            elif rule["condition"] == "service_completed_successfully":
                assert services[dependency].get("restart", "no") == "no", dependency
    assert waited_on > 0


def test_lab_drivers_wait_for_a_registered_worker(compose: dict[str, Any]) -> None:
    services = compose["services"]
    worker = services["spark-worker"]
    args = worker["command"]
    check = " ".join(worker["healthcheck"]["test"])
    # Its own web UI, asked whether the master has registered it (masterurl is empty until then).
    assert f"localhost:{args[args.index('--webui-port') + 1]}/json/" in check
    assert '"masterurl" : "spark://' in check
    for name in ("jupyter", "airflow"):
        depends = services[name]["depends_on"]
        assert depends.get("spark-worker") == {"condition": "service_healthy"}, name


def test_published_ports_are_bound_to_localhost(compose: dict[str, Any]) -> None:
    published = 0
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name}: port {port!r} is open beyond this machine"
            published += 1
    assert published >= 5


def _mount_target(service: Mapping[str, Any], volume: str) -> str | None:
    for mount in service.get("volumes", []):
        source, target = (
            (mount.get("source"), mount.get("target"))
            if isinstance(mount, dict)
            else mount.split(":")[:2]
        )
        if source == volume:
            return str(target)
    return None


def test_state_lives_on_named_volumes(compose: dict[str, Any]) -> None:
    named = set(compose.get("volumes") or {})
    services = compose["services"]

    minio_data = next(v for v in named if _mount_target(services["minio"], v) == "/data")
    assert minio_data

    catalog_uri = environment(services["rest"])["CATALOG_URI"]
    db_file = catalog_uri.removeprefix("jdbc:sqlite:").split("?")[0]
    assert db_file.startswith("/"), f"the REST catalog DB must be a file, not {catalog_uri!r}"
    assert any(
        (target := _mount_target(services["rest"], v)) and db_file.startswith(target + "/")
        for v in named
    ), f"{db_file} is not on a named volume: tables would vanish on `docker compose down`"

    airflow_home = environment(services["airflow"])["AIRFLOW_HOME"]
    assert any(_mount_target(services["airflow"], v) == airflow_home for v in named)


def test_container_lab_variables_are_settings_fields(compose: dict[str, Any]) -> None:
    fields = settings_fields()
    for name in LAB_SERVICES:
        env = environment(compose["services"][name])
        assert env.get("LAB_PROFILE") == "compose", name
        unknown = {key for key in env if key.startswith("LAB_")} - fields
        assert not unknown, f"{name} sets {unknown}, which lab_env.config.Settings does not read"
        for required in ("LAB_S3_ENDPOINT", "LAB_REST_URI", "LAB_SPARK_MASTER", "LAB_HOME"):
            assert required in env, f"{name} does not set {required}"


def test_env_example_lists_every_setting_and_compose_variable() -> None:
    listed = env_example_names()
    missing = settings_fields() - listed
    assert not missing, f".env.example does not mention {sorted(missing)}"
    used = {name for name, _, _ in _VARIABLE.findall(COMPOSE_FILE.read_text()) if name}
    assert "MINIO_ROOT_USER" in used
    assert not used - listed, f".env.example does not mention {sorted(used - listed)}"


def test_one_set_of_credentials_reaches_every_service() -> None:
    compose = load_compose({"MINIO_ROOT_USER": "alice", "MINIO_ROOT_PASSWORD": "s3cret-pw"})
    services = compose["services"]
    assert environment(services["minio"])["MINIO_ROOT_USER"] == "alice"
    rest = environment(services["rest"])
    assert (rest["CATALOG_S3_ACCESS__KEY__ID"], rest["CATALOG_S3_SECRET__ACCESS__KEY"]) == (
        "alice",
        "s3cret-pw",
    )
    for name in LAB_SERVICES:
        env = environment(services[name])
        assert (env["LAB_S3_ACCESS_KEY"], env["LAB_S3_SECRET_KEY"]) == ("alice", "s3cret-pw")


def test_container_settings_point_at_the_compose_services(
    compose: dict[str, Any], container_settings: Settings
) -> None:
    services = compose["services"]
    settings = container_settings
    assert settings.profile == "compose"

    props = catalog_properties(settings)
    conf = spark_conf(settings)
    cat = f"spark.sql.catalog.{settings.catalog_name}"
    minio = urlparse(props["s3.endpoint"])
    rest = urlparse(props["uri"])
    master = urlparse(settings.spark_master)
    assert (minio.hostname, minio.port) == ("minio", 9000)
    assert (rest.hostname, rest.port) == ("rest", 8181)
    assert (master.hostname, master.port) == ("spark-master", 7077)
    for host in (minio.hostname, rest.hostname, master.hostname):
        assert host in services
    master_args = services["spark-master"]["command"]
    assert master_args[master_args.index("--port") + 1] == str(master.port)

    assert props["type"] == conf[f"{cat}.type"] == "rest"
    assert conf[f"{cat}.uri"] == props["uri"]
    assert conf[f"{cat}.s3.endpoint"] == props["s3.endpoint"]
    assert conf[f"{cat}.io-impl"] == environment(services["rest"])["CATALOG_IO__IMPL"]
    assert conf[f"{cat}.s3.access-key-id"] == environment(services["minio"])["MINIO_ROOT_USER"]

    rest_env = environment(services["rest"])
    assert settings.warehouse_uri == rest_env["CATALOG_WAREHOUSE"] == props["warehouse"]
    assert rest_env["CATALOG_S3_ENDPOINT"] == props["s3.endpoint"]
    bucket_init = environment(services["buckets"])
    assert bucket_init["LAB_BUCKET"] == settings.bucket


def test_spark_defaults_match_lab_env(
    compose: dict[str, Any], container_settings: Settings
) -> None:
    defaults = dict(
        line.split(None, 1)
        for line in SPARK_DEFAULTS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    conf = spark_conf(container_settings)
    cat = f"spark.sql.catalog.{container_settings.catalog_name}"
    required = {f"{cat}.type", f"{cat}.uri", f"{cat}.io-impl", f"{cat}.s3.endpoint"}
    # remove_orphan_files lists s3:// locations through Hadoop's S3A, in shells and in lab code.
    required.add("spark.hadoop.fs.s3.impl")
    assert required <= set(defaults) and required <= set(conf)
    shared = set(defaults) & set(conf)
    mismatched = {
        key: (defaults[key].strip(), conf[key])
        for key in shared
        if defaults[key].strip() != conf[key]
    }
    assert not mismatched, f"spark-defaults.conf disagrees with lab_env.lake.spark: {mismatched}"
    assert defaults["spark.master"].strip() == container_settings.spark_master
    # The image puts the jars on Spark's own classpath (see the next test).
    assert "spark.jars" not in defaults and "spark.jars.packages" not in defaults


def test_image_and_host_use_the_same_pinned_jars(compose: dict[str, Any]) -> None:
    """The image fetches the lock's compose set with `make jars`'s own script; no second pin."""
    dockerfile = DOCKERFILE.read_text()
    assert "COPY jars/fetch.sh jars/jars.lock" in dockerfile
    fetched_to = re.search(r"^RUN \S*jars/fetch\.sh (\S+) compose$", dockerfile, re.MULTILINE)
    assert fetched_to, "the image does not fetch the compose jars with jars/fetch.sh"
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile, re.MULTILINE))
    assert f"COPY --from=jars {fetched_to[1]}/ $JARS_DIR/" in dockerfile
    assert 'ln -s "$JARS_DIR"/*.jar "$spark_home/jars/"' in dockerfile
    assert set(args) == {"JARS_DIR"}, f"versions pinned outside jars/jars.lock: {args}"
    assert "maven.org" not in dockerfile, "jars come from jars/fetch.sh only"
    for name in LAB_SERVICES:
        env = environment(compose["services"][name])
        assert not {"LAB_ICEBERG_JAR", "LAB_SQLITE_JDBC_JAR", "LAB_JARS_DIR"} & set(env), name


def test_one_iceberg_and_hadoop_version_across_image_catalog_and_lab_env(
    compose: dict[str, Any],
) -> None:
    assert jars.pin(jars.ICEBERG_RUNTIME).version == jars.ICEBERG_VERSION
    assert jars.pin("iceberg-aws-bundle").version == jars.ICEBERG_VERSION
    rest_image = compose["services"]["rest"]["image"]
    assert rest_image.rpartition(":")[2] == jars.ICEBERG_VERSION, rest_image
    # hadoop-aws must be the Hadoop that pyspark ships.
    spark_jars = jars.spark_jars_folder()
    assert spark_jars is not None
    (hadoop,) = spark_jars.glob("hadoop-client-api-*.jar")
    assert jars.pin("hadoop-aws").version == hadoop.stem.removeprefix("hadoop-client-api-")


def test_dashboard_serves_lab_dashboard_on_localhost_with_a_healthcheck(
    compose: dict[str, Any],
) -> None:
    service = compose["services"]["dashboard"]
    command = service["command"]
    assert command[:2] == ["lab", "dashboard"]
    port = command[command.index("--port") + 1]
    # In the container every interface (the port mapping reaches it there); on the host 127.0.0.1.
    assert command[command.index("--address") + 1] == "0.0.0.0"
    (published,) = service["ports"]
    host_ip, host_port, container_port = str(published).split(":")
    assert (host_ip, container_port) == ("127.0.0.1", port) and host_port.isdigit()
    check = " ".join(service["healthcheck"]["test"])
    assert f"localhost:{port}/_stcore/health" in check
    assert service["depends_on"]["rest"] == {"condition": "service_healthy"}
    env = environment(service)
    assert env["LAB_PROFILE"] == "compose" and env["LAB_REST_URI"] == "http://rest:8181"
    assert service["restart"] == "unless-stopped"  # it waits for gold by retrying


def test_kafka_service_is_the_broker_lab_kafka_runs(compose: dict[str, Any]) -> None:
    """One KRaft node of the same Kafka version as the host broker, healthy before it is used,
    reachable by the lab's containers at the address they are given and on 127.0.0.1 outside."""
    import base64

    kafka = compose["services"]["kafka"]
    (broker_pin,) = [p for p in jars.pins() if p.artifact == "kafka_2.13"]
    assert kafka["image"] == f"apache/kafka:{broker_pin.version}"
    env = environment(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16
    for single in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
                   "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert env[single] == "1", f"{single}: one broker cannot hold more replicas"
    advertised = dict(
        item.split("://", 1) for item in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    listeners = dict(item.split("://", 1) for item in env["KAFKA_LISTENERS"].split(","))
    for name in LAB_SERVICES:
        assert environment(compose["services"][name])["LAB_KAFKA_BOOTSTRAP"] == (
            advertised["INTERNAL"]
        ), name
    # Outside: localhost:<published port>, which Docker forwards to the EXTERNAL listener.
    host, _, port = advertised["EXTERNAL"].rpartition(":")
    inside = listeners["EXTERNAL"].rpartition(":")[2]
    assert host == "localhost"
    assert f"127.0.0.1:{port}:{inside}" in kafka["ports"]
    check = " ".join(kafka["healthcheck"]["test"])
    assert "kafka-broker-api-versions" in check and advertised["INTERNAL"] in check
