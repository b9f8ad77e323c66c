"""``lab ingest``: run the bronze job (solutions/02_bronze.ipynb) for dates, return its summary.

The pipeline lives in the notebook; this only executes it with papermill (through
:func:`lab_env.jobs.runner.execute_notebook`), pointing it at the replay server when
``LAB_COINCAP_URL`` is unset, and reads the ``bronze_summary.json`` the notebook wrote.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from lab_env.config import get_settings
from lab_env.dates import check_range
from lab_env.paths import SOLUTIONS

NOTEBOOK = SOLUTIONS / "02_bronze.ipynb"
SUMMARY_FILE = "bronze_summary.json"


def summary_path(start: dt.date, end: dt.date, run_id: str) -> Path:
    """Where the bronze notebook writes the summary of run ``run_id``: in the run's folder."""
    return get_settings().run_folder(start, end, run_id) / SUMMARY_FILE


def ingest(start: dt.date, end: dt.date, run_id: str) -> tuple[dict[str, Any] | None, str]:
    """Execute the bronze notebook; return its summary (None if it wrote none) and any error."""
    from lab_env.jobs.runner import KERNEL_LOG, Kernel, StepFailed, execute_notebook, kernel_env
    from lab_env.lake.lock import lakehouse_lock

    check_range(start, end)
    settings = get_settings()
    output = settings.run_folder(start, end, run_id) / NOTEBOOK.name
    params: dict[str, object] = {
        "start_date": start.isoformat(), "end_date": end.isoformat(), "run_id": run_id
    }
    error = ""
    # kernel_env: an absolute LAB_HOME, and a replay server when LAB_COINCAP_URL is unset; a
    # production run, so the notebook's self-checks are not the learner's progress.
    # cwd: the kernel reads the same .env as this process.
    with (
        lakehouse_lock(settings, run_id, f"ingest {start}..{end}"),  # one writer per LAB_HOME
        kernel_env(settings, record_progress=False) as env,
        Kernel(cwd=Path.cwd(), log=output.with_name(KERNEL_LOG), env=env) as kernel,
    ):
        try:
            execute_notebook(NOTEBOOK, output, params, job=True, kernel=kernel)
        except StepFailed as exc:
            error = str(exc)
    path = summary_path(start, end, run_id)
    summary = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    return summary, error
