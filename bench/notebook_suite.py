"""Time the notebook suite: every solution notebook, in milestone order, in a fresh LAB_HOME.

    .venv/bin/python bench/notebook_suite.py [--solutions DIR] [--json PATH] [--keep]

Prints seconds per notebook (kernel start included), how much of it was the first cell that
calls ``get_spark`` (the JVM and Iceberg catalog start-up, as papermill timed that cell), and
the total. The figures go in docs/notebook-ci.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from lab_env.config import load_settings
from lab_env.jobs.runner import StepFailed, execute_notebook, kernel_env
from lab_env.paths import SOLUTIONS


@dataclass
class Timing:
    notebook: str
    seconds: float
    spark_start: float | None  # duration of the first cell that calls get_spark
    cells: int
    ok: bool
    error: str = ""


def spark_start_seconds(executed: nbformat.NotebookNode) -> float | None:
    """Papermill's duration of the first code cell that calls ``get_spark``, if any."""
    for cell in executed.cells:
        if cell.cell_type == "code" and "get_spark(" in cell.source:
            duration = cell.get("metadata", {}).get("papermill", {}).get("duration")
            return float(duration) if duration is not None else None
    return None


def time_notebook(notebook: Path, home: Path, outputs: Path) -> Timing:
    output = outputs / notebook.name
    began = time.perf_counter()
    error = ""
    try:
        with kernel_env(load_settings(home=home)) as env:
            execute_notebook(notebook, output, env=env)
    except StepFailed as exc:
        error = str(exc)
    seconds = time.perf_counter() - began
    executed = nbformat.read(str(output), as_version=4) if output.is_file() else None
    return Timing(
        notebook=notebook.name,
        seconds=round(seconds, 1),
        spark_start=None if executed is None else _round(spark_start_seconds(executed)),
        cells=0 if executed is None else sum(c.cell_type == "code" for c in executed.cells),
        ok=not error,
        error=error,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solutions", type=Path, default=SOLUTIONS, help="folder of notebooks")
    parser.add_argument("--json", type=Path, help="also write the timings to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temp LAB_HOME and copies")
    args = parser.parse_args(argv)

    notebooks = sorted(args.solutions.glob("*.ipynb"))
    if not notebooks:
        print(f"no notebooks in {args.solutions}", file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix="notebook-suite-"))
    timings = []
    print(f"{'notebook':<28} {'seconds':>8} {'spark start':>12} {'cells':>6}  result")
    for notebook in notebooks:
        t = time_notebook(notebook, root / "lakehouse", root / "executed")
        timings.append(t)
        spark = f"{t.spark_start:.1f}" if t.spark_start is not None else "-"
        print(f"{t.notebook:<28} {t.seconds:>8.1f} {spark:>12} {t.cells:>6}  "
              f"{'ok' if t.ok else 'FAILED: ' + t.error}")
    total = sum(t.seconds for t in timings)
    spark_total = sum(t.spark_start or 0.0 for t in timings)
    print(f"{'total':<28} {total:>8.1f} {spark_total:>12.1f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"total_seconds": round(total, 1), "spark_start_seconds": round(spark_total, 1),
                   "notebooks": [asdict(t) for t in timings]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    if args.keep:
        print(f"kept {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if all(t.ok for t in timings) else 1


if __name__ == "__main__":
    sys.exit(main())
