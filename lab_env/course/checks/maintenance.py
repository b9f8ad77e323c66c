"""Self-checks for 07 maintenance: they read the sandbox tables' metadata and rows (pyiceberg,
DuckDB), never the notebook's variables, so any correct way of solving an exercise passes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lab_env.course.checks._core import _Verdict, exercise, fail, ok
from lab_env.course.checks.silver import load_table
from lab_env.lake.maintain import TableStats, fingerprint, table_stats

if TYPE_CHECKING:
    from pyiceberg.table import Table


def _rows_at(table: Table, snapshot_id: int | None = None) -> list[dict]:
    return table.scan(snapshot_id=snapshot_id).to_arrow().to_pylist()


@exercise("07.1", "Rename keeps the values, a new column is optional")
def schema_evolved(table: str = "sandbox.prices", old: str = "circulating_supply",
                   new: str = "units_in_circulation", added: str = "note") -> _Verdict:
    """``old`` renamed to ``new`` (same field id), ``added`` a new optional string column."""
    prices = load_table(table)
    schema = prices.schema()
    names = {f.name: f for f in schema.fields}
    original = next((s.find_field(old) for s in prices.metadata.schemas
                     if old in {f.name for f in s.fields}), None)
    if original is None:
        return fail(f"{table} never had a column {old!r}: re-run the cells that create the table.")
    if new not in names:
        hint = f"{old} is still there" if old in names else f"there is no {new!r}"
        return fail(f"{hint}: rename it with update.rename_column({old!r}, {new!r}).")
    if names[new].field_id != original.field_id:
        return fail(f"{new} has field id {names[new].field_id}, but {old} had "
                    f"{original.field_id}: it is a new, empty column, and the values in the "
                    "old files are lost to it. rename_column keeps the id; drop + add does not.")
    if added not in names:
        return fail(f"{table} has no column {added!r}: add it with update.add_column.")
    if names[added].required or str(names[added].field_type) != "string":
        return fail(f"{added} must be an optional string: old files have no value for it, so "
                    "it must allow nulls (add_column's default).")
    rows = prices.scan(selected_fields=(new,)).to_arrow()
    filled = rows.num_rows - rows.column(new).null_count
    con = prices.scan(selected_fields=(new,)).to_duckdb("evolved")
    duck = con.sql(f'SELECT count("{new}") FROM evolved').fetchall()[0][0]
    if rows.num_rows and not filled:
        return fail(f"every {new} is null: the old values did not follow the rename.")
    if duck != filled:
        return fail(f"DuckDB counts {duck} values of {new}, pyiceberg {filled}: re-run the cell.")
    return ok(f"{new} keeps field id {original.field_id} and {filled} values written before "
              f"the rename; {added} is a new optional column (pyiceberg and DuckDB agree)")


@exercise("07.2", "Partition spec evolved; old and new files live side by side")
def partition_evolved(table: str = "sandbox.prices", column: str = "asset_id",
                      time_column: str = "observed_at") -> _Verdict:
    """The spec adds a bucket on ``column`` and keeps days(``time_column``); files of both."""
    from pyiceberg.transforms import BucketTransform, DayTransform

    prices = load_table(table)
    schema = prices.schema()
    spec = prices.spec()
    transforms = {(schema.find_column_name(f.source_id), type(f.transform)) for f in spec.fields}
    if (time_column, DayTransform) not in transforms:
        return fail(f"the current spec has no days({time_column}) any more: ADD PARTITION "
                    "FIELD adds to the spec; REPLACE or DROP removed the day field.")
    if not any(name == column and kind is BucketTransform for name, kind in transforms):
        return fail(f"the current spec has no bucket on {column}: ALTER TABLE {table} ADD "
                    f"PARTITION FIELD bucket(4, {column}).")
    spec_ids = set(prices.inspect.files().column("spec_id").to_pylist())
    if spec.spec_id not in spec_ids:
        return fail("no data file is written with the new spec yet: run the INSERT after "
                    "changing the spec.")
    if len(spec_ids) < 2:
        return fail("every file uses the new spec: the old files should stay as they were "
                    "(changing a spec rewrites nothing); re-run from the table's creation.")
    fields = ", ".join(f"{f.transform}({schema.find_column_name(f.source_id)})"
                       for f in spec.fields)
    return ok(f"files of specs {sorted(spec_ids)} read as one table; the current spec is {fields}")


@exercise("07.3", "Recovered from the bad write with time travel")
def recovered(table: str = "sandbox.prices", tag: str = "before_bad_write",
              price_column: str = "price_usd") -> _Verdict:
    """The current rows are exactly the tagged snapshot's rows."""
    prices = load_table(table)
    ref = prices.metadata.refs.get(tag)
    if ref is None:
        return fail(f"{table} has no tag {tag!r}: run the cell that creates it before the bad "
                    "write.")
    current = prices.current_snapshot()
    good = _rows_at(prices, ref.snapshot_id)
    now = _rows_at(prices, current.snapshot_id if current else None)
    if fingerprint(now) == fingerprint(good):
        how = ("rolled back to it" if current and current.snapshot_id == ref.snapshot_id
               else "restored its rows in a new snapshot")
        return ok(f"{len(now)} rows, exactly those of tag {tag!r} (you {how}); the bad write "
                  "is still in the history, for the post-mortem")
    zero = sum(1 for r in now if r.get(price_column) is not None and r[price_column] <= 0)
    if zero:
        return fail(f"{zero} rows still have {price_column} <= 0: the bad write is current. "
                    f"CALL lake.system.rollback_to_snapshot('{table}', <the tag's snapshot id>).")
    return fail(f"{len(now)} rows now, {len(good)} in tag {tag!r}, and they differ: fixing rows "
                "by hand misses some; roll back to the tagged snapshot instead.")


@exercise("07.4", "Compaction: fewer files, the same rows")
def compacted(before: TableStats, table: str = "sandbox.ticks") -> _Verdict:
    """Fewer data files than ``before`` (measured with maintain.table_stats), same data."""
    after = table_stats(table)
    if after.fingerprint != before.fingerprint:
        return fail(f"{table} reads back {after.rows} rows that differ from the {before.rows} "
                    "before: compaction must keep every row (use rewrite_data_files).")
    if after.data_files >= before.data_files:
        return fail(f"still {after.data_files} data files: CALL "
                    f"lake.system.rewrite_data_files(table => '{table}', options => "
                    "map('min-input-files', '2')).")
    return ok(f"{before.data_files} data files became {after.data_files}; "
              f"the same {after.rows} rows read back")
