"""`lab maintain` on a real table made of many small appends: fewer files and snapshots after,
the same rows read back, tags kept, orphans removed only when old, and a dry run that changes
nothing; audit branches that failed runs left are removed after the retention."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform
from pyiceberg.types import DoubleType, LongType, NestedField, StringType, TimestamptzType

from lab_env.cli import main
from lab_env.errors import LabError
from lab_env.lake import maintain
from lab_env.quality.suites import audit_branch

APPENDS = 15
SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=False),
    NestedField(2, "asset_id", StringType(), required=False),
    NestedField(3, "price", DoubleType(), required=False),
    NestedField(4, "observed_at", TimestamptzType(), required=False),
)
SPEC = PartitionSpec(PartitionField(4, 1000, DayTransform(), "observed_day"))


def batch(n: int) -> pa.Table:
    """One small append: two rows on one of three days."""
    at = dt.datetime(2025, 3, 1 + n % 3, n % 24, tzinfo=dt.UTC)
    return pa.table({
        "id": pa.array([2 * n, 2 * n + 1], pa.int64()),
        "asset_id": ["bitcoin", "ethereum"],
        "price": [90000.0 + n, 3000.0 + n],
        "observed_at": pa.array([at, at], pa.timestamp("us", tz="UTC")),
    })


def small_appends(catalog: Catalog, name: str) -> pa.Table:
    """A day-partitioned table written by APPENDS separate appends; returns every row."""
    catalog.create_namespace_if_not_exists("sandbox")
    if catalog.table_exists(name):
        catalog.purge_table(name)
    table = catalog.create_table(name, schema=SCHEMA, partition_spec=SPEC)
    for n in range(APPENDS):
        table.append(batch(n))
    return pa.concat_tables([batch(n) for n in range(APPENDS)])


def sorted_rows(rows: pa.Table) -> list[dict]:
    return rows.sort_by("id").to_pylist()


def table_dir(catalog: Catalog, name: str) -> Path:
    return Path(urlparse(catalog.load_table(name).location()).path)


@pytest.fixture
def lab_maintain(capsys: pytest.CaptureFixture[str]) -> Callable[..., str]:
    """``lab_maintain(name, *args)`` runs `lab maintain NAME --older-than 0s --retain-last 1
    ARGS`, asserts it succeeds and returns what it printed."""

    def run(name: str, *args: str) -> str:
        capsys.readouterr()
        assert main(["maintain", name, "--older-than", "0s", "--retain-last", "1", *args]) == 0
        return capsys.readouterr().out

    return run


@pytest.mark.spark
def test_maintain_compacts_and_expires_and_keeps_the_data(spark, catalog, lab_maintain) -> None:  # type: ignore[no-untyped-def]
    name = "sandbox.m7_ticks"
    written = small_appends(catalog, name)
    tagged = catalog.load_table(name).snapshots()[2]
    spark.sql(f"ALTER TABLE {name} CREATE TAG before_cleanup AS OF VERSION {tagged.snapshot_id}")
    before = maintain.table_stats(name)
    assert before.data_files == APPENDS and before.snapshots == APPENDS

    out = lab_maintain(name)

    after = maintain.table_stats(name)
    assert after.data_files == 3, "one file per day partition after compaction"
    assert after.files_in_history < before.files_in_history
    # kept: the tagged snapshot, and the two that compaction and the manifest rewrite
    # committed after the cutoff; the other 14 appends are gone
    assert after.snapshots == 3
    assert after.files_in_history == 3 + 3, "the compacted files, and the tagged snapshot's"
    assert after.refs["before_cleanup"] == tagged.snapshot_id
    assert after.fingerprint == before.fingerprint and after.rows == written.num_rows
    assert sorted_rows(catalog.load_table(name).scan().to_arrow()) == sorted_rows(written)
    spark_rows = spark.sql(f"SELECT count(*) AS n, sum(id) AS ids FROM {name}").first()
    ids = sum(written.column("id").to_pylist())
    assert (spark_rows.n, spark_rows.ids) == (written.num_rows, ids)
    # time travel to the tag still works: its files were protected from expiry
    as_tagged = spark.sql(
        f"SELECT count(*) AS n FROM {name} VERSION AS OF 'before_cleanup'").first()
    assert as_tagged.n == 2 * 3
    # the before/after table and each step's outcome are printed
    assert f"Maintenance of {name}" in out
    for measure in ("data files", "data bytes", "manifests", "snapshots", "full scan (s)"):
        assert measure in out
    assert "rewrite_data_files: 15 files rewritten into 3" in out
    assert "same data: yes" in out and "before_cleanup" in out


@pytest.mark.spark
def test_dry_run_changes_nothing(spark, catalog, lab_maintain) -> None:  # type: ignore[no-untyped-def]
    name = "sandbox.m7_dry"
    small_appends(catalog, name)
    table = catalog.load_table(name)
    snapshots = [s.snapshot_id for s in table.snapshots()]
    files = sorted(p.name for p in table_dir(catalog, name).rglob("*") if p.is_file())

    out = lab_maintain(name, "--dry-run")

    table = catalog.load_table(name)
    assert [s.snapshot_id for s in table.snapshots()] == snapshots
    assert sorted(p.name for p in table_dir(catalog, name).rglob("*") if p.is_file()) == files
    assert "dry run: nothing changed" in out
    assert f"would expire at most {APPENDS - 1} of {APPENDS} snapshots" in out


@pytest.mark.spark
def test_orphans_are_removed_only_when_older_than_the_window(spark, catalog) -> None:  # type: ignore[no-untyped-def]
    name = "sandbox.m7_orphans"
    small_appends(catalog, name)
    data = table_dir(catalog, name) / "data"
    old, fresh = data / "crashed-job-old.parquet", data / "job-still-writing.parquet"
    for path in (old, fresh):
        path.write_bytes(b"not referenced by any snapshot")
    five_days_ago = (dt.datetime.now() - dt.timedelta(days=5)).timestamp()
    os.utime(old, (five_days_ago, five_days_ago))

    policy = maintain.Policy(compact=False, rewrite_manifests=False, expire=False)
    report = maintain.maintain_table(spark, name, policy)

    assert not old.exists() and fresh.exists()
    assert ("remove_orphan_files", "1 orphan files deleted") in report.steps
    assert report.after is not None and report.after.snapshots == APPENDS


def test_unknown_table_is_an_error_with_a_fix(catalog, capsys: pytest.CaptureFixture[str]  # type: ignore[no-untyped-def]
                                              ) -> None:
    assert main(["maintain", "sandbox.no_such_table", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "No table 'sandbox.no_such_table'" in err and "namespace.table" in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [("7d", dt.timedelta(days=7)), ("12h", dt.timedelta(hours=12)), ("0s", dt.timedelta(0)),
     ("30m", dt.timedelta(minutes=30)), ("2w", dt.timedelta(weeks=2))],
)
def test_durations(text: str, expected: dt.timedelta) -> None:
    assert maintain.parse_duration(text) == expected


def test_unsafe_settings_are_refused() -> None:
    with pytest.raises(LabError, match="at least 1d"):
        maintain.Policy(orphan_older_than=dt.timedelta(hours=2))
    with pytest.raises(LabError, match="current snapshot"):
        maintain.Policy(retain_last=0)
    with pytest.raises(LabError, match="number and a unit"):
        maintain.parse_duration("seven days")


def test_fingerprint_ignores_order_but_not_values() -> None:
    rows = [{"id": 1, "p": 2.0}, {"id": 2, "p": 3.0}]
    assert maintain.fingerprint(rows) == maintain.fingerprint(list(reversed(rows)))
    assert maintain.fingerprint(rows) != maintain.fingerprint([{"id": 1, "p": 2.0}] * 2)


def branched(catalog: Catalog, name: str) -> list[int]:
    """A table of three appends with branches: audit_old on the first commit, audit_new on the
    second, dev (not an audit branch) on the first; returns the snapshot ids."""
    catalog.create_namespace_if_not_exists("sandbox")
    if catalog.table_exists(name):
        catalog.purge_table(name)
    table = catalog.create_table(name, schema=SCHEMA, partition_spec=SPEC)
    for n in range(3):
        table.append(batch(n))
        time.sleep(0.01)  # distinct commit times
    ids = [s.snapshot_id for s in table.snapshots()]
    (table.manage_snapshots().create_branch(ids[0], "audit_old")
     .create_branch(ids[1], "audit_new").create_branch(ids[0], "dev").commit())
    return ids


def test_audit_branches_older_than_the_retention_are_removed(catalog) -> None:  # type: ignore[no-untyped-def]
    name = "sandbox.m7_audit"
    ids = branched(catalog, name)
    second = catalog.load_table(name).snapshot_by_id(ids[1])
    cutoff = dt.datetime.fromtimestamp(second.timestamp_ms / 1000, dt.UTC)  # audit_old is older

    would = maintain.remove_audit_branches(name, cutoff, dry_run=True)
    assert [b.branch for b in would] == ["audit_old"]
    assert {"audit_old", "audit_new", "dev"} <= set(catalog.load_table(name).refs())

    removed = maintain.remove_audit_branches(name, cutoff)
    assert [b.branch for b in removed] == ["audit_old"] and removed[0].table == name
    refs = catalog.load_table(name).refs()
    assert "audit_old" not in refs and {"audit_new", "dev", "main"} <= set(refs)


def test_the_gate_and_maintenance_agree_on_what_an_audit_branch_is() -> None:
    assert audit_branch("scheduled__2025-03-29T00:00:00+00:00").startswith(
        maintain.AUDIT_BRANCH_PREFIX)


@pytest.mark.spark
def test_lab_maintain_lists_then_removes_audit_branches_of_failed_runs(
    spark, catalog, lab_maintain  # type: ignore[no-untyped-def]
) -> None:
    name = "sandbox.m7_audit_cli"
    ids = branched(catalog, name)
    out = lab_maintain(name, "--dry-run")
    assert "remove_audit_branches: would remove 2 audit branches of failed or killed runs" in out
    assert "audit_old (" in out and "audit_new (" in out
    assert {"audit_old", "audit_new"} <= set(catalog.load_table(name).refs())

    out = lab_maintain(name)
    assert "remove_audit_branches: removed 2 audit branches" in out
    table = catalog.load_table(name)
    assert set(table.refs()) == {"main", "dev"}
    # expiry, which ran after, dropped what only the audit branches kept (the second commit)
    assert ids[1] not in {s.snapshot_id for s in table.snapshots()}
    assert table.snapshot_by_name("dev").snapshot_id == ids[0]  # type: ignore[union-attr]
