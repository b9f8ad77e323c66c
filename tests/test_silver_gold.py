"""Silver and gold on the sample, for real: bronze from the replay server, then the silver and
gold notebooks run twice each with papermill for March 2025.

Five notebook executions in one kernel (one JVM; this process never starts Spark): bronze,
silver, gold, then silver and gold again for the same dates, which must change nothing. The
same month is then built once more as a production job would build it (lesson cells left out)
in a LAB_HOME of its own: the rows must be the same. The tests read the tables with pyiceberg,
compare typed values with the bronze strings, and feed every self-check a wrong answer (a
damaged copy of a real table).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import nbformat
import pyarrow as pa
import pytest

from lab_env.config import get_settings
from lab_env.course.checks import CHECK_MARKER
from lab_env.course.checks import gold as gold_checks
from lab_env.course.checks import silver as silver_checks
from lab_env.jobs.runner import Kernel, execute_notebook, kernel_env
from lab_env.lake.catalog import ensure_namespaces, get_catalog
from lab_env.lake.storage import get_store
from tests.mistakes import mistake

pytestmark = [pytest.mark.notebook, pytest.mark.spark]

REPO = Path(__file__).resolve().parents[1]
BRONZE_NB = REPO / "solutions" / "02_bronze.ipynb"
SILVER_NB = REPO / "solutions" / "03_silver.ipynb"
GOLD_NB = REPO / "solutions" / "04_gold.ipynb"
MANIFEST = json.loads((REPO / "data_samples" / "MANIFEST.json").read_text())
START, END = "2025-03-01", "2025-03-31"  # a month: the 30-day windows fill on the last days
TABLES = {
    "silver.asset_prices": ["asset_id", "observed_at"],
    "silver.asset_snapshots": ["asset_id", "snapshot_date"],
    "silver.assets": ["asset_id"],
    "silver.quarantine": ["bronze_key", "record_index", "field"],
    "gold.dim_asset": ["asset_id"],
    "gold.fct_asset_daily": ["asset_id", "trade_date"],
    "gold.asset_rolling": ["asset_id", "trade_date"],
    "gold.daily_rankings": ["asset_id", "trade_date"],
}
SNAPSHOT_DECIMALS = {"price_usd": "priceUsd", "vwap_24h": "vwap24Hr",
                     "change_percent_24h": "changePercent24Hr", "supply": "supply",
                     "market_cap_usd": "marketCapUsd", "volume_usd_24h": "volumeUsd24Hr"}


@dataclass
class TableState:
    snapshot_ids: list[int]
    rows: list[dict[str, Any]]


@dataclass
class Lake:
    """The LAB_HOME after both rounds, the executed notebooks, and each table after each round."""

    home: Path
    executed: dict[str, nbformat.NotebookNode]
    first: dict[str, TableState]
    second: dict[str, TableState]


def table_states() -> dict[str, TableState]:
    catalog = get_catalog()
    states = {}
    for name, keys in TABLES.items():
        table = catalog.load_table(name)
        rows = table.scan().to_arrow().sort_by([(k, "ascending") for k in keys]).to_pylist()
        states[name] = TableState([s.snapshot_id for s in table.snapshots()], rows)
    return states


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    root = tmp_path_factory.mktemp("silver-gold")
    mp = pytest.MonkeyPatch()
    mp.setenv("LAB_HOME", str(root / "lakehouse"))
    get_settings.cache_clear()
    executed: dict[str, nbformat.NotebookNode] = {}
    try:
        with kernel_env(get_settings()) as env, Kernel(env=env) as kernel:
            params = {"start_date": START, "end_date": END, "run_id": "round-1"}
            execute_notebook(BRONZE_NB, root / "02.ipynb", params, kernel=kernel)
            for label, notebook in (("silver-1", SILVER_NB), ("gold-1", GOLD_NB)):
                executed[label] = execute_notebook(
                    notebook, root / f"{label}.ipynb", params, kernel=kernel
                )
            first = table_states()
            params["run_id"] = "round-2"
            for label, notebook in (("silver-2", SILVER_NB), ("gold-2", GOLD_NB)):
                executed[label] = execute_notebook(
                    notebook, root / f"{label}.ipynb", params, kernel=kernel
                )
            second = table_states()
        yield Lake(root / "lakehouse", executed, first, second)
    finally:
        mp.undo()
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def job_tables(lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> dict[str, TableState]:
    """Round one again, in a LAB_HOME of its own, as `lab run` executes it: as jobs."""
    root = tmp_path_factory.mktemp("silver-gold-job")
    mp = pytest.MonkeyPatch()
    mp.setenv("LAB_HOME", str(root / "lakehouse"))
    get_settings.cache_clear()
    try:
        with kernel_env(get_settings()) as env, Kernel(env=env) as kernel:
            params = {"start_date": START, "end_date": END, "run_id": "round-1"}
            for notebook in (BRONZE_NB, SILVER_NB, GOLD_NB):
                execute_notebook(notebook, root / notebook.name, params, job=True, kernel=kernel)
            return table_states()
    finally:
        mp.undo()
        get_settings.cache_clear()


def stdout(nb: nbformat.NotebookNode) -> str:
    return "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                   for out in cell.get("outputs", []) if out.output_type == "stream")


def bronze_bodies(endpoint: str) -> dict[str, dict[str, Any]]:
    """Every response body of ``endpoint`` in the LAB_HOME, parsed, by bronze key."""
    store = get_store()
    return {key: json.loads(store.get(key)) for key in store.list(f"bronze/coincap/{endpoint}")
            if key.endswith(".json") and not key.endswith(".meta.json")}


def exact(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def plus_one_unit(value: Decimal) -> Decimal:
    """``value`` + 10^-24, the smallest step of PRICE, without Decimal's 28-digit rounding."""
    with decimal.localcontext() as context:
        context.prec = 60
        return value + Decimal("1e-24")


