"""Settings, profiles and jar resolution."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from lab_env.config import PROFILES, Settings, load_settings
from lab_env.errors import ConfigError, LabError
from lab_env.lake import jars
from lab_env.lake.catalog import catalog_properties
from lab_env.lake.spark import spark_conf

REPO = Path(__file__).resolve().parents[1]


def jar_names(conf: dict[str, str]) -> list[str]:
    """The file names of the jars a Spark conf loads, in order, whichever way it loads them."""
    paths = conf.get("spark.driver.extraClassPath", "").split(os.pathsep)
    paths += conf.get("spark.jars", "").split(",")
    return [Path(path).name for path in paths if path]


def test_local_profile_keeps_everything_under_lab_home(fresh_settings: Settings) -> None:
    home = fresh_settings.lab_home
    assert fresh_settings.profile == "local"
    assert fresh_settings.catalog_db.parent == home
    assert fresh_settings.warehouse_uri == (home / "warehouse").as_uri()
    assert Path(fresh_settings.raw_root).parent == home
    assert fresh_settings.runs_dir.parent == home
    assert fresh_settings.spark_master == "local[2]"


def test_two_homes_never_share_a_path(tmp_path: Path) -> None:
    one = load_settings(home=tmp_path / "a")
    two = load_settings(home=tmp_path / "b")
    for attr in ("warehouse_uri", "catalog_db", "raw_root", "runs_dir"):
        assert str(getattr(one, attr)) != str(getattr(two, attr)), attr


def test_env_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LAB_HOME", raising=False)
    (tmp_path / ".env").write_text("LAB_HOME=/tmp/from-dotenv\nLAB_SPARK_UI=true\n")
    settings = load_settings()
    assert settings.home == Path("/tmp/from-dotenv")
    assert settings.spark_ui is True


def test_unknown_profile_is_one_actionable_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_PROFILE", "laptop")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message
    assert "LAB_PROFILE" in message and "local, compose" in message


def test_compose_profile_points_every_engine_at_the_services(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LAB_PROFILE", "compose")
    monkeypatch.setenv("LAB_S3_ENDPOINT", "http://minio:9000")
    monkeypatch.setenv("LAB_REST_URI", "http://rest:8181")
    settings = load_settings()
    conf = spark_conf(settings)
    assert conf["spark.sql.catalog.lake.type"] == "rest"
    assert conf["spark.sql.catalog.lake.uri"] == "http://rest:8181"
    assert conf["spark.sql.catalog.lake.s3.endpoint"] == "http://minio:9000"
    assert conf["spark.sql.catalog.lake.warehouse"] == "s3://lakehouse/warehouse"
    props = catalog_properties(settings)
    assert props["uri"] == "http://rest:8181" and props["s3.endpoint"] == "http://minio:9000"
    assert settings.spark_master == "local[2]"  # the containers set spark-master themselves
    # remove_orphan_files lists s3:// locations through Hadoop: S3A serves that scheme too.
    assert conf["spark.hadoop.fs.s3.impl"] == "org.apache.hadoop.fs.s3a.S3AFileSystem"
    # S3FileIO needs the AWS SDK v2 bundle, S3A needs hadoop-aws: both go to Spark.
    on_classpath = set(jar_names(conf))
    assert {jars.ICEBERG_JAR_NAME, jars.pin("iceberg-aws-bundle").file_name} <= on_classpath
    assert jars.pin("hadoop-aws").file_name in on_classpath
    assert jars.pin(jars.SQLITE_JDBC).file_name not in on_classpath


def test_the_driver_jvm_uses_the_quick_jit_and_the_serial_collector_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "lakehouse"))
    options = spark_conf(load_settings())["spark.driver.extraJavaOptions"].split()
    assert {"-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"} <= set(options)
    # the lab's own options stay whatever the setting says
    assert any(o.startswith("-Dlog4j2.configurationFile=") for o in options)
    monkeypatch.setenv("LAB_SPARK_DRIVER_JAVA_OPTIONS", "")
    options = spark_conf(load_settings())["spark.driver.extraJavaOptions"].split()
    assert not any(o.startswith(("-XX:TieredStopAtLevel", "-XX:+UseSerialGC")) for o in options)
    assert any(o.startswith("-Dlog4j2.configurationFile=") for o in options)
    monkeypatch.setenv("LAB_PROFILE", "compose")
    monkeypatch.setenv("LAB_SPARK_DRIVER_JAVA_OPTIONS", "-XX:TieredStopAtLevel=1")
    options = spark_conf(load_settings())["spark.driver.extraJavaOptions"].split()
    assert options[1:] == ["-XX:TieredStopAtLevel=1"]
    # the native libraries a driver unpacks go to its scratch folder on compose too, not /tmp
    assert options[0].startswith("-Djava.io.tmpdir=")


def test_secrets_stay_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_COINCAP_API_KEY", "sk-test-PLANTED-123")
    settings = load_settings()
    assert "sk-test-PLANTED-123" not in repr(settings)
    assert "sk-test-PLANTED-123" not in str(settings.model_dump())


def test_iceberg_jar_comes_from_the_jars_folder(fresh_settings: Settings) -> None:
    choice = jars.iceberg_jar(fresh_settings)
    assert choice.found and choice.path is not None, "run make jars"
    assert choice.path == fresh_settings.jars_dir.resolve() / jars.ICEBERG_JAR_NAME
    assert choice.source == jars.FROM_MAVEN


def test_jar_override_and_missing_jar(tmp_path: Path) -> None:
    jar = tmp_path / "custom-iceberg.jar"
    jar.write_bytes(b"PK")
    custom = load_settings(iceberg_jar=jar)
    assert jars.iceberg_jar(custom).path == jar
    assert jar.as_posix() in spark_conf(custom)["spark.driver.extraClassPath"].split(os.pathsep)
    missing = load_settings(iceberg_jar=tmp_path / "nope.jar")
    with pytest.raises(LabError) as info:
        spark_conf(missing)
    assert "LAB_ICEBERG_JAR" in str(info.value) and "\n" not in str(info.value)


def test_spark_conf_says_make_jars_when_the_folder_is_empty(tmp_path: Path) -> None:
    with pytest.raises(LabError) as info:
        spark_conf(load_settings(jars_dir=tmp_path))
    assert info.value.fix is not None and "make jars" in info.value.fix
    assert str(tmp_path) in info.value.problem


def test_spark_master_unset_means_local_on_both_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """.env.example says what an unset LAB_SPARK_MASTER means, and that is what config.py does."""
    monkeypatch.delenv("LAB_SPARK_MASTER", raising=False)
    lines = (REPO / ".env.example").read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if re.match(r"#?\s*LAB_SPARK_MASTER=", line))
    start = at
    while start > 0 and lines[start - 1].startswith("#") and "=" not in lines[start - 1]:
        start -= 1
    comment = " ".join(lines[start:at])
    masters = set(re.findall(r"(local\[[^\]]*\]|spark://[\w.:-]+)", comment))
    for profile in PROFILES:
        default = load_settings(profile=profile).spark_master
        assert default in masters, f"{profile}: .env.example does not say {default}: {comment}"
    # The one spark:// URL it may name is the containers' own, which they set themselves.
    assert masters - {"local[2]"} <= {"spark://spark-master:7077"}, comment


def test_env_example_values_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unchanged copy of .env.example changes nothing (as its header says)."""
    for name in list(os.environ):
        if name.startswith("LAB_"):
            monkeypatch.delenv(name)
    set_lines = re.findall(
        r"^(LAB_[A-Z0-9_]+)=(.*)$", (REPO / ".env.example").read_text(), re.MULTILINE
    )
    assert set_lines
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    for name, value in set_lines:
        monkeypatch.setenv(name, value)
    from_example = Settings(_env_file=None)  # type: ignore[call-arg]
    assert from_example.model_dump() == defaults.model_dump()


