"""The write-audit-publish gate: validate a run's data, then publish gold or stop.

Gold's Spark writes go to the run's audit branch (``spark.wap.branch``, set from
``LAB_WAP_BRANCH`` by the runner; the gold tables have ``write.wap.enabled``). The gate reads
each gold table from that branch when it has one, validates every layer's suites, writes the
run's Data Docs, and then:

* no critical failure: fast-forwards each gold table's ``main`` to its audit branch and drops
  the branch (the published data lives on ``main``); warnings are logged and listed;
* a critical failure: ``main`` stays as it was, the branch keeps the audited data for
  inspection, the alert goes out, and :class:`QualityGateFailed` stops the run.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab_env.errors import LabError
from lab_env.quality.frames import GOLD_TABLES, bronze_frames, gold_frames, silver_frames
from lab_env.quality.suites import (
    CRITICAL,
    LAYERS,
    SUITES_BY_LAYER,
    WARNING,
    audit_branch,
    severity,
)

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations import ExpectationSuite
    from pyiceberg.catalog import Catalog

log = logging.getLogger("lakehouse.quality")


@dataclass(frozen=True)
class Outcome:
    """One expectation's result in one run."""

    suite: str
    expectation: str  # e.g. expect_column_values_to_not_be_null
    column: str  # the column(s) it looks at, "" for table-level expectations
    severity: str  # critical | warning
    success: bool
    rule: str  # the rule in words (also what Data Docs show)
    observed: str  # what was found: the observed value or the first unexpected values


@dataclass
class GateReport:
    """What the gate found and did for one run."""

    run_id: str
    start: str
    end: str
    branch: str
    audited: dict[str, str]  # gold table -> the ref the audit read (the branch or main)
    outcomes: list[Outcome] = field(default_factory=list)
    published: list[str] = field(default_factory=list)
    docs: str = ""  # the run's quality report (index.html)

    def failures(self, level: str | None = None) -> list[Outcome]:
        """The failed expectations, of one severity or of both."""
        return [o for o in self.outcomes if not o.success and level in (None, o.severity)]

    @property
    def blocked(self) -> bool:
        """Whether a critical expectation failed (gold is then not published)."""
        return bool(self.failures(CRITICAL))

    @property
    def verdict(self) -> str:
        if self.blocked:
            return "BLOCKED"
        return "PUBLISHED" if self.published else "PASSED"

    def frame(self) -> pd.DataFrame:
        """One row per expectation, failures first, for a notebook to display."""
        import pandas as pd

        rows = pd.DataFrame([asdict(o) for o in self.outcomes])
        if rows.empty:
            return rows
        return rows.sort_values(["success", "severity", "suite"], kind="stable").reset_index(
            drop=True)

    def describe(self) -> str:
        """One line: the verdict, the counts, and the first failures."""
        crit, warn = self.failures(CRITICAL), self.failures(WARNING)
        text = (f"{self.verdict}: {len(self.outcomes) - len(crit) - len(warn)}/"
                f"{len(self.outcomes)} expectations passed, {len(crit)} critical and "
                f"{len(warn)} warning failures")
        if crit:
            text += "; " + "; ".join(f"{o.suite}: {o.rule} (found {o.observed})" for o in crit[:3])
        return text


class QualityGateFailed(LabError):
    """A critical expectation failed: gold stays unpublished on its audit branch."""

    def __init__(self, report: GateReport) -> None:
        first = report.failures(CRITICAL)[0]
        super().__init__(
            f"Quality gate blocked the publish of gold for {report.start}..{report.end}: "
            f"{len(report.failures(CRITICAL))} critical expectations failed, first "
            f"{first.suite}: {first.rule} (found {first.observed}).",
            f"open the report {report.docs} (or `lab docs --run {report.run_id}`), fix the data "
            f"and run again; main is untouched and branch {report.branch} holds what was audited.",
        )
        self.report = report


def _observed(result: Any) -> str:
    """What an expectation found, in a few words."""
    if result.exception_info and result.exception_info.get("raised_exception"):
        return "error: " + str(result.exception_info.get("exception_message", ""))[:200]
    found = result.result or {}
    if "observed_value" in found:
        return str(found["observed_value"])[:200]
    count = found.get("unexpected_count")
    if count is None:
        return ""
    sample = found.get("partial_unexpected_list") or []
    return f"{count} unexpected, e.g. {sample[:3]}"[:200]


def _column(kwargs: dict[str, Any]) -> str:
    if "column" in kwargs:
        return str(kwargs["column"])
    if "column_A" in kwargs:
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    return ", ".join(kwargs.get("column_list") or [])


def validate(frames: dict[str, pd.DataFrame], suites: Sequence[ExpectationSuite],
             context: Any, run_name: str) -> list[Outcome]:
    """Validate each suite against the frame of the same name in ``context``; store results."""
    from great_expectations.core.run_identifier import RunIdentifier

    from lab_env.quality.suites import load_gx

    gx = load_gx()
    source = context.data_sources.add_or_update_pandas("lake")
    run = RunIdentifier(run_name=run_name, run_time=dt.datetime.now(dt.UTC))
    outcomes = []
    for spec in suites:
        if spec.name not in frames:
            raise LabError(f"No frame for the suite {spec.name}.",
                           "name each suite after a frame of lab_env.quality.frames.")
        batch = source.add_dataframe_asset(spec.name).add_batch_definition_whole_dataframe("run")
        stored = context.suites.add(spec)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=spec.name, data=batch, suite=stored))
        result = definition.run(batch_parameters={"dataframe": frames[spec.name]},
                                result_format="SUMMARY", run_id=run)
        for item in result.results:
            config = item.expectation_config
            outcomes.append(Outcome(
                suite=spec.name,
                expectation=config.type,
                column=_column(config.kwargs),
                severity=severity(config),
                success=bool(item.success),
                rule=(config.description or config.type).split(": ", 1)[-1],
                observed=_observed(item),
            ))
    return outcomes


