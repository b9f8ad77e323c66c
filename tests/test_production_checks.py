"""The 05.x checks: each fails on a wrong answer with its hint and passes on the right one.

They inspect small real Iceberg tables of the test session's catalog, written by pyiceberg with
the same lineage properties a tagged Spark run commits; no pipeline runs here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from lab_env.course.checks import production
from lab_env.jobs.runner import RunSummary, StepResult, TableChange
from lab_env.lake.lineage import SnapshotLineage, run_properties, table_lineage
from tests.mistakes import mistake

REPO = Path(__file__).resolve().parents[1]
SILVER_PROBE = "silver.m5_probe"
GOLD_PROBE = "gold.m5_probe"


# ----- 05.1: the days a run processes -----


def right_days(logical_date: dt.datetime | None, params: dict[str, Any]) -> list[dt.date]:
    start = params.get("start_date") or (logical_date.date().isoformat() if logical_date else None)
    if start is None:
        raise ValueError("nothing to process")
    end = params.get("end_date") or start
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def test_run_window_passes_on_the_dag_rules() -> None:
    result = production.run_window(right_days)
    assert result.passed, result.message
    assert production.run_window(lambda d, p: [x.isoformat() for x in right_days(d, p)]).passed


@mistake("05.1", "params-ignored")
def test_run_window_fails_when_params_are_ignored() -> None:
    def logical_day_only(logical_date: dt.datetime | None, params: dict[str, Any]) -> list[dt.date]:
        if logical_date is None:
            raise ValueError("no logical date")
        return [logical_date.date()]

    result = production.run_window(logical_day_only)
    assert not result.passed
    assert "start_date and end_date params" in result.message
    assert "params win over the logical date" in result.message


@mistake("05.1", "exclusive-end")
def test_run_window_fails_on_an_exclusive_end() -> None:
    def exclusive(logical_date: dt.datetime | None, params: dict[str, Any]) -> list[dt.date]:
        days = right_days(logical_date, params)
        return days[:-1] if len(days) > 1 else days

    result = production.run_window(exclusive)
    assert not result.passed and "end_date is inclusive" in result.message


@mistake("05.1", "datetimes-not-days")
@mistake("05.1", "no-error-without-dates")
def test_run_window_fails_on_datetimes_and_on_a_missing_start() -> None:
    def datetimes(logical_date: dt.datetime | None, params: dict[str, Any]) -> list[dt.datetime]:
        return [dt.datetime.combine(d, dt.time()) for d in right_days(logical_date, params)]

    result = production.run_window(datetimes)
    assert not result.passed and "list of dt.date" in result.message

    def never_raises(logical_date: dt.datetime | None, params: dict[str, Any]) -> list[dt.date]:
        try:
            return right_days(logical_date, params)
        except ValueError:
            return []

    result = production.run_window(never_raises)
    assert not result.passed and "raise ValueError" in result.message


@pytest.mark.airflow
def test_run_window_cases_follow_the_dag() -> None:
    """The check's cases hold the learner to what lakehouse_daily's _window really does."""
    dag_file = REPO / "dags" / "lakehouse_daily.py"
    spec = importlib.util.spec_from_file_location("lakehouse_daily", dag_file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for case in production.WINDOW_CASES:
        context = {"params": dict(case.params), "logical_date": case.logical_date}
        if case.days is None:
            with pytest.raises(ValueError):
                module._window(context)
            continue
        start, end = module._window(context)
        days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
        assert tuple(d.isoformat() for d in days) == case.days, case.what


# ----- shared: small real tables in silver and gold -----


def _replace_table(catalog: Catalog, name: str) -> Table:
    if catalog.table_exists(name):
        catalog.drop_table(name)
    return catalog.create_table(name, schema=pa.schema([pa.field("n", pa.int64())]))


def _rows(*values: int) -> pa.Table:
    return pa.table({"n": pa.array(values, pa.int64())})


@pytest.fixture
def probes(catalog: Catalog) -> Iterator[dict[str, Any]]:
    """silver.m5_probe with three commits by runs a, b, c; gold.m5_probe with one by run c."""
    silver = _replace_table(catalog, SILVER_PROBE)
    for day, run in enumerate(("run-a", "run-b", "run-c"), start=21):
        silver.append(_rows(day), snapshot_properties=run_properties(run, f"2025-03-{day}"))
    gold = _replace_table(catalog, GOLD_PROBE)
    gold.append(_rows(1, 2, 3), snapshot_properties=run_properties("run-c", "2025-03-23"))
    yield {"silver": catalog.load_table(SILVER_PROBE), "gold": catalog.load_table(GOLD_PROBE)}
    for name in (SILVER_PROBE, GOLD_PROBE):
        if catalog.table_exists(name):
            catalog.drop_table(name)


# ----- 05.2: the run behind the current state -----

TABLES = (SILVER_PROBE, GOLD_PROBE)


def right_current_run(table_name: str) -> SnapshotLineage:
    from lab_env.lake.catalog import get_catalog

    current = get_catalog().load_table(table_name).current_snapshot()
    assert current is not None
    return next(r for r in table_lineage(table_name) if r.snapshot_id == current.snapshot_id)


def test_current_run_passes_on_the_current_snapshot(probes: dict[str, Any]) -> None:
    result = production.current_run(right_current_run, TABLES)
    assert result.passed, result.message
    assert f"{SILVER_PROBE} <- run-c" in result.message


@mistake("05.2", "newest-not-current")
def test_current_run_follows_a_rollback(probes: dict[str, Any]) -> None:
    """After a rollback the newest snapshot is not the current one: "the last row" is wrong."""
    silver = probes["silver"]
    second = silver.snapshots()[1].snapshot_id
    silver.manage_snapshots().rollback_to_snapshot(second).commit()

    def last_row(table_name: str) -> SnapshotLineage:
        return table_lineage(table_name)[-1]

    wrong = production.current_run(last_row, TABLES)
    assert not wrong.passed and "table.current_snapshot()" in wrong.message
    right = production.current_run(right_current_run, TABLES)
    assert right.passed and f"{SILVER_PROBE} <- run-b" in right.message


@mistake("05.2", "first-snapshot")
@mistake("05.2", "run-id-only")
def test_current_run_fails_on_the_first_snapshot_and_on_a_bare_run_id(
    probes: dict[str, Any],
) -> None:
    first = production.current_run(lambda name: table_lineage(name)[0], TABLES)
    assert not first.passed and "FIRST snapshot" in first.message
    bare = production.current_run(lambda name: right_current_run(name).run_id, TABLES)
    assert not bare.passed and "not just a run id" in bare.message
    renamed = production.current_run(
        lambda name: dataclasses.replace(right_current_run(name), run_id="someone-else"), TABLES
    )
    assert not renamed.passed and "the snapshot summary says 'run-c'" in renamed.message


# ----- 05.3: a re-run changes nothing -----


def _summary(*steps: StepResult, start: str = "2025-03-29") -> RunSummary:
    return RunSummary("rerun-1", start, start, False, "/tmp/runs/rerun-1", list(steps))


def _step(name: str, ok: bool = True, tables: list[TableChange] | None = None) -> StepResult:
    return StepResult(name, f"{name}.ipynb", f"/tmp/runs/{name}.ipynb", 1.0, ok, tables or [])


CLEAN_RERUN = (_step("bronze"), _step("silver"), _step("gold"))


def test_rerun_unchanged_passes_when_nothing_changed(probes: dict[str, Any]) -> None:
    before = production.table_state()
    assert before[SILVER_PROBE][1] == 3 and before[GOLD_PROBE][1] == 3
    result = production.rerun_unchanged(before, production.table_state(), _summary(*CLEAN_RERUN))
    assert result.passed, result.message
    assert "same snapshots, same row counts" in result.message


@mistake("05.3", "rerun-of-new-dates")
def test_rerun_unchanged_fails_when_a_table_changed(probes: dict[str, Any]) -> None:
    before = production.table_state()
    probes["gold"].append(_rows(4), snapshot_properties=run_properties("rerun-1", "2025-03-29"))
    result = production.rerun_unchanged(before, production.table_state(), _summary(*CLEAN_RERUN))
    assert not result.passed
    assert f"{GOLD_PROBE} changed during the re-run" in result.message
    assert "rows 3 -> 4" in result.message


@mistake("05.3", "snapshot-count-not-id")
@mistake("05.3", "table-left-out")
@mistake("05.3", "rows-miscounted")
def test_rerun_unchanged_fails_on_a_wrong_table_state(probes: dict[str, Any]) -> None:
    truth = production.table_state()
    counted = {name: (len(probes["silver"].snapshots()) if name == SILVER_PROBE else snap, rows)
               for name, (snap, rows) in truth.items()}
    result = production.rerun_unchanged(truth, counted, _summary(*CLEAN_RERUN))
    assert not result.passed and "number of snapshots" in result.message

    without_gold = {name: state for name, state in truth.items() if name != GOLD_PROBE}
    result = production.rerun_unchanged(truth, without_gold, _summary(*CLEAN_RERUN))
    assert not result.passed and f"no entry for {GOLD_PROBE}" in result.message

    wrong_rows = {name: (snap, rows + 1) for name, (snap, rows) in truth.items()}
    result = production.rerun_unchanged(truth, wrong_rows, _summary(*CLEAN_RERUN))
    assert not result.passed and "table.scan().count()" in result.message


@mistake("05.3", "only-some-steps")
@mistake("05.3", "before-taken-after-rerun")
def test_rerun_unchanged_fails_on_a_failed_partial_or_committing_rerun(
    probes: dict[str, Any],
) -> None:
    state = production.table_state()
    broken = _summary(_step("bronze"), _step("silver", ok=False))
    failed = production.rerun_unchanged(state, state, broken)
    assert not failed.passed and "failed in silver" in failed.message
    partial = production.rerun_unchanged(state, state, _summary(_step("bronze"), _step("silver")))
    assert not partial.passed and "ran only bronze, silver" in partial.message
    # `before` taken after the re-run hides the change; the run's own report does not
    change = TableChange(GOLD_PROBE, snapshots=1, added_records=1, deleted_records=0,
                         total_records=4)
    committed = production.rerun_unchanged(
        state, state, _summary(_step("bronze"), _step("silver"), _step("gold", tables=[change]))
    )
    assert not committed.passed and f"committed to {GOLD_PROBE}" in committed.message
