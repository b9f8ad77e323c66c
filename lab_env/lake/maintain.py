"""Table maintenance: compact small files, rewrite manifests, expire snapshots, remove orphans.

Every append, MERGE and overwrite leaves new data files, a manifest and a snapshot behind. Left
alone, a table read by many small jobs ends up as thousands of tiny files and a long history
that nobody queries. Iceberg's Spark procedures clean up; this module runs them with safe
defaults and measures the table before and after. ``lab maintain`` is the command;
the functions are the same ones notebook 07 calls.

Safe defaults (:class:`Policy`):

* compaction rewrites only partitions with at least ``min_input_files`` small files, and
  keeps every row: it commits a ``replace`` snapshot whose data equals the one before;
* snapshots are expired only when older than ``older_than`` (7 days), and the last
  ``retain_last`` snapshots of every branch, every tag and every branch head are always kept,
  so time travel to them still works;
* orphan files (in the table's folder but in no snapshot, e.g. left by a crashed job) are
  deleted only when older than ``orphan_older_than`` (3 days, never less than a day, which
  Iceberg itself enforces): a file a running job has just written looks exactly like an orphan;
* audit branches (``audit_<run id>``) left by runs that failed or were killed before the
  quality gate published them are removed when their last commit is older than ``older_than``,
  the same retention as snapshots; expiry then deletes what only they referenced.

``lab maintain`` holds the LAB_HOME lock (:mod:`lab_env.lake.lock`), so no run writes meanwhile; a
dry run changes nothing and does not take it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lab_env.errors import LabError

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from pyspark.sql import SparkSession

DEFAULT_NAMESPACES = ("silver", "gold")
# The branches runs write gold to before the quality gate publishes them
# (lab_env.quality.suites.audit_branch); a published run's branch is removed by the gate.
AUDIT_BRANCH_PREFIX = "audit_"
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MIN_ORPHAN_AGE = dt.timedelta(days=1)  # Iceberg refuses less: see remove_orphan_files


def parse_duration(text: str) -> dt.timedelta:
    """``"7d"``, ``"12h"``, ``"30m"``, ``"0s"``, ``"2w"`` as a timedelta."""
    match = _DURATION.match(text)
    if not match:
        raise LabError(
            f"{text!r} is not a duration.", "write a number and a unit: 30m, 12h, 7d or 2w."
        )
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@dataclass(frozen=True)
class Policy:
    """What maintenance may do; the defaults are safe on a table in daily use."""

    older_than: dt.timedelta = dt.timedelta(days=7)  # expire snapshots older than this ...
    retain_last: int = 5  # ... but always keep this many per branch
    orphan_older_than: dt.timedelta = dt.timedelta(days=3)
    min_input_files: int = 2  # compact a partition only when it has this many small files
    compact: bool = True
    rewrite_manifests: bool = True
    expire: bool = True
    remove_orphans: bool = True
    remove_audit_branches: bool = True  # those older than older_than

    def __post_init__(self) -> None:
        if self.retain_last < 1:
            raise LabError(
                f"retain_last={self.retain_last} would expire the current snapshot.",
                "keep at least 1 (the default is 5).",
            )
        if self.orphan_older_than < MIN_ORPHAN_AGE:
            raise LabError(
                f"Orphan files younger than {MIN_ORPHAN_AGE} may belong to a job still writing.",
                "use an orphan window of at least 1d (the default is 3d).",
            )
        if self.min_input_files < 2:
            raise LabError("Compacting a single file gains nothing.", "use min_input_files >= 2.")


@dataclass(frozen=True)
class TableStats:
    """What one table costs to keep and to read, at one moment."""

    table: str
    data_files: int  # data files of the current snapshot
    data_bytes: int
    files_in_history: int  # data files any snapshot still references (kept on storage)
    manifests: int  # manifests of the current snapshot
    snapshots: int
    refs: dict[str, int]  # branch and tag names -> snapshot id
    rows: int
    fingerprint: str  # order-independent hash of every row: equal means same data
    scan_seconds: float  # a full read of the table with pyiceberg

    def measures(self) -> list[tuple[str, float | int]]:
        return [
            ("data files", self.data_files),
            ("data bytes", self.data_bytes),
            ("data files in history", self.files_in_history),
            ("manifests", self.manifests),
            ("snapshots", self.snapshots),
            ("rows", self.rows),
            ("full scan (s)", round(self.scan_seconds, 3)),
        ]


@dataclass
class MaintenanceReport:
    """Before, after, and what each step did (``after`` is None on a dry run)."""

    table: str
    before: TableStats
    after: TableStats | None = None
    steps: list[tuple[str, str]] = field(default_factory=list)  # (step, outcome)
    dry_run: bool = False

    @property
    def data_unchanged(self) -> bool:
        return self.after is None or self.after.fingerprint == self.before.fingerprint

    def comparison(self) -> list[tuple[str, Any, Any]]:
        """(measure, before, after) rows, e.g. for ``pd.DataFrame(report.comparison())``."""
        after = dict(self.after.measures()) if self.after else {}
        return [(name, value, after.get(name, "")) for name, value in self.before.measures()]


def load(table_name: str) -> Table:
    """An Iceberg table by ``namespace.table``, or a LabError naming the problem."""
    from lab_env.lake.catalog import load_table

    return load_table(table_name, example="lab maintain silver.asset_prices")


@dataclass(frozen=True)
class AuditBranch:
    """An audit branch still on a table: its run never published it (failed, killed, or
    still running)."""

    table: str
    branch: str
    committed_at: dt.datetime  # of the branch's last commit

    def age(self, now: dt.datetime) -> dt.timedelta:
        return now - self.committed_at


def audit_branches(table: Table, table_name: str) -> list[AuditBranch]:
    """The ``audit_*`` branches of a table, oldest first."""
    found = []
    for name, ref in table.metadata.refs.items():
        if ref.snapshot_ref_type.value != "branch" or not name.startswith(AUDIT_BRANCH_PREFIX):
            continue
        snap = table.snapshot_by_id(ref.snapshot_id)
        millis = snap.timestamp_ms if snap is not None else 0
        committed = dt.datetime.fromtimestamp(millis / 1000, dt.UTC)
        found.append(AuditBranch(table_name, name, committed))
    return sorted(found, key=lambda b: b.committed_at)


def remove_audit_branches(
    table_name: str, older_than: dt.datetime, *, dry_run: bool = False
) -> list[AuditBranch]:
    """Remove the audit branches whose last commit is older than ``older_than`` (unless
    ``dry_run``); return them. The snapshots only they kept are left for expiry."""
    table = load(table_name)
    stale = [b for b in audit_branches(table, table_name) if b.committed_at < older_than]
    if stale and not dry_run:
        manage = table.manage_snapshots()
        for branch in stale:
            manage = manage.remove_branch(branch.branch)
        manage.commit()
    return stale


def fingerprint(rows: list[dict[str, Any]]) -> str:
    """A hash of the rows that ignores their order (a multiset of rows)."""
    digests = sorted(hashlib.sha256(repr(sorted(r.items())).encode()).hexdigest() for r in rows)
    return hashlib.sha256("".join(digests).encode()).hexdigest()[:16]


def table_stats(table_name: str) -> TableStats:
    """Measure a table from its metadata (pyiceberg) and one full read of its rows."""
    table = load(table_name)
    snapshot = table.current_snapshot()
    if snapshot is None:
        files, manifests = [], 0
    else:
        files = table.inspect.files().select(["content", "file_size_in_bytes"]).to_pylist()
        manifests = len(snapshot.manifests(table.io))
    data = [f for f in files if f["content"] == 0]
    history = {
        path
        for snap in table.snapshots()
        for manifest in snap.manifests(table.io)
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
        if entry.data_file.content.value == 0
        for path in (entry.data_file.file_path,)
    }
    started = time.perf_counter()
    rows = table.scan().to_arrow()
    seconds = time.perf_counter() - started
    return TableStats(
        table=table_name,
        data_files=len(data),
        data_bytes=sum(f["file_size_in_bytes"] for f in data),
        files_in_history=len(history),
        manifests=manifests,
        snapshots=len(table.snapshots()),
        refs={name: ref.snapshot_id for name, ref in table.metadata.refs.items()},
        rows=rows.num_rows,
        fingerprint=fingerprint(rows.to_pylist()),
        scan_seconds=seconds,
    )


def _system() -> str:
    """Where Spark's Iceberg procedures live: ``<catalog>.system``."""
    from lab_env.config import get_settings

    return f"{get_settings().catalog_name}.system"


