"""Self-checks for 03 silver: they read the real Iceberg tables (pyiceberg) and the bronze files.

The rules a silver table must follow are re-derived here from bronze, independently of the
notebook: which values are typable, which version of a duplicated point is the latest.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from lab_env.course.checks._core import (
    _Verdict,
    exercise,
    fail,
    kernel_namespace,
    learner_cell,
    ok,
    replay,
    upstream_first,
)
from lab_env.errors import LabError
from lab_env.lake.catalog import get_catalog
from lab_env.lake.storage import get_store
from lab_env.paths import BRONZE

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import Table

NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$")
# The notebook's two exact types, as pyiceberg prints them, and the strings that fit them.
PRICE = "decimal(38, 24)"
AMOUNT = "decimal(38, 18)"
FITS = {
    PRICE: re.compile(r"^-?[0-9]{1,14}(\.[0-9]{1,24})?$"),
    AMOUNT: re.compile(r"^-?[0-9]{1,20}(\.[0-9]{1,18})?$"),
}
TYPE_NAMES = {PRICE: "PRICE = DecimalType(38, 24)", AMOUNT: "AMOUNT = DecimalType(38, 18)"}


def load_table(name: str) -> Table:
    """An Iceberg table, or a LabError that says which cell creates it."""
    catalog = get_catalog()
    if not catalog.table_exists(name):
        raise LabError(f"Table {name} does not exist yet.", "run the cells above that create it.")
    return catalog.load_table(name)


def type_hint(table: Table, column: str, expected: str) -> str | None:
    """A hint when ``column`` is missing or not of the ``expected`` Iceberg type, else None."""
    try:
        actual = str(table.schema().find_field(column).field_type)
    except ValueError:
        return f"{table.name()[-1]} has no column {column!r}: check the names in the select."
    if actual == expected:
        return None
    if expected in TYPE_NAMES:
        name = TYPE_NAMES[expected]
        if actual == "double":
            short = name.split(" ", 1)[0]
            return (f"{column} is double: cast the string with to_decimal(raw, {short}), never "
                    "through a float, which cannot hold 0.1 exactly.")
        if actual == "string":
            return f"{column} is still a string: pass the raw value through to_decimal."
        return f"{column} is {actual}: type it as {name}."
    if expected == "timestamptz":
        return (f"{column} is {actual}: epoch milliseconds become a TIMESTAMP with "
                "F.timestamp_millis(...).")
    return f"{column} is {actual}, expected {expected}."


def year_hint(rows: pa.Table, column: str) -> str | None:
    """A hint when timestamps are implausible (epoch ms read as seconds, or the reverse)."""
    import pyarrow.compute as pc

    # Arrow computes the years even past 9999, where Python's datetime gives up.
    years = pc.min_max(pc.year(rows.column(column))).as_py()
    if years["min"] is None:
        return None
    if years["min"] < 2009 or years["max"] > 2100:
        odd = years["min"] if years["min"] < 2009 else years["max"]
        return (f"{column} has values in the year {odd}: the API sends epoch MILLISECONDS; "
                "use F.timestamp_millis, not from_unixtime or a cast (they expect seconds).")
    return None


def duplicate_keys(rows: pa.Table, keys: list[str]) -> tuple[int, tuple[Any, ...] | None]:
    """How many key values occur more than once, and one example."""
    counts = Counter(zip(*(rows.column(k).to_pylist() for k in keys), strict=True))
    dupes = [key for key, n in counts.items() if n > 1]
    return len(dupes), (dupes[0] if dupes else None)


@dataclass(frozen=True)
class BronzeRecord:
    """One history point as bronze holds it, with where it came from."""

    bronze_key: str
    record_index: int
    asset_id: str
    fetched_at: dt.datetime
    raw: dict[str, Any]

    @property
    def observed_at(self) -> dt.datetime | None:
        ms = self.raw.get("time")
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC) if isinstance(ms, int) else None


def partition_date(key: str) -> dt.date:
    return dt.date.fromisoformat(key.split("ingest_date=", 1)[1][:10])


def bronze_history(start: dt.date, end: dt.date) -> Iterator[BronzeRecord]:
    """Every history point in the parseable bronze files of ``start``..``end``."""
    store = get_store()
    for key in store.list(f"{BRONZE}/asset_history"):
        if not key.endswith(".json") or key.endswith(".meta.json"):
            continue
        if not start <= partition_date(key) <= end:
            continue
        meta = json.loads(store.get(f"{key}.meta.json"))
        try:
            body = json.loads(store.get(key))
        except ValueError:
            continue
        fetched = dt.datetime.fromisoformat(meta["fetched_at"].replace("Z", "+00:00"))
        match = re.search(r"asset_id=([^/]+)/", key)
        asset_id = match.group(1) if match else ""
        for index, raw in enumerate(body.get("data") or []):
            yield BronzeRecord(key, index, asset_id, fetched, raw)


def point_problems(raw: dict[str, Any]) -> dict[str, str]:
    """The fields of a history point that silver must quarantine, with a reason each."""
    found: dict[str, str] = {}
    price = raw.get("priceUsd")
    if price is None:
        found["priceUsd"] = "null"
    elif not NUMBER.match(str(price)):
        found["priceUsd"] = "not a number"
    elif not FITS[PRICE].match(str(price)):
        found["priceUsd"] = "too many digits"
    elif Decimal(str(price)) <= 0:
        found["priceUsd"] = "not positive"
    supply = raw.get("circulatingSupply")
    if supply is not None and not FITS[AMOUNT].match(str(supply)):
        found["circulatingSupply"] = "not an exact number"
    if raw.get("time") is None:
        found["time"] = "null"
    return found


def _dates(start_date: str, end_date: str) -> tuple[dt.date, dt.date]:
    return dt.date.fromisoformat(start_date), dt.date.fromisoformat(end_date)


@exercise("03.1", "Snapshot values are typed exactly")
def snapshots_typed(table: str = "silver.asset_snapshots") -> _Verdict:
    """Amounts are DECIMAL(38,18), rank an int, times real UTC instants, one row per key."""
    return _snapshots_verdict(table)


def _snapshots_verdict(table: str) -> _Verdict:
    snapshots = load_table(table)
    expected = {"snapshot_at": "timestamptz", "snapshot_date": "date", "rank": "int"}
    expected |= {c: PRICE for c in ("price_usd", "vwap_24h", "change_percent_24h")}
    expected |= {c: AMOUNT for c in ("supply", "market_cap_usd", "volume_usd_24h")}
    for column, kind in expected.items():
        hint = type_hint(snapshots, column, kind)
        if hint:
            return fail(hint)
    rows = snapshots.scan().to_arrow()
    if rows.num_rows == 0:
        return fail(f"{table} is empty: did the upsert cell run after typed_snapshots?")
    hint = year_hint(rows, "snapshot_at")
    if hint:
        return fail(hint)
    at = rows.column("snapshot_at").to_pylist()
    days = rows.column("snapshot_date").to_pylist()
    wrong_day = next(((a, d) for a, d in zip(at, days, strict=True) if a.date() != d), None)
    if wrong_day:
        return fail(f"snapshot_date {wrong_day[1]} does not match snapshot_at {wrong_day[0]}: "
                    "snapshot_date is F.to_date of snapshot_at (in UTC).")
    count, example = duplicate_keys(rows, ["asset_id", "snapshot_date"])
    if count:
        return fail(f"{count} (asset_id, snapshot_date) keys occur twice, e.g. {example}: "
                    "keep one version per key (keep_latest).")
    return ok(f"{rows.num_rows} snapshot rows; exact PRICE and AMOUNT decimals, UTC times, "
              "one row per key")


@exercise("03.2", "MERGE keeps one current row per asset")
def assets_merged(table: str = "silver.assets",
                  snapshots_table: str = "silver.asset_snapshots") -> _Verdict:
    """One row per asset seen in the snapshots, with its first/last sighting and latest rank."""
    if not _snapshots_verdict(snapshots_table).passed:
        return upstream_first("03.1", snapshots_table)
    assets = load_table(table)
    hint = type_hint(assets, "max_supply", AMOUNT)
    if hint:
        return fail(hint)
    rows = assets.scan().to_arrow().to_pylist()
    snaps = load_table(snapshots_table).scan(
        selected_fields=("asset_id", "snapshot_date", "snapshot_at", "rank")
    ).to_arrow().to_pylist()
    counts = Counter(r["asset_id"] for r in rows)
    twice = [a for a, n in counts.items() if n > 1]
    if twice:
        return fail(f"{twice[0]} has {counts[twice[0]]} rows in {table}: MERGE must match on "
                    "asset_id (ON t.asset_id = s.asset_id), not INSERT every batch row.")
    seen: dict[str, list[dict[str, Any]]] = {}
    for snap in snaps:
        seen.setdefault(snap["asset_id"], []).append(snap)
    missing = sorted(set(seen) - set(counts))
    if missing:
        return fail(f"{missing[0]} is in {snapshots_table} but not in {table}: "
                    "add WHEN NOT MATCHED THEN INSERT *.")
    for row in rows:
        history = seen.get(row["asset_id"])
        if not history:
            continue
        first = min(s["snapshot_at"] for s in history)
        last = max(s["snapshot_at"] for s in history)
        if row["first_seen"] != first:
            return fail(f"first_seen of {row['asset_id']} is {row['first_seen']} but its first "
                        f"snapshot is {first}: first_seen = least(t.first_seen, s.first_seen).")
        if row["last_seen"] != last:
            return fail(f"last_seen of {row['asset_id']} is {row['last_seen']} but its latest "
                        f"snapshot is {last}: last_seen = greatest(t.last_seen, s.last_seen).")
        latest = max(history, key=lambda s: s["snapshot_date"])
        if row["rank"] != latest["rank"]:
            return fail(f"rank of {row['asset_id']} is {row['rank']} but its latest snapshot "
                        f"({latest['snapshot_date']}) says {latest['rank']}: take the batch's "
                        "attributes only when the batch is newer, and then do take them.")
    return ok(f"{len(rows)} assets, one row each, first/last seen and rank match the snapshots")


# Values the sample never holds, so the check plants them: (priceUsd string, why it is bad).
PLANTED_PRICES = (("0", "zero"), ("-2.5", "negative"))
# typed_points as the notebook builds them, outside a notebook
PLANTED_SHAPE = ("bronze_key STRING, record_index INT, asset_id STRING, raw STRUCT<priceUsd: "
                 "STRING, circulatingSupply: STRING, time: BIGINT>, observed_at TIMESTAMP, "
                 "price_usd DECIMAL(38,24), circulating_supply DECIMAL(38,18)")


@exercise("03.3", "Bad values go to quarantine with a reason")
def quarantine_reasons(start_date: str, end_date: str, table: str = "silver.quarantine",
                       rules: Callable[[Any], Any] | None = None) -> _Verdict:
    """Every untypable history value of the dates is quarantined, with a reason; nothing else is.

    ``rules`` turns typed points into checked points (the learner's ``checked_points``); the
    check feeds it prices the sample never has (zero, negative). In a notebook it re-runs the
    learner's cell on those planted points itself.
    """
    start, end = _dates(start_date, end_date)
    verdict, bad_values = _quarantine_verdict(start, end, table)
    if verdict is not None:
        return verdict
    if rules is None:
        rules = _learner_rules()
    if rules is not None and (
        problem := planted_price_problem(rules, getattr(rules, "schema", None))
    ):
        return fail(problem)
    return ok(f"{bad_values} bad values of {start}..{end} are in quarantine, each with a reason")


def _quarantine_verdict(start: dt.date, end: dt.date, table: str) -> tuple[_Verdict | None, int]:
    """A fail verdict if the quarantine table of the dates is not right, and the bad values."""
    quarantine = load_table(table).scan().to_arrow().to_pylist()
    for row in quarantine:
        if not (row["reason"] or "").strip():
            return fail(f"a quarantine row for {row['bronze_key']} has no reason: say why the "
                        "value was rejected, e.g. 'priceUsd is null'."), 0
        if row["raw_record"] is None:
            return fail(f"a quarantine row for {row['bronze_key']} has no raw_record: keep the "
                        "whole source object (to_json of raw) so it can be inspected later."), 0
    stored = {(r["bronze_key"], r["record_index"], r["field"]) for r in quarantine
              if r["source"] == "asset_history"}
    expected: dict[tuple[str, int, str], tuple[BronzeRecord, str]] = {}
    keys_in_range = set()
    for record in bronze_history(start, end):
        keys_in_range.add(record.bronze_key)
        for field, why in point_problems(record.raw).items():
            expected[(record.bronze_key, record.record_index, field)] = (record, why)
    for key, (record, why) in expected.items():
        if key not in stored:
            value = record.raw.get(key[2])
            return fail(f"{record.asset_id} point {record.record_index} of {record.bronze_key} has "
                        f"{key[2]}={value!r} ({why}) but is not in {table}: add a rule for it to "
                        "checked_points, so it is quarantined instead of lost."), 0
    extra = [k for k in stored if k[0] in keys_in_range and k not in expected and k[1] >= 0]
    if extra:
        bronze_key, index, field = extra[0]
        return fail(f"point {index} of {bronze_key} was quarantined for {field}, but its value is "
                    "fine: check that each rule flags only the values it describes."), 0
    return None, len(expected)


def planted_points(schema: Any = None) -> Any:
    """Typed history points with the prices of PLANTED_PRICES, shaped like ``schema``."""
    from pyspark.sql.types import StructType

    from lab_env.lake.spark import get_spark

    spark = get_spark()
    schema = schema or spark.createDataFrame([], PLANTED_SHAPE).schema

    def shaped(kind: StructType, values: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(shaped(f.dataType, values[f.name]) if isinstance(f.dataType, StructType)
                     and isinstance(values.get(f.name), dict) else values.get(f.name)
                     for f in kind.fields)

    rows = []
    for n, (price, _) in enumerate(PLANTED_PRICES):
        at = dt.datetime(2025, 3, 31, n, tzinfo=dt.UTC)
        rows.append(shaped(schema, {
            "bronze_key": f"check/planted-{n}.json", "record_index": n, "asset_id": "planted",
            "raw": {"priceUsd": price, "circulatingSupply": "1000",
                    "time": int(at.timestamp() * 1000)},
            "observed_at": at, "price_usd": Decimal(price), "circulating_supply": Decimal(1000),
        }))
    return spark.createDataFrame(rows, schema)


def planted_price_problem(rules: Callable[[Any], Any], schema: Any = None) -> str | None:
    """Feed the rules points with prices the sample never has; a hint if one gets through."""
    checked = rules(planted_points(schema))
    found = {r["record_index"]: r["problems"] or [] for r in
             checked.select("record_index", "problems").collect()}
    for n, (price, what) in enumerate(PLANTED_PRICES):
        if "priceUsd" not in [p["field"] for p in found.get(n, [])]:
            return (f"a {what} price (priceUsd={price!r}) passes your rules: zero and negative "
                    "prices are not prices; add problem('priceUsd', ..., 'priceUsd is not "
                    "positive') for price_usd <= 0. The sample has no such price, so the check "
                    "planted one.")
    return None


def _learner_rules() -> Callable[[Any], Any] | None:
    """The learner's checked_points cell, re-run on planted points (in a notebook only)."""
    source = learner_cell("checked_points", assigns="checked_points")
    namespace = kernel_namespace()
    if source is None or "typed_points" not in namespace:
        return None

    def rules(typed: Any) -> Any:
        scope = dict(namespace, typed_points=typed)
        return replay(source, scope, until="checked_points")["checked_points"]

    rules.schema = namespace["typed_points"].schema  # type: ignore[attr-defined]
    return rules


@exercise("03.4", "One price row per asset and hour, the latest fetch, nothing dropped")
def prices_unique(start_date: str, end_date: str, table: str = "silver.asset_prices",
                  quarantine_table: str = "silver.quarantine") -> _Verdict:
    """Typed, day-partitioned, unique keys, latest fetch kept, every bronze point accounted for."""
    from pyiceberg.transforms import DayTransform

    start, end = _dates(start_date, end_date)
    if _quarantine_verdict(start, end, quarantine_table)[0] is not None:
        return upstream_first("03.3", quarantine_table)
    prices = load_table(table)
    for column, kind in (("observed_at", "timestamptz"), ("price_usd", PRICE),
                         ("circulating_supply", AMOUNT)):
        hint = type_hint(prices, column, kind)
        if hint:
            return fail(hint)
    fields = prices.spec().fields
    source = prices.schema().find_field("observed_at").field_id
    if not (len(fields) == 1 and fields[0].source_id == source
            and isinstance(fields[0].transform, DayTransform)):
        spec = ", ".join(str(f.transform) for f in fields) or "nothing"
        return fail(f"{table} is partitioned by {spec}: "
                    "create it PARTITIONED BY (days(observed_at)).")
    hint = year_hint(prices.scan(selected_fields=("observed_at",)).to_arrow(), "observed_at")
    if hint:
        return fail(hint)
    # Points of the range may observe the day before (the overlap hour): read one day more.
    lo = dt.datetime.combine(start - dt.timedelta(days=1), dt.time(), dt.UTC)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC)
    rows = prices.scan(row_filter=f"observed_at >= '{lo.isoformat()}' AND "
                                  f"observed_at < '{hi.isoformat()}'").to_arrow()
    count, example = duplicate_keys(rows, ["asset_id", "observed_at"])
    if count:
        return fail(f"{count} (asset_id, observed_at) keys occur more than once, e.g. {example}: "
                    "keep row_number() == 1 over Window.partitionBy('asset_id', 'observed_at') "
                    "ordered by fetched_at descending (keep_latest).")
    stored = {(r["asset_id"], r["observed_at"]): r for r in rows.to_pylist()}
    quarantined = {(r["bronze_key"], r["record_index"])
                   for r in load_table(quarantine_table).scan(
                       selected_fields=("bronze_key", "record_index")).to_arrow().to_pylist()}
    latest: dict[tuple[str, dt.datetime | None], BronzeRecord] = {}
    points = 0
    for record in bronze_history(start, end):
        points += 1
        key = (record.asset_id, record.observed_at)
        if point_problems(record.raw):
            if (record.bronze_key, record.record_index) not in quarantined:
                return fail(f"{record.asset_id} at {record.observed_at} ({record.bronze_key}) is "
                            "neither in silver nor in quarantine: route bad rows to quarantine.")
            continue
        if key not in stored:
            return fail(f"{record.asset_id} at {record.observed_at} is a clean bronze point but is "
                        f"missing from {table}: did a filter or join drop it?")
        if key not in latest or record.fetched_at > latest[key].fetched_at:
            latest[key] = record
    for key, record in latest.items():
        row = stored[key]
        if row["fetched_at"] < record.fetched_at:
            return fail(f"{key[0]} at {key[1]} kept the version fetched at {row['fetched_at']}, "
                        f"but one fetched at {record.fetched_at} exists: order the window by "
                        "fetched_at DESCENDING, so row 1 is the latest.")
        if row["fetched_at"] == record.fetched_at and row["price_usd"] != Decimal(
            record.raw["priceUsd"]
        ):
            return fail(f"price_usd of {key[0]} at {key[1]} is {row['price_usd']} but bronze says "
                        f"{record.raw['priceUsd']!r}: cast the string straight to PRICE, "
                        "never through a double.")
    return ok(f"{points} bronze points of {start}..{end}: {len(latest)} unique in silver, "
              "the rest quarantined or older duplicates; day partitions; latest fetch kept")
