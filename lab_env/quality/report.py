"""Data Docs per run and the run's quality report page (shown by ``lab docs``).

Each gate run gets its own file-mode Great Expectations project in the run's folder,
``runs/<dates>/<run_id>/quality/``: the suites and validation results as JSON under ``gx/``,
the Data Docs site under ``data_docs/``, and ``index.html``, a page listing every suite
with its result and linking to its Data Docs pages. ``report.json`` holds the same for
programs. Great Expectations' own site index builds its table with scripts from public CDNs;
its validation pages are plain HTML, and so is ``index.html`` (rendered from
``templates/index.html.j2``, every value escaped), so the report reads offline.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab_env.config import get_settings
from lab_env.errors import LabError
from lab_env.quality.suites import CRITICAL, WARNING, load_gx

if TYPE_CHECKING:
    from lab_env.quality.gate import GateReport

TEMPLATE = Path(__file__).with_name("templates") / "index.html.j2"
INDEX = "index.html"


def quality_folder(start: dt.date, end: dt.date, run_id: str, folder: Path | None = None) -> Path:
    """``<run folder>/quality``: where a run's Data Docs and report live."""
    return (folder or get_settings().run_folder(start, end, run_id)) / "quality"


def new_context(quality_dir: Path) -> Any:
    """A fresh file-mode GX project in ``quality_dir`` (a re-run of the same run replaces it)."""
    gx = load_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    if quality_dir.exists():
        shutil.rmtree(quality_dir)
    quality_dir.mkdir(parents=True)
    context = gx.get_context(mode="file", project_root_dir=str(quality_dir))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.variables.save()
    context.update_data_docs_site("local_site", {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(quality_dir / "data_docs")},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    return context


def _pages(quality_dir: Path, kind: str, suite: str) -> list[Path]:
    base = quality_dir / "data_docs" / kind
    pattern = "*/*/*.html" if kind == "validations" else ""
    where = base.joinpath(*suite.split("."))
    if kind == "expectations":
        page = where.with_suffix(".html")
        return [page] if page.is_file() else []
    return sorted(where.glob(pattern))


def build(context: Any, report: GateReport, quality_dir: Path) -> Path:
    """Build the Data Docs and the report page; return the page (``quality/index.html``)."""
    import jinja2

    context.build_data_docs()
    suites: dict[str, list] = {}
    for outcome in report.outcomes:
        suites.setdefault(outcome.suite, []).append(outcome)
    (quality_dir / "report.json").write_text(json.dumps(
        {**asdict(report), "verdict": report.verdict, "blocked": report.blocked}, indent=2,
        default=str) + "\n")
    rows = []
    for name, outcomes in suites.items():
        crit = sum(1 for o in outcomes if not o.success and o.severity == CRITICAL)
        warn = sum(1 for o in outcomes if not o.success and o.severity == WARNING)
        links = [{"href": p.relative_to(quality_dir), "label": label}
                 for kind, label in (("validations", "results"), ("expectations", "expectations"))
                 for p in _pages(quality_dir, kind, name)]
        rows.append({
            "css": "failed" if crit else ("warned" if warn else "passed"),
            "status": "Failed" if crit else ("Passed with warnings" if warn else "Passed"),
            "layer": name.split(".")[0], "suite": name, "expectations": len(outcomes),
            "critical": crit, "warnings": warn, "links": links,
        })
    failed = [{"css": "failed" if o.severity == CRITICAL else "warned", "outcome": o}
              for o in report.failures()]
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    page = env.from_string(TEMPLATE.read_text(encoding="utf-8")).render(
        report=report, summary=report.describe(), suites=rows, failures=failed,
        audited=", ".join(f"{t}@{r}" for t, r in report.audited.items()))
    index = quality_dir / INDEX
    index.write_text(page, encoding="utf-8")
    return index


def find_report(run_id: str | None = None) -> Path:
    """The quality report of ``run_id``, or of the latest run that has one."""
    runs = get_settings().runs_dir
    pages = list(runs.glob(f"*/*/quality/{INDEX}"))
    if run_id:
        wanted = run_id.replace(":", "-").replace("+", "-")
        pages = [p for p in pages if p.parents[1].name == wanted]
    if not pages:
        raise LabError(
            f"No quality report {'for run ' + run_id + ' ' if run_id else ''}under {runs}.",
            "run the gate first: `lab run` (or the 06_quality notebook); `lab docs` without "
            "--run shows the latest.",
        )
    return max(pages, key=lambda p: p.stat().st_mtime)


