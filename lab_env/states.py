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

import json
import shutil
from pathlib import Path

from lab_env.config import Settings
from lab_env.errors import LabError

# What the lakehouse is made of; everything else in LAB_HOME (runs/, progress, states/) stays.
PARTS = ("raw", "warehouse", "catalog.db")
COMPLETE = "state.json"  # written last: a state without it was cut short and is rebuilt


def state_dir(settings: Settings, milestone: int) -> Path:
    return settings.lab_home / "states" / f"{milestone:02d}"


def has_state(settings: Settings, milestone: int) -> bool:
    return (state_dir(settings, milestone) / COMPLETE).is_file()


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
    return removed


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target)
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
    record = {"milestone": milestone, "made_by": made_by}
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