def _ts(moment: dt.datetime) -> str:
    """A Spark TIMESTAMP literal; the lab's Spark sessions run in UTC."""
    return f"TIMESTAMP '{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S.%f}'"


def _call(spark: SparkSession, sql: str) -> dict[str, Any]:
    rows = spark.sql(sql).collect()
    return rows[0].asDict() if rows else {}


def compact(spark: SparkSession, table_name: str, min_input_files: int = 2) -> dict[str, Any]:
    """Rewrite the small data files of each partition into larger ones (binpack)."""
    return _call(spark, f"""
        CALL {_system()}.rewrite_data_files(
            table => '{table_name}',
            options => map('min-input-files', '{min_input_files}'))""")


def rewrite_manifests(spark: SparkSession, table_name: str) -> dict[str, Any]:
    """Regroup the manifests (the index of data files) so planning reads few of them."""
    return _call(spark, f"CALL {_system()}.rewrite_manifests(table => '{table_name}')")


def expire_snapshots(
    spark: SparkSession, table_name: str, older_than: dt.datetime, retain_last: int
) -> dict[str, Any]:
    """Drop snapshots older than ``older_than`` (keeping the last ``retain_last``, tags and
    branch heads) and delete the files only they referenced."""
    return _call(spark, f"""
        CALL {_system()}.expire_snapshots(
            table => '{table_name}', older_than => {_ts(older_than)},
            retain_last => {retain_last})""")


