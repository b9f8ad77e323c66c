"""Bronze for an operator: ``lab bronze list`` a day's answers, ``lab bronze retire`` a bad one.

Bronze never changes an object, and a day fetched again keeps every answer it got. Silver and the
quality gate use the *current* answer of each folder (a day's ``/assets``, or one asset's history
of a day): the one fetched last. A bad answer is therefore replaced by the next healthy fetch,
except when that fetch is identical to an answer stored before it: bronze is content-addressed,
so the identical body is skipped, and the bad one stays current. The day is then blocked by the
gate on every run.

Retiring is the way out. It moves the bad answer to ``bronze/_retired/`` with its sidecar, the
reason, when and from where; nothing is deleted. The previous answer becomes current again, and
the next ``lab run`` of the day audits and publishes it::

    lab bronze list --start 2025-03-31                       # which answer is bad, its run id
    lab bronze retire --run <run id> --start 2025-03-31 --reason "nulls from upstream"
    lab run --start 2025-03-31

Silver keeps rows by their fetch time, so rows a retired answer wrote are replaced only by a
newer fetch; when a retired answer had *plausible but wrong* values (not quarantined), rebuild
with ``lab run --full-refresh`` (docs/bronze.md, "Retiring a bad answer").
"""

from __future__ import annotations

import datetime as dt
import errno
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lab_env.dates import check_range
from lab_env.errors import LabError
from lab_env.lake.storage import RawStore
from lab_env.paths import BRONZE
from lab_env.quality.frames import current_responses

RETIRED = "bronze/_retired"
ENDPOINTS = ("assets", "asset_history")


@dataclass(frozen=True)
class Answer:
    """One stored answer of the source, as an operator needs to judge it."""

    key: str
    endpoint: str
    day: str
    asset_id: str | None
    fetched_at: str
    run_id: str
    records: int
    problem: str  # "" when the audit's per-answer rules pass
    current: bool  # the answer silver and the gate use for its folder


def _meta(store: RawStore, key: str) -> dict:
    try:
        meta = json.loads(store.get(f"{key}.meta.json"))
    except (LabError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _problem(body: bytes, endpoint: str) -> tuple[int, str]:
    """How many records the answer holds, and what the gate would object to ('' for nothing)."""
    from lab_env.quality.suites import ASSET_FIELDS, HISTORY_FIELDS

    fields = ASSET_FIELDS if endpoint == "assets" else HISTORY_FIELDS
    try:
        payload = json.loads(body)
    except ValueError:
        return 0, "not JSON"
    records = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(records, list):
        return 0, 'no "data" list'
    rows = [r for r in records if isinstance(r, dict)]
    if len(rows) < len(records):
        return len(records), "records that are not objects"
    missing = sorted({f for r in rows for f in fields if f not in r})
    if missing:
        return len(rows), f"records without {', '.join(missing)}"
    no_price = sum(r.get("priceUsd") is None for r in rows)
    if no_price:
        return len(rows), f"{no_price} of {len(rows)} records have no price"
    return len(rows), ""


def answers(store: RawStore, start: dt.date, end: dt.date) -> list[Answer]:
    """Every stored answer for ``start``..``end``, current ones marked, oldest first per folder."""
    found = []
    day = start
    while day <= end:
        for endpoint in ENDPOINTS:
            listed = store.list(f"{BRONZE}/{endpoint}/ingest_date={day}")
            current = set(current_responses(listed, store))
            for key in listed:
                if not key.endswith(".json") or key.endswith(".meta.json"):
                    continue
                meta = _meta(store, key)
                records, problem = _problem(store.get(key), endpoint)
                asset = key.split("asset_id=", 1)[1].split("/", 1)[0] \
                    if "asset_id=" in key else None
                found.append(Answer(
                    key, endpoint, day.isoformat(), asset, str(meta.get("fetched_at") or ""),
                    str(meta.get("run_id") or ""), records,
                    problem or ("" if meta else "no sidecar"), key in current))
        day += dt.timedelta(days=1)
    return sorted(found, key=lambda a: (a.day, a.endpoint, a.asset_id or "", a.fetched_at, a.key))


def retired_key(key: str) -> str:
    """Where a retired answer goes: the same path under ``bronze/_retired/``."""
    return f"{RETIRED}/{key.removeprefix('bronze/')}"


def retire(store: RawStore, keys: Iterable[str], reason: str,
           now: dt.datetime | None = None) -> list[str]:
    """Move each answer and its sidecar to ``bronze/_retired/``, recording why; return the new keys.

    The retired sidecar is written first, then the answer moved, then the old sidecar removed
    (its content lives on in the retired one): a crash in between leaves the answer current or
    retired, never lost, and running the same retire again finishes the job.
    """
    if not reason.strip():
        raise LabError("A retirement needs a reason.", 'add --reason "what is wrong with it".')
    stamp = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    moved = []
    for key in keys:
        if not key.startswith(f"{BRONZE}/") or not key.endswith(".json") \
                or key.endswith(".meta.json"):
            raise LabError(f"{key!r} is not a bronze answer.",
                           f"give a key under {BRONZE}/ as `lab bronze list` shows it.")
        target = retired_key(key)
        if not store.exists(key):
            if store.exists(target):
                moved.append(target)  # retired before
                continue
            raise LabError(f"No bronze answer {key}.", "copy the key from `lab bronze list`.")
        meta = _meta(store, key)
        if not store.exists(f"{target}.meta.json"):
            record = {**meta, "retired": {"reason": reason, "at": stamp, "from": key}}
            store.put(f"{target}.meta.json", json.dumps(record, indent=2).encode())
        store.move(key, target)
        if store.exists(f"{key}.meta.json"):
            store.remove(f"{key}.meta.json")
        moved.append(target)
    return moved


def keys_of_run(found: Sequence[Answer], run_id: str) -> list[str]:
    return [a.key for a in found if a.run_id == run_id]


def open_store() -> RawStore:
    """The raw store of the current settings; a LAB_HOME that is a file is a one-line error
    (raw/ would look just empty)."""
    from lab_env.config import get_settings
    from lab_env.lake.lock import unusable_home
    from lab_env.lake.storage import make_store

    settings = get_settings()
    home = settings.lab_home
    if settings.is_local and home.exists() and not home.is_dir():
        raise unusable_home(home, NotADirectoryError(errno.ENOTDIR, "Not a directory", str(home)))
    return make_store(settings)


def keys_to_retire(
    store: RawStore,
    keys: Sequence[str],
    run_id: str | None,
    start: dt.date | None,
    end: dt.date | None,
) -> list[str]:
    """The keys given, and with ``run_id`` every answer that run stored on ``start``..``end``."""
    chosen = list(keys)
    if run_id:
        if not start and not end:
            raise LabError("--run needs the day(s) it fetched.", "add --start YYYY-MM-DD.")
        first, last = start or end, end or start
        assert first is not None and last is not None
        check_range(first, last)
        chosen += keys_of_run(answers(store, first, last), run_id)
        if not chosen:
            raise LabError(f"Run {run_id} stored no answer on {first}..{last}.",
                           "see the run ids with lab bronze list --start ...")
    if not chosen:
        raise LabError("Nothing to retire.", "give bronze keys, or --run RUN_ID --start DAY.")
    return chosen
