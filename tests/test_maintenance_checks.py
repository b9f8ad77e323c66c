"""The 07.x checks: each passes on a right answer and fails, with its hint, on a wrong one.

The tables are small real Iceberg tables in the session's catalog, changed with pyiceberg the
way a learner's Spark SQL would change them; no Spark here.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import BucketTransform, DayTransform
from pyiceberg.types import DecimalType, NestedField, StringType, TimestamptzType

from lab_env.course.checks import maintenance
from lab_env.lake.maintain import table_stats
from tests.mistakes import mistake

SCHEMA = Schema(
    NestedField(1, "asset_id", StringType(), required=False),
    NestedField(2, "observed_at", TimestamptzType(), required=False),
    NestedField(3, "price_usd", DecimalType(38, 24), required=False),
    NestedField(4, "circulating_supply", DecimalType(38, 18), required=False),
)
DAY_SPEC = PartitionSpec(PartitionField(2, 1000, DayTransform(), "observed_at_day"))
ARROW = pa.schema([("asset_id", pa.string()), ("observed_at", pa.timestamp("us", tz="UTC")),
                   ("price_usd", pa.decimal128(38, 24)),
                   ("circulating_supply", pa.decimal128(38, 18))])


def rows(day: int, price: str = "100.5", assets: tuple[str, ...] = ("bitcoin", "ethereum")
         ) -> pa.Table:
    at = dt.datetime(2025, 3, day, 12, tzinfo=dt.UTC)
    return pa.Table.from_pylist([{"asset_id": a, "observed_at": at, "price_usd": Decimal(price),
                                  "circulating_supply": Decimal("19000000.5")} for a in assets],
                                schema=ARROW)


def fresh(catalog: Catalog, name: str, spec: PartitionSpec = DAY_SPEC) -> Table:
    catalog.create_namespace_if_not_exists("sandbox")
    if catalog.table_exists(name):
        catalog.purge_table(name)
    table = catalog.create_table(name, schema=SCHEMA, partition_spec=spec)
    table.append(rows(1))
    table.append(rows(2))
    return catalog.load_table(name)


# ----- 07.1: rename and add -----


def test_schema_evolved_passes_on_a_rename_and_an_optional_column(catalog: Catalog) -> None:
    table = fresh(catalog, "sandbox.c71_right")
    with table.update_schema() as update:
        update.rename_column("circulating_supply", "units_in_circulation")
        update.add_column("note", StringType())
    result = maintenance.schema_evolved("sandbox.c71_right")
    assert result.passed, result.message
    assert "keeps field id 4 and 4 values" in result.message


@mistake("07.1", "drop-and-add")
def test_schema_evolved_fails_on_drop_and_add(catalog: Catalog) -> None:
    table = fresh(catalog, "sandbox.c71_drop_add")
    with table.update_schema() as update:
        update.delete_column("circulating_supply")
        update.add_column("units_in_circulation", DecimalType(38, 18))
        update.add_column("note", StringType())
    result = maintenance.schema_evolved("sandbox.c71_drop_add")
    assert not result.passed and "rename_column keeps the id" in result.message


@mistake("07.1", "not-renamed")
@mistake("07.1", "note-forgotten")
def test_schema_evolved_fails_before_the_rename_and_without_the_new_column(
    catalog: Catalog,
) -> None:
    table = fresh(catalog, "sandbox.c71_missing")
    result = maintenance.schema_evolved("sandbox.c71_missing")
    assert not result.passed and "circulating_supply is still there" in result.message
    with table.update_schema() as update:
        update.rename_column("circulating_supply", "units_in_circulation")
    result = maintenance.schema_evolved("sandbox.c71_missing")
    assert not result.passed and "no column 'note'" in result.message


# ----- 07.2: partition evolution -----


def test_partition_evolved_passes_with_files_of_both_specs(catalog: Catalog) -> None:
    table = fresh(catalog, "sandbox.c72_right")
    with table.update_spec() as update:
        update.add_field("asset_id", BucketTransform(4), "asset_id_bucket")
    assert not maintenance.partition_evolved("sandbox.c72_right").passed  # no new file yet
    catalog.load_table("sandbox.c72_right").append(rows(3))
    result = maintenance.partition_evolved("sandbox.c72_right")
    assert result.passed, result.message


@mistake("07.2", "day-field-replaced")
@mistake("07.2", "no-file-written-after")
def test_partition_evolved_fails_while_no_file_has_the_new_spec(catalog: Catalog) -> None:
    table = fresh(catalog, "sandbox.c72_no_file")
    with table.update_spec() as update:
        update.add_field("asset_id", BucketTransform(4), "asset_id_bucket")
    result = maintenance.partition_evolved("sandbox.c72_no_file")
    assert not result.passed and "new spec yet" in result.message, result.message


def test_partition_evolved_fails_when_the_day_field_is_dropped(catalog: Catalog) -> None:
    table = fresh(catalog, "sandbox.c72_replaced")
    with table.update_spec() as update:
        update.remove_field("observed_at_day")
        update.add_field("asset_id", BucketTransform(4), "asset_id_bucket")
    catalog.load_table("sandbox.c72_replaced").append(rows(3))
    result = maintenance.partition_evolved("sandbox.c72_replaced")
    assert not result.passed and "no days(observed_at)" in result.message


# ----- 07.3: recover from a bad write -----


def bad_write(catalog: Catalog, name: str) -> tuple[Table, int, int]:
    """A good table tagged, then an overwrite that zeroes every price; returns both snapshots."""
    table = fresh(catalog, name)
    good = table.current_snapshot().snapshot_id
    table.manage_snapshots().create_tag(good, "before_bad_write").commit()
    table = catalog.load_table(name)
    table.overwrite(pa.concat_tables([rows(1, "0"), rows(2, "0")]))
    table = catalog.load_table(name)
    return table, good, table.current_snapshot().snapshot_id


def test_recovered_passes_after_a_rollback(catalog: Catalog) -> None:
    table, good, _ = bad_write(catalog, "sandbox.c73_right")
    table.manage_snapshots().rollback_to_snapshot(good).commit()
    result = maintenance.recovered("sandbox.c73_right")
    assert result.passed, result.message
    assert "rolled back" in result.message


def test_recovered_passes_when_the_tagged_rows_are_restored_in_a_new_snapshot(
    catalog: Catalog,
) -> None:
    table, good, _ = bad_write(catalog, "sandbox.c73_restore")
    table.overwrite(table.scan(snapshot_id=good).to_arrow())
    result = maintenance.recovered("sandbox.c73_restore")
    assert result.passed and "new snapshot" in result.message


@mistake("07.3", "bad-write-current")
def test_recovered_fails_while_the_bad_write_is_current(catalog: Catalog) -> None:
    bad_write(catalog, "sandbox.c73_bad")
    result = maintenance.recovered("sandbox.c73_bad")
    assert not result.passed and "rollback_to_snapshot" in result.message
    assert "4 rows still have price_usd <= 0" in result.message


@mistake("07.3", "fixed-by-hand")
def test_recovered_fails_when_rows_are_fixed_by_hand(catalog: Catalog) -> None:
    table, _, _ = bad_write(catalog, "sandbox.c73_by_hand")
    table.overwrite(rows(1))  # one day repaired, the other forgotten
    result = maintenance.recovered("sandbox.c73_by_hand")
    assert not result.passed and "fixing rows by hand" in result.message


# ----- 07.4: compaction -----


def many_appends(catalog: Catalog, name: str) -> Table:
    table = fresh(catalog, name)
    for day in (1, 2, 1, 2):
        table.append(rows(day, "101.25"))
    return catalog.load_table(name)


def test_compacted_passes_on_fewer_files_with_the_same_rows(catalog: Catalog) -> None:
    table = many_appends(catalog, "sandbox.c74_right")
    before = table_stats("sandbox.c74_right")
    table.overwrite(table.scan().to_arrow())  # one file per day, every row kept
    result = maintenance.compacted(before, "sandbox.c74_right")
    assert result.passed, result.message
    assert f"{before.data_files} data files became 2" in result.message


@mistake("07.4", "nothing-compacted")
def test_compacted_fails_when_nothing_was_compacted(catalog: Catalog) -> None:
    many_appends(catalog, "sandbox.c74_nothing")
    before = table_stats("sandbox.c74_nothing")
    result = maintenance.compacted(before, "sandbox.c74_nothing")
    assert not result.passed and "rewrite_data_files" in result.message


@mistake("07.4", "rewrite-loses-rows")
@mistake("07.4", "stats-after-compaction")
def test_compacted_fails_when_before_was_measured_after_the_rewrite(catalog: Catalog) -> None:
    table = many_appends(catalog, "sandbox.c74_late")
    table.overwrite(table.scan().to_arrow())
    before = table_stats("sandbox.c74_late")  # measured after compacting: nothing to compare
    result = maintenance.compacted(before, "sandbox.c74_late")
    assert not result.passed and "rewrite_data_files" in result.message, result.message


def test_compacted_fails_when_rows_changed(catalog: Catalog) -> None:
    table = many_appends(catalog, "sandbox.c74_lossy")
    before = table_stats("sandbox.c74_lossy")
    table.overwrite(rows(1))  # fewer files, but rows lost
    result = maintenance.compacted(before, "sandbox.c74_lossy")
    assert not result.passed and "compaction must keep every row" in result.message


@pytest.mark.parametrize("check", [maintenance.schema_evolved, maintenance.recovered,
                                   maintenance.partition_evolved])
def test_checks_say_which_cell_to_run_when_the_table_is_missing(check, catalog: Catalog  # type: ignore[no-untyped-def]
                                                                ) -> None:
    result = check("sandbox.never_created")
    assert not result.passed and "does not exist yet" in result.message


@pytest.mark.parametrize(
    ("check", "name", "hint"),
    [
        pytest.param(maintenance.partition_evolved, "sandbox.c72_none",
                     "ADD PARTITION FIELD bucket(4, asset_id)",
                     marks=mistake("07.2", "no-bucket"), id="partition-evolved-without-a-bucket"),
        pytest.param(maintenance.recovered, "sandbox.c73_no_tag", "no tag 'before_bad_write'",
                     marks=mistake("07.3", "tag-missing"), id="recovered-without-the-tag"),
    ],
)
def test_checks_fail_on_the_table_as_it_was_written(  # type: ignore[no-untyped-def]
    catalog: Catalog, check, name: str, hint: str
) -> None:
    """The table as ``fresh`` wrote it, no cell of the exercise run: no bucket field (07.2), no
    tag (07.3)."""
    fresh(catalog, name)
    result = check(name)
    assert not result.passed and hint in result.message, result.message
