"""Settings, profiles and jar resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab_env import jars
from lab_env.catalog import catalog_properties
from lab_env.config import Settings, load_settings
from lab_env.errors import ConfigError
from lab_env.spark import spark_conf


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


def test_secrets_stay_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_COINCAP_API_KEY", "sk-test-PLANTED-123")
    settings = load_settings()
    assert "sk-test-PLANTED-123" not in repr(settings)
    assert "sk-test-PLANTED-123" not in str(settings.model_dump())


def test_iceberg_jar_comes_from_the_pinned_package(fresh_settings: Settings) -> None:
    choice = jars.iceberg_jar(fresh_settings)
    assert choice.found and choice.path is not None
    assert choice.path.name == "iceberg-spark-runtime-3.5_2.12-1.9.2.jar"
    assert "snowpark_connect_deps_iceberg" in str(choice.path)


def test_iceberg_jar_override_and_maven_fallback(tmp_path: Path) -> None:
    jar = tmp_path / "custom-iceberg.jar"
    jar.write_bytes(b"PK")
    assert jars.iceberg_jar(load_settings(iceberg_jar=jar)).path == jar
    missing = load_settings(iceberg_jar=tmp_path / "nope.jar")
    conf = spark_conf(missing)
    assert jars.ICEBERG_MAVEN in conf["spark.jars.packages"]
    assert "nope.jar" not in conf.get("spark.jars", "")


def test_local_spark_conf_uses_the_sqlite_catalog(fresh_settings: Settings) -> None:
    conf = spark_conf(fresh_settings)
    assert conf["spark.sql.catalog.lake.uri"].startswith(f"jdbc:sqlite:{fresh_settings.catalog_db}")
    assert conf["spark.sql.defaultCatalog"] == "lake"
    assert "IcebergSparkSessionExtensions" in conf["spark.sql.extensions"]
    assert conf["spark.ui.enabled"] == "false"
    assert int(conf["spark.sql.shuffle.partitions"]) <= 8
    jdbc = load_settings(sqlite_jdbc_jar=Path("/nonexistent/sqlite.jar"))
    assert jars.SQLITE_JDBC_MAVEN in spark_conf(jdbc)["spark.jars.packages"]