@functools.cache
def _scratch_context() -> Any:
    """An in-memory GX context for trying single expectations (nothing is written)."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    from lab_env.quality.suites import load_gx

    context = load_gx().get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def try_expectation(frame: pd.DataFrame, expectation: Any) -> Any:
    """Validate one expectation against ``frame`` and return GX's result (``.success``...)."""
    import uuid

    source = _scratch_context().data_sources.add_or_update_pandas("scratch")
    asset = source.add_dataframe_asset(f"frame_{uuid.uuid4().hex[:8]}")
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(
        batch_parameters={"dataframe": frame})
    return batch.validate(expectation, result_format="SUMMARY")


def audit_refs(catalog: Catalog, branch: str, namespace: str = "gold") -> dict[str, str | None]:
    """For each gold table, the ref to audit: ``branch`` if the table has it, else None (main)."""
    refs: dict[str, str | None] = {}
    for name in GOLD_TABLES:
        ident = f"{namespace}.{name}"
        has = catalog.table_exists(ident) and branch in catalog.load_table(ident).refs()
        refs[name] = branch if has else None
    return refs


def publish(catalog: Catalog, branch: str, namespace: str = "gold") -> list[str]:
    """Fast-forward each gold table's main to ``branch`` and drop the branch; return the tables.

    Fast-forward only: if main moved since the branch was written, nothing of that table is
    published and a LabError says so.
    """
    from pyiceberg.table.snapshots import ancestors_of

    published = []
    for name in GOLD_TABLES:
        ident = f"{namespace}.{name}"
        if not catalog.table_exists(ident):
            continue
        table = catalog.load_table(ident)
        target = table.snapshot_by_name(branch)
        if target is None:
            continue
        main = table.current_snapshot()
        lineage = {s.snapshot_id for s in ancestors_of(target, table.metadata)}
        if main is not None and main.snapshot_id not in lineage:
            raise LabError(
                f"{ident}: main changed after branch {branch} was written; it cannot be "
                "fast-forwarded.",
                "run gold and the gate again for these dates (a new run branches from the "
                "current main).",
            )
        with table.manage_snapshots() as manage:
            manage.set_current_snapshot(snapshot_id=target.snapshot_id)
        table.manage_snapshots().remove_branch(branch).commit()
        published.append(ident)
    return published


def run_gate(
    start: dt.date | str,
    end: dt.date | str,
    run_id: str,
    *,
    layers: Sequence[str] = LAYERS,
    silver: str = "silver",
    gold: str = "gold",
    branch: str | None = None,
    folder: Path | None = None,
    alert: bool = True,
) -> GateReport:
    """Audit the run's data and publish gold, or raise :class:`QualityGateFailed`.

    ``branch`` defaults to :func:`audit_branch` of ``run_id``; ``folder`` (default: the run's
    folder) receives ``quality/``: the Data Docs, ``index.html`` and ``report.json``.
    ``silver``/``gold`` name the namespaces (tests use their own).
    """
    from lab_env.alerts import send_alert
    from lab_env.lake.catalog import get_catalog
    from lab_env.quality import report as reporting

    first = dt.date.fromisoformat(str(start))
    last = dt.date.fromisoformat(str(end))
    if last < first:
        raise LabError(f"end_date {last} is before start_date {first}.", "swap the two dates.")
    unknown = sorted(set(layers) - set(LAYERS))
    if unknown:
        raise LabError(f"Unknown layer {unknown[0]!r}.", f"use some of {', '.join(LAYERS)}.")
    branch = branch or audit_branch(run_id)
    catalog = get_catalog()
    refs = audit_refs(catalog, branch, gold)
    report = GateReport(run_id, str(first), str(last), branch,
                        {t: r or "main" for t, r in refs.items()})
    frames: dict[str, pd.DataFrame] = {}
    suites: list[ExpectationSuite] = []
    for layer in layers:
        if layer == "bronze":
            frames |= bronze_frames(first, last)
        elif layer == "silver":
            frames |= silver_frames(first, last, catalog, silver)
        else:
            frames |= gold_frames(first, last, catalog, refs, gold, silver)
        suites += SUITES_BY_LAYER[layer](first, last)
    quality_dir = reporting.quality_folder(first, last, run_id, folder)
    context = reporting.new_context(quality_dir)
    report.outcomes = validate(frames, suites, context, run_name=audit_branch(run_id))
    if not report.blocked:
        report.published = publish(catalog, branch, gold)
    report.docs = str(quality_dir / reporting.INDEX)
    reporting.build(context, report, quality_dir)
    for outcome in report.failures(WARNING):
        log.warning("quality warning %s: %s (found %s)", outcome.suite, outcome.rule,
                    outcome.observed)
    if report.blocked:
        if alert:
            send_alert(
                f"Quality gate blocked the publish of gold for {first}..{last}",
                {
                    "run_id": run_id,
                    "start_date": first,
                    "end_date": last,
                    "branch": branch,
                    "failed": "; ".join(f"{o.suite}: {o.rule} (found {o.observed})"
                                        for o in report.failures(CRITICAL)),
                    "report": report.docs,
                },
            )
        raise QualityGateFailed(report)
    log.info("quality gate %s", report.describe())
    return report
