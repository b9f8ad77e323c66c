"""The pyiceberg catalog over the same Iceberg tables that Spark sees."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from lab_env.config import Settings, get_settings
from lab_env.errors import LabError

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

NAMESPACES = ("bronze", "silver", "gold")


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
        where = settings.catalog_db if settings.is_local else settings.rest_uri
        raise LabError(
            f"The Iceberg catalog at {where} could not be opened ({type(exc).__name__}: {exc}).",
            "run `lab doctor` (compose profile: start the stack with `docker compose up -d`).",
        ) from exc


def prepare_local_catalog(settings: Settings) -> None:
    """Make sure LAB_HOME can be written and the SQLite catalog file is in WAL mode."""
    try:
        settings.lab_home.mkdir(parents=True, exist_ok=True)
        probe = settings.lab_home / ".write-probe"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise LabError(
            f"LAB_HOME {settings.lab_home} cannot be written ({exc.strerror}).",
            "set LAB_HOME to a folder you own, e.g. export LAB_HOME=$HOME/lakehouse.",
        ) from None
    _use_wal(settings.catalog_db)


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