# ----- the runs -----


def test_both_rounds_pass_every_check(lake: Lake) -> None:
    for label, nb in lake.executed.items():
        lines = [ln for ln in stdout(nb).splitlines() if ln.startswith(CHECK_MARKER)]
        assert len(lines) == 4, f"{label} printed {len(lines)} check lines: {lines}"
        assert all(" PASS " in ln for ln in lines), f"{label}: " + "\n".join(lines)


def test_second_round_leaves_every_table_as_it_was(lake: Lake) -> None:
    for name in TABLES:
        before, after = lake.first[name], lake.second[name]
        assert after.rows == before.rows, f"{name} changed on the second run of the same dates"
        assert after.snapshot_ids == before.snapshot_ids, (
            f"{name} got {len(after.snapshot_ids) - len(before.snapshot_ids)} new snapshot(s) "
            "from a run that changed nothing"
        )
    assert "nothing committed" in stdout(lake.executed["gold-2"])


def test_jobs_build_the_same_rows_as_the_lesson(
    lake: Lake, job_tables: dict[str, TableState]
) -> None:
    fetched = {"fetched_at"}  # when bronze fetched the bytes, not what they say

    def rows(state: TableState) -> list[dict[str, Any]]:
        return [{k: v for k, v in row.items() if k not in fetched} for row in state.rows]

    assert sorted(job_tables) == sorted(lake.first)
    for name, state in lake.first.items():
        assert state.rows, f"{name} is empty after the lesson"
        assert rows(job_tables[name]) == rows(state), f"{name}: the job built other rows"


def test_no_table_repeats_a_key(lake: Lake) -> None:
    for name, keys in TABLES.items():
        rows = lake.second[name].rows
        counts = Counter(tuple(row[k] for k in keys) for row in rows)
        assert rows and max(counts.values()) == 1, f"{name} repeats a key"


# ----- silver against bronze -----


def test_price_values_round_trip_from_the_bronze_strings(lake: Lake) -> None:
    points = {(key, p["time"]): p for key, body in bronze_bodies("asset_history").items()
              for p in body["data"]}
    prices = lake.second["silver.asset_prices"].rows
    assert len(prices) == 31 * 24 * 20 + 20 - 4  # March, the Feb 28 23:00 overlap, 4 defects
    for row in prices:
        millis = int(row["observed_at"].timestamp() * 1000)
        point = points[(row["bronze_key"], millis)]
        assert row["price_usd"] == Decimal(point["priceUsd"]), row
        assert row["circulating_supply"] == exact(point["circulatingSupply"]), row
        assert f"asset_id={row['asset_id']}/" in row["bronze_key"]


