"""The pinned jars: the lock file, `make jars` (jars/fetch.sh), and how lab_env finds them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from lab_env.config import PROFILES, Settings, load_settings
from lab_env.lake import jars
from lab_env.lake.spark import spark_conf
from lab_env.machine.doctor import check_s3_jars
from lab_env.paths import REPO_JARS_DIR
from tests.pipeline_runs import python

REPO = Path(__file__).resolve().parents[1]
FETCH = REPO / "jars" / "fetch.sh"


@pytest.fixture(scope="module")
def no_maven(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH with the tools fetch.sh uses but no Maven: it can check the jars, never download."""
    bin_dir = tmp_path_factory.mktemp("bin")
    for tool in ("bash", "cut", "dirname", "grep", "mkdir", "mktemp", "rm", "sed", "sha256sum"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def fetch(path: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run jars/fetch.sh with ``path`` as PATH."""
    return subprocess.run(
        ["bash", str(FETCH), *args],
        capture_output=True,
        text=True,
        env={"PATH": path},
        timeout=120,
        check=False,
    )


def test_the_lock_pins_each_jar_once_with_a_sha256() -> None:
    pins = jars.pins()
    # The Kafka broker's jars are a set of their own, in a folder of their own (its
    # kafka-clients is 4.x, Spark's 3.4.1): each set pins an artifact once.
    broker = [p for p in pins if p.profiles == {jars.KAFKA_BROKER}]
    spark = [p for p in pins if jars.KAFKA_BROKER not in p.profiles]
    assert len(broker) + len(spark) == len(pins)
    for group in (broker, spark):
        assert len({p.artifact for p in group}) == len(group)
    for p in pins:
        assert re.fullmatch(r"[0-9a-f]{64}", p.sha256), p
        assert p.profiles and p.profiles <= {*PROFILES, jars.STACK, jars.KAFKA_BROKER}, p
    local = {p.artifact for p in pins if "local" in p.profiles}
    compose = {p.artifact for p in pins if "compose" in p.profiles}
    kafka_source = {"spark-sql-kafka-0-10_2.12", "spark-token-provider-kafka-0-10_2.12",
                    "kafka-clients", "commons-pool2"}
    assert local == {jars.ICEBERG_RUNTIME, jars.SQLITE_JDBC} | kafka_source
    s3 = {"iceberg-aws-bundle", "hadoop-aws", "aws-java-sdk-bundle"}
    assert compose == {jars.ICEBERG_RUNTIME} | s3 | kafka_source
    # `lab stack`'s REST catalog: its own block, on no profile's Spark classpath.
    assert {p.artifact for p in pins if jars.STACK in p.profiles} == {jars.REST_FIXTURE}
    assert all(p.profiles == {jars.STACK} for p in pins if p.artifact == jars.REST_FIXTURE)
    assert {"kafka_2.13", "kafka-server", "kafka-raft"} <= {p.artifact for p in broker}
    assert jars.pin("kafka-clients").version == "3.4.1"  # what spark-sql-kafka 3.5.7 was built on
    assert jars.pin(jars.ICEBERG_RUNTIME).file_name == jars.ICEBERG_JAR_NAME


def test_make_jars_and_lab_env_use_one_git_ignored_folder() -> None:
    assert Settings.model_fields["jars_dir"].default == REPO_JARS_DIR == REPO / "jars" / "lib"
    assert 'dest="${1:-$here/lib}"' in FETCH.read_text()
    assert "jars/lib/" in (REPO / ".gitignore").read_text().splitlines()
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^setup: .*\bjars\b", makefile, re.MULTILINE)
    assert re.search(r"^jars: .*\n\tjars/fetch\.sh$", makefile, re.MULTILINE)


def test_a_second_fetch_only_checks_the_sums(no_maven: str) -> None:
    """With every jar in place, fetch.sh needs no Maven and no network: it checks and stops."""
    result = fetch(no_maven, str(REPO_JARS_DIR))
    assert result.returncode == 0, result.stdout + result.stderr + "\nrun make jars first"
    assert f"all {len(jars.pins())} pinned jars are in" in result.stdout
    assert "nothing to fetch" in result.stdout and "fetching" not in result.stdout


def test_a_damaged_jar_is_not_taken_for_the_pinned_one(tmp_path: Path, no_maven: str) -> None:
    sqlite = jars.pin(jars.SQLITE_JDBC)
    local = [p for p in jars.pins() if "local" in p.profiles]
    for other in local:
        if other != sqlite:
            (tmp_path / other.file_name).symlink_to(REPO_JARS_DIR / other.file_name)
    (tmp_path / sqlite.file_name).write_bytes(b"PK not the pinned jar")
    result = fetch(no_maven, str(tmp_path), "local")
    # It would fetch it again; without Maven it says in one line what to install.
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "install -y maven" in result.stderr
    (tmp_path / sqlite.file_name).unlink()
    (tmp_path / sqlite.file_name).symlink_to(REPO_JARS_DIR / sqlite.file_name)
    assert f"all {len(local)} pinned jars" in fetch(no_maven, str(tmp_path), "local").stdout


def test_jars_on_sparks_own_classpath_are_not_shipped_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lab image puts the compose jars in pyspark/jars: spark.jars stays empty there."""
    for p in jars.pins():
        if jars.KAFKA_BROKER not in p.profiles:
            (tmp_path / p.file_name).symlink_to(REPO_JARS_DIR / p.file_name)
    monkeypatch.setattr(jars, "spark_jars_folder", lambda: tmp_path)
    settings = load_settings(profile="compose", jars_dir=tmp_path / "not-there")
    assert "spark.jars" not in spark_conf(settings)
    check = check_s3_jars(settings)
    assert check.ok and check.source == jars.ON_SPARK_CLASSPATH, check


COMPOSE_JVM = textwrap.dedent(
    """
    from lab_env.config import get_settings
    from lab_env.lake.spark import get_spark

    spark = get_spark()
    jvm = spark.sparkContext._jvm
    loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
    for name in (
        "org.apache.iceberg.aws.s3.S3FileIO",
        "software.amazon.awssdk.services.s3.model.S3Exception",
    ):
        print("loaded", jvm.java.lang.Class.forName(name, True, loader).getName())
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    print("s3 scheme", jvm.org.apache.hadoop.fs.FileSystem.getFileSystemClass("s3", conf).getName())
    import os
    print("SPARK_LOCAL_IP", os.environ.get("SPARK_LOCAL_IP"))
    spark.stop()
    """
)


@pytest.mark.spark
def test_compose_profile_spark_has_the_s3_classes(tmp_path: Path) -> None:
    """Host Spark on LAB_PROFILE=compose loads S3FileIO's SDK and serves s3:// through S3A.

    No S3 server or REST catalog is contacted: these are the classes whose absence made
    `CREATE NAMESPACE` fail with NoClassDefFoundError and `remove_orphan_files` with
    "No FileSystem for scheme s3".
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "SPARK_LOCAL_IP"))}
    env |= {"LAB_PROFILE": "compose", "LAB_HOME": str(tmp_path), "LAB_SPARK_MASTER": "local[1]"}
    result = python("-c", COMPOSE_JVM, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "loaded software.amazon.awssdk.services.s3.model.S3Exception" in result.stdout
    assert "s3 scheme org.apache.hadoop.fs.s3a.S3AFileSystem" in result.stdout
    # Executors on spark-worker must reach a driver in the jupyter or airflow container: the
    # compose profile never pins Spark to loopback (the local profile does).
    assert "SPARK_LOCAL_IP None" in result.stdout


def test_fetch_rejects_an_unknown_profile(no_maven: str) -> None:
    result = fetch(no_maven, "/tmp/unused-jars-dir", "cloud")
    assert result.returncode == 2 and "unknown profile" in result.stderr
