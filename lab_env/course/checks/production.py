"""Self-checks for milestone 05 (production runs): real runs, real tables, real lineage.

* 05.1 the dates a run of ``dags/lakehouse_daily.py`` processes, by its documented rules;
* 05.2 which run committed the current state of a table (its snapshot summary);
* 05.3 a re-run of processed dates leaves every silver and gold table as it was.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lab_env.course.checks._core import _Verdict, exercise, fail, ok
from lab_env.lake.catalog import get_catalog

if TYPE_CHECKING:
    from lab_env.jobs.runner import RunSummary

NAMESPACES = ("silver", "gold")
LINEAGE_TABLES = ("silver.asset_prices", "gold.fct_asset_daily")
UTC = dt.UTC
NO_PARAMS: dict[str, Any] = {"start_date": None, "end_date": None, "full_refresh": False}


@dataclass(frozen=True)
class WindowCase:
    """One DAG run: its logical date and params, and the days it must process."""

    what: str
    logical_date: dt.datetime | None
    params: dict[str, Any]
    days: tuple[str, ...] | None  # None: the run cannot work out its dates and must raise


def _days(first: str, last: str) -> tuple[str, ...]:
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return tuple((start + dt.timedelta(days=n)).isoformat() for n in range((end - start).days + 1))


# The rules of lakehouse_daily's _window, as its docstring states them; tests hold them equal.
WINDOW_CASES: tuple[WindowCase, ...] = (
    WindowCase("a scheduled run (params left at their defaults)",
               dt.datetime(2025, 3, 29, tzinfo=UTC), NO_PARAMS, ("2025-03-29",)),
    WindowCase("a run triggered by hand at 14:37 UTC",
               dt.datetime(2025, 3, 29, 14, 37, tzinfo=UTC), NO_PARAMS, ("2025-03-29",)),
    WindowCase("a run with start_date and end_date params",
               dt.datetime(2025, 3, 29, tzinfo=UTC),
               {**NO_PARAMS, "start_date": "2025-03-01", "end_date": "2025-03-03"},
               _days("2025-03-01", "2025-03-03")),
    WindowCase("a run with only start_date",
               dt.datetime(2025, 3, 29, tzinfo=UTC),
               {**NO_PARAMS, "start_date": "2025-03-05"}, ("2025-03-05",)),
    WindowCase("a run with only end_date",
               dt.datetime(2025, 3, 29, tzinfo=UTC),
               {**NO_PARAMS, "end_date": "2025-03-31"}, _days("2025-03-29", "2025-03-31")),
    WindowCase("a run without a logical date (Airflow 3 manual trigger), with params",
               None, {**NO_PARAMS, "start_date": "2025-02-10", "end_date": "2025-02-11"},
               _days("2025-02-10", "2025-02-11")),
    WindowCase("a run without a logical date and without params", None, NO_PARAMS, None),
)


def _as_days(value: Any) -> tuple[str, ...] | None:
    """The learner's answer as ISO date strings, or None if it is not a list of dates."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return None
    days = []
    for item in value:
        if isinstance(item, dt.datetime):
            return None  # a datetime is not a day: the hint says so
        if isinstance(item, dt.date):
            days.append(item.isoformat())
        elif isinstance(item, str):
            days.append(item)
        else:
            return None
    return tuple(days)


@exercise("05.1", "The dates a DAG run processes")
def run_window(days_to_process: Callable[[dt.datetime | None, dict[str, Any]], Any]) -> _Verdict:
    """Call the learner's function on the runs of WINDOW_CASES and compare the days."""
    for case in WINDOW_CASES:
        call = f"days_to_process({case.logical_date!r}, {case.params!r})"
        try:
            got = days_to_process(case.logical_date, dict(case.params))
        except ValueError:
            if case.days is None:
                continue
            return fail(f"{case.what}: {call} raised ValueError, but the run has dates: "
                        f"expected {list(case.days)}.")
        if case.days is None:
            return fail(f"{case.what}: {call} returned {got!r}; with neither a logical date nor "
                        "a start_date there is nothing to process: raise ValueError.")
        days = _as_days(got)
        if days is None:
            return fail(f"{case.what}: {call} returned {got!r}; return a list of dt.date (the "
                        "days), e.g. [dt.date(2025, 3, 29)], not datetimes or one string.")
        if days == case.days:
            continue
        if days[:-1] == case.days:
            return fail(f"{case.what}: got {list(days)}, one day too many: the DAG does not "
                        "process the day after the logical date.")
        if days == case.days[:-1]:
            return fail(f"{case.what}: got {list(days)}; end_date is inclusive: "
                        f"expected {list(case.days)}.")
        return fail(f"{case.what}: {call} returned {list(days)}; expected {list(case.days)} "
                    "(params win over the logical date; end defaults to start).")
    return ok(f"{len(WINDOW_CASES)} kinds of run, each processes the right days")