def test_snapshot_values_round_trip_from_the_bronze_strings(lake: Lake) -> None:
    records = {(key, a["id"]): (a, body["timestamp"])
               for key, body in bronze_bodies("assets").items() for a in body["data"]}
    snapshots = lake.second["silver.asset_snapshots"].rows
    assert len(snapshots) == 31 * 20
    for row in snapshots:
        record, millis = records[(row["bronze_key"], row["asset_id"])]
        for column, field in SNAPSHOT_DECIMALS.items():
            assert row[column] == exact(record[field]), (column, row)
        assert row["rank"] == int(record["rank"])
        assert int(row["snapshot_at"].timestamp() * 1000) == millis
    assets = {row["asset_id"]: row for row in lake.second["silver.assets"].rows}
    assert assets["bitcoin"]["max_supply"] == Decimal("21000000")
    assert assets["ethereum"]["max_supply"] is None


def test_quarantine_holds_the_planted_defects_with_their_reasons(lake: Lake) -> None:
    planted = {(d["asset_id"], d["hour"]): d.get("value")
               for d in MANIFEST["planted_null_price"] + MANIFEST["planted_text_price"]
               if START <= d["hour"][:10] <= END}
    assert len(planted) == 4
    quarantine = lake.second["silver.quarantine"].rows
    assert all(row["reason"].strip() and row["raw_record"] for row in quarantine)
    found = {}
    for row in quarantine:
        point = json.loads(row["raw_record"])
        hour = dt.datetime.fromtimestamp(point["time"] / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M")
        found[(row["asset_id"], hour)] = row
    assert set(found) == set(planted)
    for key, value in planted.items():
        row = found[key]
        assert (row["field"], row["raw_value"]) == ("priceUsd", value)
        why = "priceUsd is null" if value is None else "priceUsd is not a number"
        assert row["reason"] == why
    priced = {(r["asset_id"], r["observed_at"].strftime("%Y-%m-%dT%H:%M"))
              for r in lake.second["silver.asset_prices"].rows}
    assert not priced & set(planted), "a quarantined point also reached silver.asset_prices"


def test_overlap_hour_lands_in_its_own_day_from_the_latest_fetch(lake: Lake) -> None:
    prices = get_catalog().load_table("silver.asset_prices")
    late = prices.scan(row_filter="observed_at = '2025-02-28T23:00:00+00:00'")
    assert len(late.to_arrow()) == 20, "the 23:00 point of Feb 28 (in March 1's files) is missing"
    partitions = {task.file.partition[0] for task in late.plan_files()}
    assert partitions == {(dt.date(2025, 2, 28) - dt.date(1970, 1, 1)).days}
    for row in lake.second["silver.asset_prices"].rows:
        if row["observed_at"].hour == 23 and row["observed_at"].date() < dt.date(2025, 3, 31):
            # fetched twice (its own day's request and the next day's); the next day's is later
            assert row["ingest_date"] == row["observed_at"].date() + dt.timedelta(days=1), row


# ----- gold -----


def test_gold_equals_the_duckdb_recomputation(lake: Lake) -> None:
    assert gold_checks.matches_duckdb(START, END).passed
    rolling = {(r["asset_id"], r["trade_date"]): r for r in lake.second["gold.asset_rolling"].rows}
    last = rolling[("bitcoin", dt.date(2025, 3, 31))]
    assert last["ma_7d_usd"] is not None and last["ma_30d_usd"] is not None
    assert last["volatility_30d"] is not None
    assert rolling[("bitcoin", dt.date(2025, 3, 29))]["volatility_30d"] is None  # 29 returns only


def test_gold_covers_the_dates_and_the_late_day(lake: Lake) -> None:
    days = {row["trade_date"] for row in lake.second["gold.fct_asset_daily"].rows}
    first, last = dt.date(2025, 2, 28), dt.date(2025, 3, 31)
    assert days == {first + dt.timedelta(n) for n in range((last - first).days + 1)}
    ranks = [r["market_cap_rank"] for r in lake.second["gold.daily_rankings"].rows
             if r["trade_date"] == last]
    assert sorted(ranks) == list(range(1, 21))


# ----- every check fails on a wrong answer, with its hint -----


def wrong_copy(source: str, name: str,
               change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] = lambda r: r,
               schema: pa.Schema | None = None, partitioned: bool = True) -> str:
    """``wrong.<name>``: the rows of ``source`` after ``change``, maybe retyped or unpartitioned."""
    from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC

    catalog = get_catalog()
    ensure_namespaces(catalog, ("wrong",))
    identifier = f"wrong.{name}"
    if catalog.table_exists(identifier):
        catalog.drop_table(identifier)
    original = catalog.load_table(source)
    rows = change(original.scan().to_arrow().to_pylist())
    if schema is not None:
        table = catalog.create_table(identifier, schema=schema)
        data = pa.Table.from_pylist(rows, schema=schema)
    else:
        spec = original.spec() if partitioned else UNPARTITIONED_PARTITION_SPEC
        table = catalog.create_table(identifier, schema=original.schema(), partition_spec=spec)
        data = pa.Table.from_pylist(rows, schema=table.schema().as_arrow())
    table.append(data)
    return identifier