def test_local_spark_conf_uses_the_sqlite_catalog(fresh_settings: Settings) -> None:
    conf = spark_conf(fresh_settings)
    assert conf["spark.sql.catalog.lake.uri"].startswith(f"jdbc:sqlite:{fresh_settings.catalog_db}")
    assert conf["spark.sql.defaultCatalog"] == "lake"
    assert "IcebergSparkSessionExtensions" in conf["spark.sql.extensions"]
    assert conf["spark.ui.enabled"] == "false"
    assert int(conf["spark.sql.shuffle.partitions"]) <= 8
    on_classpath = jar_names(conf)
    assert on_classpath[:2] == [jars.ICEBERG_JAR_NAME, jars.pin(jars.SQLITE_JDBC).file_name]
    # Spark's Kafka source (M9), never the Kafka broker's own jars.
    assert jars.pin("spark-sql-kafka-0-10_2.12").file_name in on_classpath
    assert not {"kafka_2.13-4.1.1.jar", "kafka-clients-4.1.1.jar"} & set(on_classpath)
    # The driver's native libraries are inside its jar: no library path to set.
    assert "spark.driver.extraLibraryPath" not in conf
    assert "spark.jars.packages" not in conf


def test_local_spark_puts_the_jars_on_its_class_path_and_a_cluster_gets_them_shipped(
    fresh_settings: Settings,
) -> None:
    """`spark.jars` copies every jar into a temp folder per start (61 MB, never deleted when
    the JVM is killed with its kernel): a local master loads them where they are instead."""
    local = spark_conf(fresh_settings)
    assert "spark.jars" not in local
    assert jars.ICEBERG_JAR_NAME in jar_names(local)
    cluster = spark_conf(fresh_settings.model_copy(update={"spark_master": "spark://127.0.0.1:7077"}))
    assert "spark.driver.extraClassPath" not in cluster
    assert jar_names(cluster) == jar_names(local)


