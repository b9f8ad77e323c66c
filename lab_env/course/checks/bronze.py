"""Self-checks for milestone 02 (bronze): they look at the files that really landed.

The layout they hold the learner to is the bronze contract (docs/bronze.md):
``bronze/coincap/<endpoint>/ingest_date=YYYY-MM-DD/[asset_id=<id>/]<name>-<sha16>.json``, a
``<key>.meta.json`` beside each object, and ``bronze/_rejected/coincap/...`` for payloads
that could not be used.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow.fs as pafs

from lab_env.config import get_settings
from lab_env.course.checks import exercise, fail, ok
from lab_env.course.checks._core import _Verdict
from lab_env.lake.storage import ObjectExistsError, RawStore, get_store
from lab_env.paths import BRONZE

REJECTED = "bronze/_rejected/coincap"
META_SUFFIX = ".meta.json"
META_FIELDS = (
    "source", "endpoint", "request", "fetched_at", "run_id", "logical_date",
    "http_status", "record_count", "content_sha256",
)
_SECRET_MARKERS = ("bearer ", "authorization", "apikey", "api_key")


def sha16(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:16]


def expected_key(
    endpoint: str, logical_date: str, body: bytes, asset_id: str | None = None
) -> str:
    """The contract's key for one response body."""
    if endpoint == "assets":
        return f"{BRONZE}/assets/ingest_date={logical_date}/assets-{sha16(body)}.json"
    return (
        f"{BRONZE}/asset_history/ingest_date={logical_date}/asset_id={asset_id}/"
        f"history-{sha16(body)}.json"
    )


def fingerprint(prefix: str = "bronze") -> dict[str, str]:
    """The sha256 of every object under ``prefix``: take one before a re-run, compare after."""
    store = get_store()
    return {key: hashlib.sha256(store.get(key)).hexdigest() for key in store.list(prefix)}


@exercise("02.1", "Bronze keys follow the layout")
def partition_keys(bronze_key: Callable[..., str]) -> _Verdict:
    """Call the learner's key function on known bodies and compare with the contract."""
    bodies = (b'{"data":[],"timestamp":1743465599000}', b'{"data":[{"id":"x"}],"timestamp":0}')
    cases = [
        (("assets", "2025-03-30", bodies[0]), {}, expected_key("assets", "2025-03-30", bodies[0])),
        (("assets", "2025-03-30", bodies[1]), {}, expected_key("assets", "2025-03-30", bodies[1])),
        (
            ("asset_history", "2025-03-31", bodies[0]),
            {"asset_id": "bitcoin"},
            expected_key("asset_history", "2025-03-31", bodies[0], "bitcoin"),
        ),
    ]
    for args, kwargs, want in cases:
        got = bronze_key(*args, **kwargs)
        call = f"bronze_key({args[0]!r}, {args[1]!r}, body{', asset_id=' if kwargs else ''}" + (
            f"{kwargs['asset_id']!r})" if kwargs else ")"
        )
        if not isinstance(got, str):
            return fail(f"{call} returned {type(got).__name__}; return the key as a str.")
        if got == want:
            continue
        if f"ingest_date={args[1]}/" not in got:
            return fail(f"{call} gave {got!r}: partition by the logical date, as "
                        f"'.../ingest_date={args[1]}/...'.")
        if sha16(args[2]) not in got:
            return fail(f"{call} gave {got!r}: name the file after the first 16 hex "
                        f"characters of hashlib.sha256(body).hexdigest().")
        return fail(f"{call} gave {got!r}; the layout wants {want!r}.")
    return ok("assets and asset_history keys match the layout, named by content hash")


@exercise("02.2", "Writing the same content twice changes nothing")
def idempotent_write(write_bronze: Callable[..., Any], key: str) -> _Verdict:
    """Check the object the learner wrote, then write it again: it must be skipped."""
    store = get_store()
    meta_key = key + META_SUFFIX
    if not store.exists(key):
        return fail(f"nothing at {key}: write_bronze must put the body at the key it is given.")
    if not store.exists(meta_key):
        return fail(f"no {meta_key}: write the meta beside the body as <key>{META_SUFFIX}.")
    body = store.get(key)
    meta, problem = _read_meta(store, meta_key)
    if problem or meta is None:
        return fail(problem or "unreadable meta")
    if problem := _meta_problem(meta, body, key):
        return fail(problem)
    partition = key.rsplit("/", 1)[0]
    before = _hashes(store, partition)
    again = {**meta, "fetched_at": dt.datetime.now(dt.UTC).isoformat(), "run_id": "check-02.2"}
    try:
        result = write_bronze(store, key, body, again)
    except ObjectExistsError:
        return fail("write_bronze tried to write over an existing object: check "
                    "store.exists(key) first and return False without writing.")
    after = _hashes(store, partition)
    if changed := _difference(before, after):
        return fail(f"a second write of the same content changed {changed}: skip (write "
                    "nothing) when the key already exists.")
    if result:
        return fail(f"write_bronze returned {result!r} for content that was already there: "
                    "return False when it skips, True when it writes.")
    if problem := _fresh_write_problem(write_bronze, body, meta):
        return fail(problem)
    return ok(f"{key.rsplit('/', 1)[1]} written once with its meta; the second write was skipped")