def retyped(source: str, column: str, kind: pa.DataType) -> pa.Schema:
    schema = get_catalog().load_table(source).schema().as_arrow()
    index = schema.get_field_index(column)
    return schema.set(index, pa.field(column, kind))


def expect_fail(result: Any, *fragments: str) -> None:
    assert not result.passed, f"the check passed a wrong answer: {result.message}"
    for fragment in fragments:
        assert fragment in result.message, f"{fragment!r} not in the hint: {result.message}"


@mistake("03.1", "double-not-decimal")
@mistake("03.1", "epoch-unit-wrong")
@mistake("03.1", "no-keep-latest")
def test_03_1_catches_doubles_seconds_and_duplicates(lake: Lake) -> None:
    source = "silver.asset_snapshots"
    as_double = wrong_copy(source, "snapshots_double",
                           lambda rows: [r | {"price_usd": float(r["price_usd"])} for r in rows],
                           schema=retyped(source, "price_usd", pa.float64()))
    expect_fail(silver_checks.snapshots_typed(as_double), "price_usd is double", "to_decimal")

    def ms_as_micros(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # epoch milliseconds taken for microseconds: January 1970
        return [r | {"snapshot_at": int(r["snapshot_at"].timestamp() * 1000)} for r in rows]

    early = wrong_copy(source, "snapshots_1970", ms_as_micros,
                       schema=retyped(source, "snapshot_at", pa.timestamp("us", tz="UTC")))
    expect_fail(silver_checks.snapshots_typed(early), "1970", "MILLISECONDS", "timestamp_millis")
    twice = wrong_copy(source, "snapshots_twice", lambda rows: rows + rows[:1])
    expect_fail(silver_checks.snapshots_typed(twice), "occur twice", "keep_latest")
    assert silver_checks.snapshots_typed(source).passed


@mistake("03.2", "insert-every-row")
@mistake("03.2", "last-seen-overwritten")
@mistake("03.2", "no-insert-clause")
def test_03_2_catches_a_wrong_merge(lake: Lake) -> None:
    source = "silver.assets"
    twice = wrong_copy(source, "assets_twice", lambda rows: rows + rows[:1])
    expect_fail(silver_checks.assets_merged(twice), "rows in", "ON t.asset_id = s.asset_id")
    stale = wrong_copy(source, "assets_stale",
                       lambda rows: [r | {"last_seen": r["first_seen"]} for r in rows])
    expect_fail(silver_checks.assets_merged(stale), "last_seen", "greatest")
    missing = wrong_copy(source, "assets_missing", lambda rows: rows[1:])
    expect_fail(silver_checks.assets_merged(missing), "WHEN NOT MATCHED THEN INSERT")


@mistake("03.3", "text-price-not-flagged")
@mistake("03.3", "empty-reason")
def test_03_3_catches_a_lost_defect_and_a_missing_reason(lake: Lake) -> None:
    source = "silver.quarantine"
    lost = wrong_copy(source, "quarantine_lost",
                      lambda rows: [r for r in rows if r["raw_value"] != "n/a"])
    expect_fail(silver_checks.quarantine_reasons(START, END, lost), "xrp", "'n/a'",
                "not in wrong.quarantine_lost")
    blank = wrong_copy(source, "quarantine_blank",
                       lambda rows: [rows[0] | {"reason": " "}, *rows[1:]])
    expect_fail(silver_checks.quarantine_reasons(START, END, blank), "has no reason")


@mistake("03.4", "not-partitioned-by-day")
@mistake("03.4", "no-dedup")
@mistake("03.4", "oldest-fetch-kept")
@mistake("03.4", "clean-point-dropped")
def test_03_4_catches_partitions_duplicates_older_fetches_and_drops(lake: Lake) -> None:
    source = "silver.asset_prices"
    flat = wrong_copy(source, "prices_flat", partitioned=False)
    expect_fail(silver_checks.prices_unique(START, END, flat), "PARTITIONED BY (days(observed_at))")
    march_10 = dt.datetime(2025, 3, 10, 12, tzinfo=dt.UTC)
    twice = wrong_copy(source, "prices_twice",
                       lambda rows: rows + [r for r in rows if r["observed_at"] == march_10])
    expect_fail(silver_checks.prices_unique(START, END, twice), "more than once", "keep_latest")

    def older(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r | {"fetched_at": r["fetched_at"] - dt.timedelta(days=2)}
                if r["observed_at"] == dt.datetime(2025, 3, 10, 23, tzinfo=dt.UTC) else r
                for r in rows]

    stale = wrong_copy(source, "prices_stale", older)
    expect_fail(silver_checks.prices_unique(START, END, stale), "DESCENDING")
    dropped = wrong_copy(source, "prices_dropped",
                         lambda rows: [r for r in rows if r["observed_at"] != march_10])
    expect_fail(silver_checks.prices_unique(START, END, dropped), "missing from")


@mistake("04.4", "mart-left-out")
@mistake("04.4", "one-digit-off")
def test_04_4_catches_a_one_digit_difference(lake: Lake) -> None:
    start, end = dt.date.fromisoformat(START), dt.date.fromisoformat(END)
    reference = gold_checks.recompute(start, end)
    partial = {k: v for k, v in reference.items() if k != "dim_asset"}
    expect_fail(gold_checks.matches_duckdb(START, END, recomputed=partial), "no dim_asset")
    rows = reference["fct_asset_daily"].to_pylist()
    rows[0] = rows[0] | {"avg_usd": plus_one_unit(rows[0]["avg_usd"])}
    nudged = reference | {
        "fct_asset_daily": pa.Table.from_pylist(rows, schema=reference["fct_asset_daily"].schema)
    }
    expect_fail(gold_checks.matches_duckdb(START, END, recomputed=nudged),
                "your DuckDB fct_asset_daily", "avg_usd")
    assert gold_checks.matches_duckdb(START, END, recomputed=reference).passed


# ----- more typical mistakes, table-driven: (exercise, slug) -> the wrong table, the hint -----


def shift_day_near_midnight(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """snapshot_date taken in a time zone east of UTC: late snapshots land on the next day."""
    return [r | {"snapshot_date": r["snapshot_date"] + dt.timedelta(days=1)}
            if r["snapshot_at"].hour >= 22 else r for r in rows]


@mistake("03.1", "snapshot-date-not-utc")
def test_03_1_catches_a_snapshot_date_in_local_time(lake: Lake) -> None:
    source = "silver.asset_snapshots"
    assert any(r["snapshot_at"].hour >= 22 for r in lake.second[source].rows)
    shifted = wrong_copy(source, "snapshots_local", shift_day_near_midnight)
    expect_fail(silver_checks.snapshots_typed(shifted), "does not match snapshot_at", "in UTC")


def first_snapshot_rank(lake: Lake) -> dict[str, int]:
    snaps = sorted(lake.second["silver.asset_snapshots"].rows, key=lambda r: r["snapshot_date"])
    first: dict[str, int] = {}
    for row in snaps:
        first.setdefault(row["asset_id"], row["rank"])
    return first


@mistake("03.2", "older-batch-overwrites")
def test_03_2_catches_a_merge_that_lets_an_older_batch_win(lake: Lake) -> None:
    """WHEN MATCHED THEN UPDATE SET * without the NEWER condition: a re-run of an early day
    writes that day's rank over the latest one."""
    first = first_snapshot_rank(lake)
    latest = {r["asset_id"]: r["rank"] for r in lake.second["silver.assets"].rows}
    assert first != latest, "the sample's ranks never change: this mistake would not show"
    older = wrong_copy("silver.assets", "assets_older",
                       lambda rows: [r | {"rank": first[r["asset_id"]]} for r in rows])
    expect_fail(silver_checks.assets_merged(older), "only when the batch is newer")


@mistake("03.2", "first-seen-overwritten")
def test_03_2_catches_first_seen_taken_from_the_batch(lake: Lake) -> None:
    moved = wrong_copy("silver.assets", "assets_first_seen",
                       lambda rows: [r | {"first_seen": r["last_seen"]} for r in rows])
    expect_fail(silver_checks.assets_merged(moved), "first_seen", "least(t.first_seen")


def test_03_2_names_03_1_once_when_the_snapshots_are_wrong(lake: Lake) -> None:
    source = "silver.asset_snapshots"
    early = wrong_copy(source, "snapshots_upstream",
                       lambda rows: [r | {"snapshot_at": int(r["snapshot_at"].timestamp() * 1000)}
                                     for r in rows],
                       schema=retyped(source, "snapshot_at", pa.timestamp("us", tz="UTC")))
    result = silver_checks.assets_merged("silver.assets", snapshots_table=early)
    expect_fail(result, "fix 03.1 first")
    assert "MILLISECONDS" not in result.message and "first_seen" not in result.message


@mistake("03.3", "flags-fine-values")
def test_03_3_catches_a_rule_that_flags_fine_values(lake: Lake) -> None:
    prices = lake.second["silver.asset_prices"].rows

    def flag_a_fine_point(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        fine = next(p for p in prices if p["ingest_date"] == dt.date(2025, 3, 10))
        index = next(i for i, p in enumerate(json.loads(
            get_store().get(fine["bronze_key"]))["data"])
            if p["time"] == int(fine["observed_at"].timestamp() * 1000))
        return [*rows, rows[0] | {"bronze_key": fine["bronze_key"], "record_index": index,
                                  "field": "circulatingSupply", "reason": "too big"}]

    flagged = wrong_copy("silver.quarantine", "quarantine_fine", flag_a_fine_point)
    expect_fail(silver_checks.quarantine_reasons(START, END, flagged), "its value is fine")


@mistake("03.3", "raw-record-dropped")
def test_03_3_catches_a_quarantine_without_the_source_object(lake: Lake) -> None:
    bare = wrong_copy("silver.quarantine", "quarantine_bare",
                      lambda rows: [r | {"raw_record": None} for r in rows])
    expect_fail(silver_checks.quarantine_reasons(START, END, bare), "no raw_record", "to_json")


def test_03_4_names_03_3_once_when_the_quarantine_is_wrong(lake: Lake) -> None:
    lost = wrong_copy("silver.quarantine", "quarantine_upstream",
                      lambda rows: [r for r in rows if r["raw_value"] != "n/a"])
    result = silver_checks.prices_unique(START, END, quarantine_table=lost)
    expect_fail(result, "fix 03.3 first")
    assert "route bad rows" not in result.message


MARTS = ("dim_asset", "fct_asset_daily", "asset_rolling", "daily_rankings")
Rows = list[dict[str, Any]]


def wrong_gold(mart: str | None = None, change: Callable[[Rows], Rows] = lambda r: r,
               schema: pa.Schema | None = None) -> None:
    """The four marts copied to wrong.*, with ``change`` applied to ``mart``'s rows."""
    for name in MARTS:
        if name == mart:
            wrong_copy(f"gold.{name}", name, change, schema=schema)
        else:
            wrong_copy(f"gold.{name}", name)


def closes(lake: Lake) -> dict[tuple[str, dt.date], Decimal]:
    return {(r["asset_id"], r["trade_date"]): r["close_usd"]
            for r in lake.second["gold.fct_asset_daily"].rows}


def average_over(lake: Lake, days: int, need: int) -> Callable[[Rows], Rows]:
    """ma_7d_usd over ``days`` calendar days, written when at least ``need`` closes are there."""
    by_key = closes(lake)

    def change(rows: Rows) -> Rows:
        out = []
        for r in rows:
            frame = [by_key.get((r["asset_id"], r["trade_date"] - dt.timedelta(days=n)))
                     for n in range(days)]
            values = [v for v in frame if v is not None]
            with decimal.localcontext() as context:
                context.prec = 60
                ma = (sum(values) / len(values)).quantize(Decimal("1e-24")) if len(
                    values) >= need else None
            out.append(r | {"ma_7d_usd": ma})
        return out

    return change


def scaled(column: str, factor: float) -> Callable[[Rows], Rows]:
    return lambda rows: [r | {column: r[column] * factor} if r[column] is not None else r
                         for r in rows]


def close_days_before(lake: Lake, days: int) -> Callable[[Rows], Rows]:
    by_key = closes(lake)
    return lambda rows: [r | {"close_7d_ago_usd": by_key.get(
        (r["asset_id"], r["trade_date"] - dt.timedelta(days=days)))} for r in rows]


def within_day(rows: Rows, column: str, order: Callable[[dict[str, Any]], Any]) -> Rows:
    """``column`` renumbered 1..n within each trade_date in ``order`` (nulls kept)."""
    out = []
    for day in sorted({r["trade_date"] for r in rows}):
        ranked = sorted((r for r in rows if r["trade_date"] == day and r[column] is not None),
                        key=order)
        out += [r | {column: n} for n, r in enumerate(ranked, start=1)]
        out += [r for r in rows if r["trade_date"] == day and r[column] is None]
    return out


GOLD_MISTAKES = [
    pytest.param("fct_asset_daily", lambda lake: lambda rows: [
        r | {"open_usd": r["close_usd"]} for r in rows], None, gold_checks.daily_facts,
        ("open_usd", "min_by"), marks=mistake("04.1", "open-is-close"), id="open-is-close"),
    pytest.param("fct_asset_daily", lambda lake: lambda rows: rows,
                 lambda: retyped("gold.fct_asset_daily", "avg_usd", pa.decimal128(38, 28)),
                 gold_checks.daily_facts, ("avg_usd", "F.avg would give DECIMAL(38,28)"),
                 marks=mistake("04.1", "f-avg-aggregate"), id="f-avg"),
    pytest.param("fct_asset_daily", lambda lake: lambda rows: [
        r | {"high_usd": r["low_usd"], "low_usd": r["high_usd"]} for r in rows], None,
        gold_checks.daily_facts, ("high_usd", "F.max"),
        marks=mistake("04.1", "high-low-swapped"), id="high-low-swapped"),
    pytest.param("fct_asset_daily", lambda lake: lambda rows: [
        r for r in rows if not (r["asset_id"] == "bitcoin"
                                and r["trade_date"] == dt.date(2025, 3, 15))], None,
        gold_checks.daily_facts, ("has no row for", "left joins"),
        marks=mistake("04.1", "inner-join-drops-a-day"), id="inner-join"),
    pytest.param("asset_rolling", lambda lake: average_over(lake, 8, 8), None,
                 gold_checks.rolling_windows, ("ma_7d_usd", "by_day(-6, 0)"),
                 marks=mistake("04.2", "window-one-day-too-long"), id="8-day-window"),
    pytest.param("asset_rolling", lambda lake: average_over(lake, 7, 1), None,
                 gold_checks.rolling_windows, ("ma_7d_usd", "null unless the frame holds 7"),
                 marks=mistake("04.2", "partial-window-average"), id="partial-window"),
    pytest.param("asset_rolling", lambda lake: scaled("volatility_7d", (6 / 7) ** 0.5), None,
                 gold_checks.rolling_windows, ("volatility_7d", "stddev_samp"),
                 marks=mistake("04.2", "population-stddev"), id="stddev-pop"),
    pytest.param("asset_rolling", lambda lake: close_days_before(lake, 6), None,
                 gold_checks.rolling_windows, ("close_7d_ago_usd", "exactly 7 days earlier"),
                 marks=mistake("04.2", "week-ago-off-by-one"), id="week-ago"),
    pytest.param("daily_rankings", lambda lake: lambda rows: [
        r | {"market_cap_rank": n} for n, r in enumerate(sorted(
            rows, key=lambda r: (r["trade_date"], r["market_cap_rank"] or 99)), start=1)],
        None, gold_checks.rankings, ("restart at 1",),
        marks=mistake("04.3", "rank-not-partitioned-by-day"), id="global-rank"),
    pytest.param("daily_rankings", lambda lake: lambda rows: within_day(
        rows, "market_cap_rank", lambda r: (r["market_cap_usd"], r["asset_id"])), None,
        gold_checks.rankings, ("market_cap_rank", "descending"),
        marks=mistake("04.3", "ascending-market-cap"), id="ascending"),
    pytest.param("daily_rankings", lambda lake: lambda rows: [
        r | {"rank_change": -r["rank_change"]} if r["rank_change"] else r for r in rows], None,
        gold_checks.rankings, ("rank_change", "previous day's rank minus today's"),
        marks=mistake("04.3", "rank-change-sign"), id="rank-change-sign"),
    pytest.param("daily_rankings", lambda lake: lambda rows: [
        r | {"gainer_rank": r["loser_rank"], "loser_rank": r["gainer_rank"]} for r in rows],
        None, gold_checks.rankings, ("gainer_rank", "highest to lowest"),
        marks=mistake("04.3", "gainers-ascending"), id="gainers-ascending"),
]


@pytest.mark.parametrize(("mart", "change", "schema", "check", "words"), GOLD_MISTAKES)
def test_gold_mistakes_fail_their_check_with_a_hint(  # type: ignore[no-untyped-def]
    lake: Lake, mart: str, change, schema, check, words: tuple[str, ...]
) -> None:
    wrong_gold(mart, change(lake), schema() if schema else None)
    expect_fail(check(START, END, namespace="wrong"), *words)


def test_gold_checks_pass_the_right_marts_copied(lake: Lake) -> None:
    wrong_gold()
    for check in (gold_checks.daily_facts, gold_checks.rolling_windows, gold_checks.rankings,
                  gold_checks.matches_duckdb):
        result = check(START, END, namespace="wrong")
        assert result.passed, result.message


def test_a_wrong_04_1_is_named_once_by_the_checks_that_build_on_it(lake: Lake) -> None:
    wrong_gold("fct_asset_daily", lambda rows: [r | {"close_usd": r["open_usd"]} for r in rows])
    direct = gold_checks.daily_facts(START, END, namespace="wrong")
    expect_fail(direct, "close_usd", "max_by")
    for check in (gold_checks.rolling_windows, gold_checks.rankings, gold_checks.matches_duckdb):
        result = check(START, END, namespace="wrong")
        expect_fail(result, "fix 04.1 first")
        assert "max_by" not in result.message and "ma_7d_usd" not in result.message


def test_04_4_names_the_exercise_of_the_wrong_mart(lake: Lake) -> None:
    wrong_gold("daily_rankings", lambda rows: [r | {"rank_change": -r["rank_change"]}
                                               if r["rank_change"] else r for r in rows])
    expect_fail(gold_checks.matches_duckdb(START, END, namespace="wrong"), "fix 04.3 first")


@mistake("04.4", "span-not-filtered")
def test_04_4_catches_a_recomputation_of_more_days_than_the_span(lake: Lake) -> None:
    wider = gold_checks.recompute(dt.date(2025, 3, 1) - dt.timedelta(days=1),
                                  dt.date.fromisoformat(END))
    expect_fail(gold_checks.matches_duckdb(START, END, recomputed=wider),
                "your DuckDB", "outside", "WHERE trade_date BETWEEN")
