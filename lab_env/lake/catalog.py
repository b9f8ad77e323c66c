"""The pyiceberg catalog over the same Iceberg tables that Spark sees."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from lab_env.config import Settings, get_settings
from lab_env.errors import LabError

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

NAMESPACES = ("bronze", "silver", "gold")
# What the lab calls a table name: namespace.table
_TABLE_NAME = re.compile(r"^[^.\s]+\.[^.\s]+$")


def catalog_properties(settings: Settings) -> dict[str, str]:
    """pyiceberg's catalog properties for the current profile."""
    if settings.is_local:
        return {
            "type": "sql",
            # Wait for a lock instead of failing at once: Spark holds the same file open.
            "uri": f"sqlite:///{settings.catalog_db}?timeout=30",
            "warehouse": settings.warehouse_uri,
        }
    return {
        "type": "rest",
        "uri": settings.rest_uri,
        "warehouse": settings.warehouse_uri,
        "s3.endpoint": settings.s3_endpoint,
        "s3.access-key-id": settings.s3_access_key,
        "s3.secret-access-key": settings.s3_secret_key.get_secret_value(),
        "s3.region": settings.s3_region,
        "s3.path-style-access": "true",
    }


def get_catalog(settings: Settings | None = None) -> Catalog:
    """A pyiceberg catalog named like Spark's (``lake``), over the same tables."""
    from pyiceberg.catalog import load_catalog

    settings = settings or get_settings()
    if settings.is_local:
        prepare_local_catalog(settings)
    try:
        return load_catalog(settings.catalog_name, **catalog_properties(settings))
    except Exception as exc:
        if settings.is_local:
            raise damaged_catalog(settings, sqlite_reason(exc)) from exc
        raise LabError(
            f"The Iceberg catalog at {settings.rest_uri} could not be opened "
            f"({type(exc).__name__}: {exc}).",
            "start the stack with `docker compose up -d` (without Docker: `lab stack up`), then "
            "run `lab doctor`.",
        ) from exc


def damaged_catalog(settings: Settings, reason: str) -> LabError:
    """The error for a local catalog file that SQLite cannot read."""
    db = settings.catalog_db
    return LabError(
        f"The Iceberg catalog {db} cannot be read ({reason}).",
        f"put back a copy of it if you have one; else move it aside (mv {db} {db}.broken) and "
        "rebuild silver and gold from bronze: lab run --steps silver gold --full-refresh.",
    )


def sqlite_reason(exc: BaseException) -> str:
    """SQLite's own words from an error (SQLAlchemy wraps them), on one line."""
    inner: BaseException | None = exc
    while inner is not None and not isinstance(inner, sqlite3.Error):
        inner = getattr(inner, "orig", None) or inner.__cause__
    return " ".join(str(inner or exc).split())


def prepare_local_catalog(settings: Settings) -> None:
    """Make sure LAB_HOME can be written and the SQLite catalog file is in WAL mode."""
    try:
        settings.lab_home.mkdir(parents=True, exist_ok=True)
        probe = settings.lab_home / ".write-probe"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        from lab_env.lake.lock import unusable_home

        raise unusable_home(settings.lab_home, exc) from None
    try:
        _use_wal(settings.catalog_db)
    except sqlite3.DatabaseError as exc:  # e.g. "file is not a database"
        raise damaged_catalog(settings, str(exc)) from None


def _use_wal(db: Path) -> None:
    """Put the SQLite catalog in WAL mode (kept in the file), so Spark's open readers
    do not block pyiceberg's commits and the other way round."""
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=WAL")


def ensure_namespaces(catalog: Catalog, names: tuple[str, ...] = NAMESPACES) -> list[str]:
    """Create the lakehouse namespaces that do not exist yet; return the ones created."""
    existing = {ns[0] for ns in catalog.list_namespaces()}
    created = [name for name in names if name not in existing]
    for name in created:
        catalog.create_namespace_if_not_exists(name)
    return created


