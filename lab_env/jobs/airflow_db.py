"""Airflow's metadata database on SQLite, written by the scheduler and `airflow` commands at once.

`airflow standalone` keeps its metadata in SQLite, which lets one writer in at a time. A command
such as `airflow backfill create` writes while the scheduler does; with Python's default wait of
5 s for the lock, a busy machine saw `sqlite3.OperationalError: database is locked` and the
command failed. With ``ENV`` set (the compose service and the tests set it), every connection of
Airflow's waits up to a minute for the lock instead. A transaction that SQLite refuses at once
rather than letting it wait (waiting could deadlock, or its WAL read snapshot went stale) still
fails with the same message and nothing committed: run the command again (tests/test_backfill.py
does). Production Airflow belongs on Postgres, as in the compose stack.
"""

from __future__ import annotations

from typing import Any

LOCK_WAIT_S = 60
CONNECT_ARGS: dict[str, Any] = {"timeout": LOCK_WAIT_S}  # sqlite3.connect
ASYNC_CONNECT_ARGS: dict[str, Any] = {"timeout": LOCK_WAIT_S}  # aiosqlite.connect

ENV = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": f"{__name__}.CONNECT_ARGS",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": f"{__name__}.ASYNC_CONNECT_ARGS",
}