def _fresh_write_problem(
    write_bronze: Callable[..., Any], body: bytes, meta: dict[str, Any]
) -> str | None:
    """Try the learner's function on a new key in a scratch store: it must write both files."""
    with tempfile.TemporaryDirectory(prefix="check-02.2-") as scratch:
        store = RawStore(pafs.LocalFileSystem(), scratch, f"file://{scratch}")
        key = "probe/ingest_date=2025-01-01/assets-0000000000000000.json"
        if not write_bronze(store, key, body, meta):
            return "write_bronze returned False for a new key: write it and return True."
        if not store.exists(key) or store.get(key) != body:
            return "write_bronze must store the body at the key exactly as received (bytes)."
        if not store.exists(key + META_SUFFIX):
            return f"write_bronze wrote no {META_SUFFIX} beside a new object."
    return None


@exercise("02.3", "Rejected payloads are kept with a reason")
def rejected_kept(body: bytes, endpoint: str, logical_date: str) -> _Verdict:
    """The unusable payload is in the rejected area, unchanged, with a reason, and not in bronze."""
    store = get_store()
    key = f"{REJECTED}/{endpoint}/ingest_date={logical_date}/{sha16(body)}.body"
    if not store.exists(key):
        elsewhere = [k for k in store.list("bronze") if sha16(body) in k]
        if elsewhere:
            return fail(f"the payload landed at {elsewhere[0]}; the rejected area wants {key}.")
        return fail(f"nothing at {key}: keep the body there, named by the first 16 hex "
                    "characters of its sha256.")
    if store.get(key) != body:
        return fail(f"{key} is not the payload as received: store the bytes unchanged.")
    meta_key = key + META_SUFFIX
    if not store.exists(meta_key):
        return fail(f"no {meta_key}: write the meta (with a reason) beside the rejected body.")
    meta, problem = _read_meta(store, meta_key)
    if problem or meta is None:
        return fail(problem or "unreadable meta")
    reason = meta.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        return fail(f"{meta_key} has no 'reason': say why the payload was rejected "
                    "(e.g. the JSON error).")
    if meta.get("content_sha256") != hashlib.sha256(body).hexdigest():
        return fail(f"{meta_key} has the wrong content_sha256: hash the body as received.")
    leaked = [k for k in store.list(BRONZE) if sha16(body) in k]
    if leaked:
        return fail(f"the rejected payload also landed in bronze at {leaked[0]}: unusable "
                    "payloads go only to the rejected area.")
    return ok(f"kept at {key} with reason {reason[:60]!r}")


@exercise("02.4", "Every day landed complete, each object with its meta")
def partitions_complete(
    start_date: str, end_date: str, assets: Sequence[str] = ()
) -> _Verdict:
    """Each logical date has an /assets snapshot and a history per listed asset, all with meta.

    ``assets``: the run fetched histories for these asset ids only (empty: every listed asset).
    """
    store = get_store()
    first, last = dt.date.fromisoformat(start_date), dt.date.fromisoformat(end_date)
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    snapshots = histories = 0
    for day in days:
        logical = day.isoformat()
        assets_prefix = f"{BRONZE}/assets/ingest_date={logical}"
        history_prefix = f"{BRONZE}/asset_history/ingest_date={logical}"
        objects = [
            k for k in store.list(assets_prefix) + store.list(history_prefix)
            if not k.endswith(META_SUFFIX)
        ]
        keys = set(store.list(assets_prefix) + store.list(history_prefix))
        latest: tuple[str, list[Any]] | None = None
        for key in objects:
            if key + META_SUFFIX not in keys:
                return fail(f"{key} has no {META_SUFFIX} beside it: write the meta with every "
                            "object (a run that stopped half-way? re-run the day).")
            body = store.get(key)
            meta, problem = _read_meta(store, key + META_SUFFIX)
            if problem or meta is None:
                return fail(problem or "unreadable meta")
            if problem := _meta_problem(meta, body, key) or _layout_problem(key, meta, logical):
                return fail(problem)
            if meta["endpoint"] == "assets":
                snapshots += 1
                records = _records(body)
                if latest is None or meta["fetched_at"] > latest[0]:
                    latest = (meta["fetched_at"], records)
            else:
                histories += 1
        if latest is None:
            return fail(f"no /assets snapshot under {assets_prefix}/: did the ingest run for "
                        f"{logical} and write with bronze_key?")
        for row in latest[1]:
            asset_id = row.get("id") if isinstance(row, dict) else None
            if assets and asset_id not in assets:
                continue
            folder = f"{history_prefix}/asset_id={asset_id}"
            if asset_id and not any(not k.endswith(META_SUFFIX) for k in store.list(folder)):
                return fail(f"no history for {asset_id} on {logical} although the snapshot lists "
                            f"it: expected an object under {folder}/.")
    return ok(f"{len(days)} day(s): {snapshots} snapshot(s), {histories} histories, "
              "every object with a consistent meta")