def remove_orphan_files(
    spark: SparkSession, table_name: str, older_than: dt.datetime, dry_run: bool = False
) -> list[str]:
    """Files under the table's folder that no snapshot references, older than ``older_than``;
    deleted unless ``dry_run``. Returns their locations."""
    rows = spark.sql(f"""
        CALL {_system()}.remove_orphan_files(
            table => '{table_name}', older_than => {_ts(older_than)},
            dry_run => {str(dry_run).lower()})""").collect()
    return [r.orphan_file_location for r in rows]


def expiry_candidates(table_name: str, older_than: dt.datetime, retain_last: int) -> list[int]:
    """Snapshots that expiry may drop: older than the cutoff, not among the last ``retain_last``
    of any branch, not a tag or branch head (an upper bound of what Iceberg expires)."""
    table = load(table_name)
    keep: set[int] = set()
    for ref in table.metadata.refs.values():
        keep.add(ref.snapshot_id)
        if ref.snapshot_ref_type.value == "branch":
            snap = table.snapshot_by_id(ref.snapshot_id)
            for _ in range(retain_last):
                if snap is None:
                    break
                keep.add(snap.snapshot_id)
                parent = snap.parent_snapshot_id
                snap = table.snapshot_by_id(parent) if parent is not None else None
    cutoff_ms = older_than.timestamp() * 1000
    return [s.snapshot_id for s in table.snapshots()
            if s.snapshot_id not in keep and s.timestamp_ms < cutoff_ms]


