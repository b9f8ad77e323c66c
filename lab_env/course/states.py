"""Milestone start states: the lakehouse as it is when milestone N begins, kept to start again.

A wrong answer writes to the lakehouse: bronze keeps every object, silver keeps rows by key,
so a corrected answer can still meet what the wrong one wrote. ``lab restore N`` and
``lab check`` therefore put LAB_HOME back to the start of the milestone first. The first time,
the earlier milestones' solutions build that state (``lab restore``'s plan) and it is kept
under ``LAB_HOME/states/NN/``; after that, starting again is a copy of a few megabytes.

Only the local profile keeps states: Iceberg metadata holds absolute paths, so a state is
copied back to exactly where it was taken (``raw/``, ``warehouse/``, ``catalog.db``). Runs,
progress, the lock and the states themselves are never touched.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import sqlite3
from pathlib import Path

from lab_env.config import Settings
from lab_env.errors import LabError

# What the lakehouse is made of; everything else in LAB_HOME (runs/, progress, states/) stays.
CATALOG = "catalog.db"
PARTS = ("raw", "warehouse", CATALOG)
# The catalog is a SQLite database in WAL mode: recent commits can live in catalog.db-wal until
# SQLite checkpoints them, and a WAL left beside a catalog.db put back is replayed into it.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
COMPLETE = "state.json"  # written last: a state without it was cut short and is rebuilt
# States kept before the catalog was copied as a database (a file copy lost what was in the WAL)
# are rebuilt.
FORMAT = 2
STARTED = "started.json"  # the last time the lakehouse was put back to a milestone's start


def state_dir(settings: Settings, milestone: int) -> Path:
    return settings.lab_home / "states" / f"{milestone:02d}"


def has_state(settings: Settings, milestone: int) -> bool:
    try:
        record = json.loads((state_dir(settings, milestone) / COMPLETE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("format") == FORMAT


def _local_only(settings: Settings) -> None:
    if not settings.is_local:
        raise LabError(
            "Milestone start states are kept on the local profile only.",
            "on the compose stack, drop the tables and empty the bucket yourself, then run "
            "lab restore N.",
        )


def clear(settings: Settings) -> list[Path]:
    """Remove the lakehouse (raw files, warehouse, catalog) from LAB_HOME; return what went."""
    _local_only(settings)
    removed = []
    for name in PARTS:
        path = settings.lab_home / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(path)
    for suffix in SQLITE_SIDE_FILES:
        (settings.lab_home / f"{CATALOG}{suffix}").unlink(missing_ok=True)
    return removed


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target)
    elif source.name == CATALOG and source.exists():
        # SQLite's online backup: one consistent copy with what the WAL holds, even while a
        # reader (a JupyterLab kernel's Spark) has the catalog open.
        with (contextlib.closing(sqlite3.connect(source, timeout=30)) as original,
              contextlib.closing(sqlite3.connect(target)) as copy):
            original.backup(copy)
    elif source.exists():
        shutil.copy2(source, target)


def save(settings: Settings, milestone: int, made_by: str) -> Path:
    """Keep the current lakehouse as the start of ``milestone`` (replacing a kept one)."""
    _local_only(settings)
    target = state_dir(settings, milestone)
    building = target.with_name(f"{target.name}.building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    for name in PARTS:
        _copy(settings.lab_home / name, building / name)
    record = {"milestone": milestone, "made_by": made_by, "format": FORMAT}
    (building / COMPLETE).write_text(json.dumps(record) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)
    return target


def load(settings: Settings, milestone: int) -> bool:
    """Put the kept start of ``milestone`` back in LAB_HOME; False when none is kept."""
    _local_only(settings)
    if not has_state(settings, milestone):
        return False
    clear(settings)
    for name in PARTS:
        _copy(state_dir(settings, milestone) / name, settings.lab_home / name)
    return True


def forget(settings: Settings) -> None:
    """Drop every kept state (after the lakehouse was rebuilt differently, e.g. --fresh)."""
    shutil.rmtree(settings.lab_home / "states", ignore_errors=True)


def mark_start(settings: Settings, milestone: int) -> None:
    """Record that the lakehouse was just put back to the start of ``milestone``.

    The checks read it (:func:`last_start`): a failed attempt recorded before this moment wrote
    nothing that is still there.
    """
    record = {"milestone": milestone,
              "at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")}
    folder = settings.lab_home / "states"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STARTED).write_text(json.dumps(record) + "\n")


def last_start(settings: Settings) -> dt.datetime | None:
    """When the lakehouse was last put back to a milestone's start (None: never, here)."""
    path = settings.lab_home / "states" / STARTED
    try:
        return dt.datetime.fromisoformat(json.loads(path.read_text())["at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
