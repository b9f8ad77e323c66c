"""Lineage: every Iceberg commit a run makes carries its run id and dates; ``lab lineage``.

Spark: :func:`tag_spark_commits` once per session, after which every commit made from this
Python thread (INSERT, MERGE, overwrite, DataFrame writes) gets the properties in its
snapshot summary. pyiceberg: pass ``snapshot_properties=run_properties(...)`` to writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PREFIX = "lab."
RUN_ID = f"{PREFIX}run-id"
START = f"{PREFIX}start-date"
END = f"{PREFIX}end-date"


def run_properties(run_id: str, start_date: str, end_date: str | None = None) -> dict[str, str]:
    """The snapshot-summary properties that tie a commit to a run."""
    return {RUN_ID: run_id, START: start_date, END: end_date or start_date}


def tag_spark_commits(
    spark: SparkSession, run_id: str, start_date: str, end_date: str | None = None
) -> dict[str, str]:
    """Add the run's properties to every Iceberg commit this session makes from this thread.

    Iceberg reads extra snapshot properties from a thread-local that its public
    ``CommitMetadata.withCommitProperties`` sets only around one callable; a notebook's
    writes are spread over many cells, so the thread-local is set for the session instead.
    PySpark pins each Python thread to one JVM thread, so every later cell's SQL runs on
    the thread that holds it. Pass an empty ``run_id`` to stop tagging.
    """
    props = run_properties(run_id, start_date, end_date)
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    # Spark's class loader, which holds the Iceberg jar (Class.forName would not see it)
    cls = jvm.py4j.reflection.ReflectionUtil.classForName("org.apache.iceberg.spark.CommitMetadata")
    field = cls.getDeclaredField("COMMIT_PROPERTIES")
    field.setAccessible(True)
    local = field.get(None)
    if not run_id:
        local.remove()
        return {}
    java_map = jvm.java.util.HashMap()
    for key, value in props.items():
        java_map.put(key, value)
    local.set(java_map)
    return props


@dataclass(frozen=True)
class SnapshotLineage:
    """One snapshot of a table and the run that made it."""

    snapshot_id: int
    committed_at: datetime
    operation: str
    run_id: str
    dates: str
    added_records: int
    deleted_records: int


def table_lineage(table_name: str) -> list[SnapshotLineage]:
    """Every snapshot of ``table_name``, oldest first, with the run that committed it."""
    from lab_env.lake.catalog import load_table

    table = load_table(table_name, example="lab lineage silver.asset_prices")
    rows = []
    for snap in table.snapshots():
        summary = snap.summary.additional_properties if snap.summary else {}
        start, end = summary.get(START, ""), summary.get(END, "")
        rows.append(
            SnapshotLineage(
                snapshot_id=snap.snapshot_id,
                committed_at=datetime.fromtimestamp(snap.timestamp_ms / 1000, UTC),
                operation=str(snap.summary.operation.value) if snap.summary else "",
                run_id=summary.get(RUN_ID, ""),
                dates=start if start == end else f"{start}..{end}",
                added_records=int(summary.get("added-records", 0)),
                deleted_records=int(summary.get("deleted-records", 0)),
            )
        )
    return rows