def load_table(name: str, catalog: Catalog | None = None, example: str = "silver.asset_prices"
               ) -> Table:
    """The table ``namespace.table``, or a LabError saying what is wrong and what to do.

    ``example`` is shown in the fix of a wrong name (a command, e.g. ``lab lineage silver.x``).
    """
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    wrong_name = LabError(f"No table {name!r} in the catalog.",
                          f"name it as namespace.table, e.g. `{example}`.")
    if not _TABLE_NAME.match(name):
        raise wrong_name
    catalog = catalog or get_catalog()
    try:
        return catalog.load_table(name)
    except (NoSuchTableError, NoSuchNamespaceError):
        raise wrong_name from None
    except Exception as exc:  # the pointer is there, the metadata file it points at is not
        raise unreadable_metadata(name, exc) from exc


def unreadable_metadata(name: str, exc: BaseException, settings: Settings | None = None
                        ) -> LabError:
    """The error for a table whose current metadata file cannot be read."""
    settings = settings or get_settings()
    current, previous = metadata_pointers(settings, name)
    reason = " ".join(str(exc).split()[:12])
    where = f" {current}" if current else ""
    if previous:
        fix = (f"put back a copy of that file, or go back one commit to {previous}: python -c "
               f"\"from lab_env.lake.catalog import roll_back_metadata as r; r('{name}')\"")
    else:
        fix = ("put back a copy of that file, or rebuild the table from bronze: "
               "lab run --steps silver gold --full-refresh")
    return LabError(
        f"The metadata of {name}{where} cannot be read ({type(exc).__name__}: {reason}).",
        f"{fix}. Details: docs/maintenance.md.",
    )


def metadata_pointers(settings: Settings, name: str) -> tuple[str | None, str | None]:
    """The current and previous metadata files the local catalog holds for ``name``
    ((None, None) on the compose profile, or for a table it does not hold)."""
    if not settings.is_local or "." not in name or not settings.catalog_db.is_file():
        return None, None
    namespace, table = name.rsplit(".", 1)
    try:
        with contextlib.closing(sqlite3.connect(settings.catalog_db, timeout=30)) as conn:
            row = conn.execute(
                "SELECT metadata_location, previous_metadata_location FROM iceberg_tables "
                "WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?",
                (settings.catalog_name, namespace, table),
            ).fetchone()
    except sqlite3.Error:
        return None, None
    return (row[0], row[1]) if row else (None, None)


def roll_back_metadata(name: str, settings: Settings | None = None) -> str:
    """Point a table of the local catalog back at its previous metadata file; return it.

    The repair for a current metadata file that was damaged (the commit it recorded is lost;
    its data files become orphans). Refused when the previous file is unreadable too.
    """
    from pyiceberg.io import load_file_io
    from pyiceberg.serializers import FromInputFile

    settings = settings or get_settings()
    current, previous = metadata_pointers(settings, name)
    if not settings.is_local:
        raise LabError("Rolling back metadata by hand is for the local catalog only.",
                       "on the compose stack, restore the metadata file in MinIO from a copy.")
    if current is None:
        raise LabError(f"No table {name!r} in the catalog {settings.catalog_db}.",
                       "name it as namespace.table, e.g. silver.asset_prices.")
    if previous is None:
        raise LabError(f"{name} has no metadata before {current}.",
                       "put back a copy of that file, or rebuild the table from bronze.")
    try:
        FromInputFile.table_metadata(load_file_io(location=previous).new_input(previous))
    except Exception as exc:
        raise LabError(f"The previous metadata of {name}, {previous}, cannot be read either "
                       f"({type(exc).__name__}).",
                       "put back copies of the metadata files, or rebuild the table.") from None
    namespace, table = name.rsplit(".", 1)
    with contextlib.closing(sqlite3.connect(settings.catalog_db, timeout=30)) as conn, conn:
        conn.execute(
            "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = NULL "
            "WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? "
            "AND metadata_location = ?",
            (previous, settings.catalog_name, namespace, table, current),
        )
    return previous


def warehouse_tables(settings: Settings) -> list[str]:
    """``namespace.table`` of every table folder with metadata in the local warehouse."""
    if not settings.is_local:
        return []
    root = Path(urlparse(settings.warehouse_uri).path)
    found = {
        f"{meta.parents[1].name.removesuffix('.db')}.{meta.parent.name}"
        for meta in root.glob("*/*/metadata")
        if meta.is_dir() and any(meta.glob("*.metadata.json"))
    }
    return sorted(found)