@exercise("02.5", "A second run leaves bronze byte-identical")
def rerun_unchanged(before: dict[str, str]) -> _Verdict:
    """Compare bronze now with the fingerprint taken before the re-run."""
    if not before:
        return fail("the fingerprint taken before the re-run is empty: run the ingest first, "
                    "then take checks.bronze.fingerprint() and re-run.")
    after = fingerprint()
    new = sorted(after.keys() - before.keys())
    gone = sorted(before.keys() - after.keys())
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    if changed:
        return fail(f"{changed[0]} changed during the re-run: never overwrite bronze; skip "
                    "when the key exists.")
    if gone:
        return fail(f"{gone[0]} disappeared during the re-run: bronze objects are never deleted.")
    if new:
        return fail(f"the re-run wrote {len(new)} new file(s), e.g. {new[0]}: the same content "
                    "must give the same key (the content hash) and be skipped. (Against the "
                    "live API the content really changes; this check is meant for the replay.)")
    return ok(f"{len(after)} files under bronze, byte-identical after the re-run")


# ----- helpers -----


def _hashes(store: RawStore, prefix: str) -> dict[str, str]:
    return {k: hashlib.sha256(store.get(k)).hexdigest() for k in store.list(prefix)}


def _difference(before: dict[str, str], after: dict[str, str]) -> str | None:
    for key in sorted(before.keys() | after.keys()):
        if before.get(key) != after.get(key):
            return key.rsplit("/", 1)[1]
    return None


def _read_meta(store: RawStore, meta_key: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        meta = json.loads(store.get(meta_key))
    except ValueError:
        return None, f"{meta_key} is not JSON: write json.dumps(meta).encode()."
    if not isinstance(meta, dict):
        return None, f"{meta_key} holds a {type(meta).__name__}; write the meta dict as JSON."
    return meta, None


def _meta_problem(meta: dict[str, Any], body: bytes, key: str) -> str | None:
    """What is wrong with one object's meta, or None."""
    name = key.rsplit("/", 1)[1]
    missing = [f for f in META_FIELDS if f not in meta]
    if missing:
        return f"the meta of {name} lacks {', '.join(missing)}: write every field of make_meta()."
    if meta["content_sha256"] != hashlib.sha256(body).hexdigest():
        return (f"the meta of {name} has a content_sha256 that is not the body's: hash the "
                "bytes exactly as received, and never change a stored body.")
    if sha16(body) not in name:
        return f"{name} is not named by its content hash {sha16(body)}: use bronze_key(...)."
    if _has_secret(meta):
        return (f"the meta of {name} carries credentials (an Authorization header or API key): "
                "store only the path and query parameters.")
    records = _records(body)
    if meta["record_count"] != len(records):
        return (f"the meta of {name} says record_count={meta['record_count']} but the body "
                f"holds {len(records)} records: count len(payload['data']).")
    return None


def _layout_problem(key: str, meta: dict[str, Any], logical: str) -> str | None:
    endpoint = key.removeprefix(f"{BRONZE}/").split("/", 1)[0]
    if meta["endpoint"] != endpoint:
        return f"{key} is under {endpoint}/ but its meta says endpoint={meta['endpoint']!r}."
    if meta["logical_date"] != logical:
        return (f"{key} is in the partition of {logical} but its meta says "
                f"logical_date={meta['logical_date']!r}: partition by the run's logical date.")
    name = key.rsplit("/", 1)[1]
    if endpoint == "asset_history":
        parts = key.split("/")
        if len(parts) != 6 or not parts[4].startswith("asset_id=") or not name.startswith(
            "history-"
        ):
            return (f"{key} does not follow "
                    ".../ingest_date=<date>/asset_id=<id>/history-<sha16>.json.")
        params = meta["request"].get("params", {}) if isinstance(meta["request"], dict) else {}
        midnight = int(dt.datetime.fromisoformat(f"{logical}T00:00:00+00:00").timestamp() * 1000)
        if str(params.get("start")) != str(midnight - 3_600_000):
            return (f"the history request of {key} started at {params.get('start')}, not one "
                    f"hour before {logical} ({midnight - 3_600_000}): use history_window(day).")
    elif not name.startswith("assets-"):
        return f"{key} does not follow .../ingest_date=<date>/assets-<sha16>.json."
    return None


def _records(body: bytes) -> list[Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        return []
    data = payload.get("data") if isinstance(payload, dict) else None
    return data if isinstance(data, list) else []


def _has_secret(meta: dict[str, Any]) -> bool:
    text = json.dumps(meta).lower()
    if any(marker in text for marker in _SECRET_MARKERS):
        return True
    key = get_settings().coincap_api_key
    return bool(key and key.get_secret_value() and key.get_secret_value().lower() in text)
