"""Every commit a run makes carries its run id and dates; `lab lineage` lists them."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lab_env.cli import main
from lab_env.errors import LabError
from lab_env.lake.lineage import RUN_ID, run_properties, table_lineage, tag_spark_commits


@pytest.mark.spark
def test_spark_and_pyiceberg_commits_carry_the_run(spark, catalog, capsys) -> None:  # type: ignore[no-untyped-def]
    spark.sql("DROP TABLE IF EXISTS silver.lineage_demo")
    spark.sql("CREATE TABLE silver.lineage_demo (id INT, v STRING) USING iceberg")
    try:
        tag_spark_commits(spark, "run-A", "2025-01-01", "2025-01-03")
        spark.sql("INSERT INTO silver.lineage_demo VALUES (1, 'a'), (2, 'b')")
        spark.sql(
            "MERGE INTO silver.lineage_demo t USING (SELECT 2 AS id, 'B' AS v) s ON t.id = s.id"
            " WHEN MATCHED THEN UPDATE SET v = s.v"
        )
    finally:
        tag_spark_commits(spark, "", "")
    spark.sql("INSERT INTO silver.lineage_demo VALUES (3, 'untagged')")
    table = catalog.load_table("silver.lineage_demo")
    table.append(
        pa.table({"id": pa.array([4], pa.int32()), "v": ["py"]}),
        snapshot_properties=run_properties("run-B", "2025-01-04"),
    )

    rows = table_lineage("silver.lineage_demo")
    assert [(r.run_id, r.dates) for r in rows] == [
        ("run-A", "2025-01-01..2025-01-03"),
        ("run-A", "2025-01-01..2025-01-03"),
        ("", ""),
        ("run-B", "2025-01-04"),
    ]
    assert rows[0].added_records == 2

    assert main(["lineage", "silver.lineage_demo"]) == 0
    out = capsys.readouterr().out
    assert "run-A" in out and "run-B" in out and "(untagged)" in out


def test_unknown_table_is_an_actionable_error() -> None:
    with pytest.raises(LabError, match=r"lab lineage silver\.asset_prices"):
        table_lineage("silver.no_such_table")


@pytest.mark.parametrize("name", ["nope", "", "a.b.c", ".x", "silver."])
def test_a_wrong_name_is_one_line_with_the_fix(name: str, catalog, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["lineage", name]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"No table {name!r}" in err
    assert "Fix: name it as namespace.table, e.g. `lab lineage silver.asset_prices`" in err


def test_piped_lineage_keeps_run_ids_and_dates_whole(catalog, capsys) -> None:  # type: ignore[no-untyped-def]
    """Not a terminal (a pipe, a log file): the table is as wide as it needs, not 80 columns."""
    name = "sandbox.lineage_piped"
    catalog.create_namespace_if_not_exists("sandbox")
    if catalog.table_exists(name):
        catalog.drop_table(name)
    table = catalog.create_table(name, schema=pa.schema([("id", pa.int32())]))
    run_id = "scheduled__2025-03-29T00:00:00+00:00"
    table.append(pa.table({"id": pa.array([1], pa.int32())}),
                 snapshot_properties=run_properties(run_id, "2025-01-01", "2025-03-31"))

    assert main(["lineage", name]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if run_id in line]
    assert len(rows) == 1 and "2025-01-01..2025-03-31" in rows[0], rows


def test_properties_use_one_prefix() -> None:
    props = run_properties("r", "2025-01-01")
    assert props[RUN_ID] == "r" and all(k.startswith("lab.") for k in props)