def test_the_class_archive_is_trained_on_the_class_path_its_name_is_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A jar of the user's own (LAB_ICEBERG_JAR) is in the archive's name, so the throwaway
    session that writes the archive must load that jar too: otherwise every later JVM finds an
    archive made for another class path and quietly ignores it."""
    from lab_env.lake import spark_archive

    own_jar = tmp_path / "my-iceberg-runtime.jar"
    own_jar.write_bytes(b"PK a jar of my own")
    monkeypatch.setenv("LAB_ICEBERG_JAR", str(own_jar))
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "my-lakehouse"))
    settings = load_settings()
    archive = tmp_path / "archive.jsa"
    env = spark_archive.training_env(settings, archive, tmp_path / "training")

    for name in [name for name in os.environ if name.startswith("LAB_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    trained = load_settings()
    assert trained.lab_home == tmp_path / "training" / "lakehouse"  # not the learner's lakehouse
    assert jars.spark_jars(trained) == jars.spark_jars(settings)
    assert str(own_jar) in jars.spark_jars(trained)
    assert trained.spark_driver_java_options.split() == [
        *settings.spark_driver_java_options.split(),
        f"-XX:ArchiveClassesAtExit={archive}", *spark_archive.QUIET.split(),
    ]
    assert not trained.spark_class_archive


def test_the_compose_profile_builds_no_class_archive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make setup` runs `lab spark-archive` on either profile; compose's Spark is its own."""
    from lab_env.cli import main
    from tests.pipeline_runs import lab_environment

    with lab_environment(LAB_PROFILE="compose", LAB_JARS_DIR=str(tmp_path)):
        assert main(["spark-archive"]) == 0
    assert "not used by the compose profile" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_local_spark_maps_the_class_archive_only_when_it_is_there_and_wanted(
    tmp_path: Path,
) -> None:
    """The archive's name is a fingerprint of Java, the class path and the driver options:
    another jar or option means another name, and a JVM without its archive starts as usual."""
    from lab_env.lake import spark_archive

    folder = tmp_path / "jars"
    folder.mkdir()
    for pin in jars.pins():
        if jars.KAFKA_BROKER not in pin.profiles:
            (folder / pin.file_name).symlink_to(REPO / "jars" / "lib" / pin.file_name)
    settings = load_settings(home=tmp_path / "lakehouse", jars_dir=folder)
    class_path = jars.spark_jars(settings)
    path = spark_archive.archive_path(settings, class_path)
    assert path is not None and path.parent == folder.resolve()

    def options(s: Settings) -> str:
        return spark_conf(s)["spark.driver.extraJavaOptions"]

    assert "SharedArchiveFile" not in options(settings)  # not built yet
    path.write_bytes(b"an archive")
    assert f"-XX:SharedArchiveFile={path}" in options(settings).split()
    switched_off = settings.model_copy(update={"spark_class_archive": False})
    assert "SharedArchiveFile" not in options(switched_off)
    other_options = settings.model_copy(update={"spark_driver_java_options": "-Xss4m"})
    assert spark_archive.archive_path(other_options, class_path) != path
    assert "SharedArchiveFile" not in options(other_options)
    (folder / jars.pin(jars.SQLITE_JDBC).file_name).unlink()
    (folder / jars.pin(jars.SQLITE_JDBC).file_name).write_bytes(b"PK another build")
    assert spark_archive.archive_path(settings, jars.spark_jars(settings)) != path
    assert "SharedArchiveFile" not in options(settings)