def maintain_table(
    spark: SparkSession,
    table_name: str,
    policy: Policy | None = None,
    *,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> MaintenanceReport:
    """Compact, rewrite manifests, expire snapshots and remove orphans, measuring before/after.

    A dry run measures, lists what would be done, and changes nothing.
    """
    policy = policy or Policy()
    now = now or dt.datetime.now(dt.UTC)
    report = MaintenanceReport(table_name, table_stats(table_name), dry_run=dry_run)
    expire_before = now - policy.older_than
    orphans_before = now - policy.orphan_older_than
    if policy.remove_audit_branches:  # first, so expiry can drop what only they kept
        branches = remove_audit_branches(table_name, expire_before, dry_run=dry_run)
        if branches:  # silver and sandbox tables never have any
            report.steps.append(("remove_audit_branches", _branches_outcome(
                branches, expire_before, now, dry_run)))
    if dry_run:
        files = report.before.data_files
        report.steps.append(("rewrite_data_files", f"would compact partitions holding "
                             f">= {policy.min_input_files} of the {files} data files"))
        candidates = expiry_candidates(table_name, expire_before, policy.retain_last)
        report.steps.append(("expire_snapshots", f"would expire at most {len(candidates)} of "
                             f"{report.before.snapshots} snapshots (older than "
                             f"{expire_before:%Y-%m-%d %H:%M} UTC, keeping the last "
                             f"{policy.retain_last}, tags and branches)"))
        if policy.remove_orphans:
            orphans = remove_orphan_files(spark, table_name, orphans_before, dry_run=True)
            report.steps.append(("remove_orphan_files", f"would delete {len(orphans)} orphan "
                                 f"files older than {orphans_before:%Y-%m-%d %H:%M} UTC"))
        return report
    if policy.compact:
        out = compact(spark, table_name, policy.min_input_files)
        report.steps.append(("rewrite_data_files", f"{out.get('rewritten_data_files_count', 0)} "
                             f"files rewritten into {out.get('added_data_files_count', 0)}"))
    if policy.rewrite_manifests:
        out = rewrite_manifests(spark, table_name)
        report.steps.append(("rewrite_manifests", f"{out.get('rewritten_manifests_count', 0)} "
                             f"manifests rewritten into {out.get('added_manifests_count', 0)}"))
    if policy.expire:
        out = expire_snapshots(spark, table_name, expire_before, policy.retain_last)
        report.steps.append(("expire_snapshots", f"{out.get('deleted_data_files_count', 0)} data "
                             f"files, {out.get('deleted_manifest_files_count', 0)} manifests and "
                             f"{out.get('deleted_manifest_lists_count', 0)} snapshot lists "
                             "deleted"))
    if policy.remove_orphans:
        orphans = remove_orphan_files(spark, table_name, orphans_before)
        report.steps.append(("remove_orphan_files", f"{len(orphans)} orphan files deleted"))
    report.after = table_stats(table_name)
    if not report.data_unchanged:  # never expected: compaction keeps every row
        raise LabError(
            f"{table_name} reads back different rows after maintenance.",
            "roll back with CALL lake.system.rollback_to_snapshot and report the table.",
        )
    return report


def _branches_outcome(
    branches: list[AuditBranch], cutoff: dt.datetime, now: dt.datetime, dry_run: bool
) -> str:
    verb = "would remove" if dry_run else "removed"
    listed = ", ".join(f"{b.branch} ({_age(b.age(now))} old)" for b in branches)
    return (f"{verb} {len(branches)} audit branches of failed or killed runs older than "
            f"{cutoff:%Y-%m-%d %H:%M} UTC" + (f": {listed}" if listed else ""))


def _age(delta: dt.timedelta) -> str:
    """``3d``, ``5h``, ``12m``: the largest whole unit."""
    seconds = max(int(delta.total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def default_tables() -> list[str]:
    """Every table in the silver and gold namespaces."""
    from lab_env.lake.catalog import get_catalog

    catalog = get_catalog()
    existing = {ns[0] for ns in catalog.list_namespaces()}
    return [".".join(ident) for ns in DEFAULT_NAMESPACES if ns in existing
            for ident in catalog.list_tables(ns)]


def maintain(tables: Sequence[str], policy: Policy, *, dry_run: bool = False,
             on_report: Callable[[MaintenanceReport], None] | None = None,
             ) -> list[MaintenanceReport]:
    """Maintain each table in turn (starting Spark once); return the reports.

    ``on_report`` gets each table's report as soon as it is done (the CLI prints it).

    Holds the LAB_HOME lock unless ``dry_run``: a run writing meanwhile would race the
    procedures' commits.
    """
    from lab_env.config import get_settings
    from lab_env.lake.lock import lakehouse_lock
    from lab_env.lake.spark import get_spark

    settings = get_settings()
    held = (contextlib.nullcontext() if dry_run
            else lakehouse_lock(settings, None, "lab maintain"))
    with held:
        names = list(tables) or default_tables()
        if not names:
            raise LabError("There are no silver or gold tables to maintain.",
                           "run the pipeline first (`lab run`), or name a table.")
        for name in names:
            load(name)  # fail on a wrong name or unreadable metadata before Spark starts
        spark = get_spark()
        reports = []
        for name in names:
            report = maintain_table(spark, name, policy, dry_run=dry_run)
            if on_report is not None:
                on_report(report)
            reports.append(report)
        return reports