@exercise("05.2", "Lineage names the run behind a table's current state")
def current_run(
    current_run: Callable[[str], Any], tables: Iterable[str] = LINEAGE_TABLES
) -> _Verdict:
    """The learner's answer for each table is the lineage row of its current snapshot."""
    from lab_env.lake.lineage import RUN_ID

    catalog = get_catalog()
    found = []
    for name in tables:
        table = catalog.load_table(name)
        snapshot = table.current_snapshot()
        if snapshot is None:
            return fail(f"{name} has no snapshot yet: run the pipeline first (section 2).")
        row = current_run(name)
        if isinstance(row, str):
            return fail(f"current_run({name!r}) returned the string {row!r}: return the lineage "
                        "row itself (its snapshot_id, run_id and dates), not just a run id.")
        if not hasattr(row, "snapshot_id") or not hasattr(row, "run_id"):
            return fail(f"current_run({name!r}) returned {type(row).__name__}; return one row "
                        "of table_lineage(name) (a SnapshotLineage).")
        if row.snapshot_id != snapshot.snapshot_id:
            history = [s.snapshot_id for s in table.snapshots()]
            if history and row.snapshot_id == history[0] and len(history) > 1:
                return fail(f"current_run({name!r}) gave the table's FIRST snapshot: "
                            "table_lineage lists the oldest first; the current state is "
                            "table.current_snapshot().")
            return fail(f"current_run({name!r}) gave snapshot {row.snapshot_id}, but the "
                        f"current snapshot of {name} is {snapshot.snapshot_id}: match on "
                        "table.current_snapshot().snapshot_id.")
        props = snapshot.summary.additional_properties if snapshot.summary else {}
        if row.run_id != props.get(RUN_ID, ""):
            return fail(f"current_run({name!r}) says run {row.run_id!r}, but the snapshot "
                        f"summary says {props.get(RUN_ID, '')!r}: read it from table_lineage.")
        found.append(f"{name} <- {row.run_id or '(an untagged commit)'}")
    return ok("; ".join(found))


def table_state(namespaces: Iterable[str] = NAMESPACES) -> dict[str, tuple[int | None, int]]:
    """Every table of ``namespaces``: (current snapshot id, rows). The check's own reference."""
    catalog = get_catalog()
    state: dict[str, tuple[int | None, int]] = {}
    for namespace in namespaces:
        for identifier in catalog.list_tables(namespace):
            table = catalog.load_table(identifier)
            snapshot = table.current_snapshot()
            state[".".join(identifier)] = (
                snapshot.snapshot_id if snapshot else None, table.scan().count()
            )
    return state


def _state_problem(
    label: str, learner: Mapping[str, Any], truth: dict[str, tuple[int | None, int]]
) -> str | None:
    """What is wrong with the learner's ``table_state`` result, compared with the truth."""
    if not isinstance(learner, Mapping):
        return (f"{label} is a {type(learner).__name__}; table_state must return a dict "
                "{'silver.assets': (snapshot_id, rows), ...}.")
    missing = sorted(set(truth) - set(learner))
    if missing:
        return (f"{label} has no entry for {missing[0]}: list every table of the silver and "
                "gold namespaces (catalog.list_tables(namespace)), named 'namespace.table'.")
    for name, (snapshot_id, rows) in truth.items():
        entry = learner[name]
        if not isinstance(entry, tuple | list) or len(entry) != 2:
            return f"{label}[{name!r}] is {entry!r}; make it a pair (snapshot_id, rows)."
        got_snapshot, got_rows = entry
        if got_snapshot != snapshot_id:
            table = get_catalog().load_table(name)
            if got_snapshot == len(table.snapshots()):
                return (f"{label}[{name!r}] holds the number of snapshots; take the id of the "
                        "current one: table.current_snapshot().snapshot_id.")
            return (f"{label}[{name!r}] says snapshot {got_snapshot}, but the current one is "
                    f"{snapshot_id}: use table.current_snapshot().snapshot_id.")
        if got_rows != rows:
            return (f"{label}[{name!r}] says {got_rows} rows, but the table holds {rows}: "
                    "count them with table.scan().count().")
    return None


@exercise("05.3", "A re-run changes no table")
def rerun_unchanged(
    before: Mapping[str, Any], after: Mapping[str, Any], rerun: RunSummary
) -> _Verdict:
    """``after`` is the real state now; the re-run succeeded and changed nothing of ``before``."""
    if problem := _state_problem("after", after, table_state()):
        return fail(problem)
    if not rerun.ok:
        failed = next(step for step in rerun.steps if not step.ok)
        return fail(f"the re-run failed in {failed.name}: open {failed.output} to see why.")
    ran = {step.name for step in rerun.steps}
    if not {"silver", "gold"} <= ran:
        return fail(f"the re-run ran only {', '.join(sorted(ran)) or 'nothing'}: re-run the "
                    "whole pipeline for the date (run_pipeline without steps=).")
    if not isinstance(before, Mapping):
        return fail(f"before is a {type(before).__name__}; take it with table_state(catalog).")
    for name in sorted(set(before) | set(after)):
        if name not in before:
            return fail(f"{name} appeared during the re-run: take `before` just before "
                        "re-running, after the first run.")
        if name not in after:
            return fail(f"{name} disappeared during the re-run (a full refresh drops tables): "
                        "re-run without full_refresh.")
        (old_id, old_rows), (new_id, new_rows) = before[name], after[name]
        if (old_id, old_rows) != (new_id, new_rows):
            return fail(f"{name} changed during the re-run (snapshot {old_id} -> {new_id}, rows "
                        f"{old_rows} -> {new_rows}): re-run a date that was already processed "
                        f"(the re-run covered {rerun.start}..{rerun.end}).")
    touched = [change.table for step in rerun.steps for change in step.tables]
    if touched:
        return fail(f"the re-run committed to {touched[0]}: a re-run must commit nothing.")
    return ok(f"re-ran {rerun.start}..{rerun.end} as {rerun.run_id}: {len(after)} tables, same "
              "snapshots, same row counts")
