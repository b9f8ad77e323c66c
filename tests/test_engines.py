"""Spark and pyiceberg see one catalog: each reads what the other wrote."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import pyarrow as pa
import pytest

from lab_env.lake.spark import get_spark

pytestmark = pytest.mark.spark


def test_second_call_returns_the_same_session(spark) -> None:  # type: ignore[no-untyped-def]
    assert get_spark() is spark
    assert spark.conf.get("spark.sql.defaultCatalog") == "lake"


def test_local_spark_maps_the_class_archive_make_setup_built(spark) -> None:  # type: ignore[no-untyped-def]
    from lab_env.config import get_settings
    from lab_env.lake import jars, spark_archive

    settings = get_settings()
    path = spark_archive.archive_path(settings, jars.spark_jars(settings))
    assert path is not None and path.is_file(), "make setup (make spark-archive) builds it"
    jvm = spark.sparkContext._jvm
    runtime = jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    arguments = list(runtime.getInputArguments())
    assert f"-XX:SharedArchiveFile={path}" in arguments
    assert "sharing" in jvm.java.lang.System.getProperty("java.vm.info")  # the JVM mapped it


def test_local_spark_loads_its_jars_without_copying_them(spark) -> None:  # type: ignore[no-untyped-def]
    """The catalog's classes load, and the session's file root holds no copy of a jar."""
    from pathlib import Path

    from pyspark import SparkFiles

    jvm = spark.sparkContext._jvm
    assert jvm.java.lang.Class.forName("org.apache.iceberg.spark.SparkCatalog").getName()
    assert spark.sparkContext._jsc.sc().listJars().size() == 0
    assert not list(Path(SparkFiles.getRootDirectory()).rglob("*.jar"))


def test_the_driver_runs_the_quick_jit_and_the_serial_collector(spark) -> None:  # type: ignore[no-untyped-def]
    jvm = spark.sparkContext._jvm
    management = jvm.java.lang.management.ManagementFactory
    arguments = list(management.getRuntimeMXBean().getInputArguments())
    assert "-XX:TieredStopAtLevel=1" in arguments
    collectors = {bean.getName() for bean in management.getGarbageCollectorMXBeans()}
    assert collectors == {"Copy", "MarkSweepCompact"}  # the serial collector's two generations


def test_a_driver_outside_a_kernel_keeps_its_temp_files_in_pythons_temp_folder(spark) -> None:  # type: ignore[no-untyped-def]
    """No kernel scratch folder here (SPARK_LOCAL_DIRS unset): the JVM's temp folder is the one
    TMPDIR names for every process of the test run, removed at its end (tests/conftest.py)."""
    import tempfile

    jvm = spark.sparkContext._jvm
    assert jvm.java.lang.System.getProperty("java.io.tmpdir") == tempfile.gettempdir()
    assert Path(tempfile.gettempdir()).name.startswith("lab-tests-")


def test_spark_python_workers_run_this_interpreter(spark) -> None:  # type: ignore[no-untyped-def]
    """Rows made in Python and a Python UDF go through Spark's Python workers: they run this
    venv's interpreter, not whatever ``python3`` comes first on PATH."""
    import sys

    from pyspark.sql import functions as F

    @F.udf("string")
    def interpreter(_: int) -> str:
        import sys

        return sys.executable

    rows = spark.createDataFrame([(1,)], "n int").select(interpreter("n").alias("python"))
    assert [row.python for row in rows.collect()] == [sys.executable]


def test_pyiceberg_reads_what_spark_wrote(spark, catalog) -> None:  # type: ignore[no-untyped-def]
    spark.sql("DROP TABLE IF EXISTS silver.engines_from_spark")
    spark.sql(
        "CREATE TABLE silver.engines_from_spark (id STRING, price DECIMAL(38,18), seen TIMESTAMP)"
        " USING iceberg PARTITIONED BY (days(seen))"
    )
    spark.sql(
        "INSERT INTO silver.engines_from_spark VALUES"
        " ('bitcoin', 97000.123456789012345678, TIMESTAMP '2025-01-01 10:00:00'),"
        " ('ethereum', 3400.5, TIMESTAMP '2025-01-02 11:00:00')"
    )
    table = catalog.load_table("silver.engines_from_spark").scan().to_arrow().sort_by("id")
    assert table.column("id").to_pylist() == ["bitcoin", "ethereum"]
    assert table.column("price")[0].as_py() == decimal.Decimal("97000.123456789012345678")
    duck = catalog.load_table("silver.engines_from_spark").scan().to_duckdb("t")
    assert duck.sql("SELECT count(*) FROM t").fetchall() == [(2,)]


def test_spark_reads_what_pyiceberg_wrote(spark, catalog) -> None:  # type: ignore[no-untyped-def]
    name = "bronze.engines_from_pyiceberg"
    if catalog.table_exists(name):
        catalog.drop_table(name)
    data = pa.table(
        {
            "id": pa.array(["solana", "tether"]),
            "rank": pa.array([5, 3], pa.int32()),
            "seen": pa.array(
                [dt.datetime(2025, 1, 1, 0, 0), dt.datetime(2025, 1, 1, 1, 0)], pa.timestamp("us")
            ),
        }
    )
    table = catalog.create_table(name, schema=data.schema)
    table.append(data)
    rows = spark.sql(f"SELECT id, rank FROM {name} ORDER BY rank").collect()
    assert [(r.id, r.rank) for r in rows] == [("tether", 3), ("solana", 5)]
    # and the snapshot pyiceberg committed is visible in Spark's metadata tables
    snaps = spark.sql(f"SELECT operation FROM {name}.snapshots").collect()
    assert [s.operation for s in snaps] == ["append"]
