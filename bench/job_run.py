"""What a production run costs next to the engine's own start: `lab run` against a bare Spark.

    .venv/bin/python bench/job_run.py [--day 2025-03-30] [--sample] [--repeat 3]

In one process, alternately: a bare Spark start (a fresh Python process that starts the lab's
Spark session and counts one row) and a one-day `lab run` (bronze, silver, gold, quality as
jobs, one kernel) in a fresh LAB_HOME. Prints each run's seconds, the medians and their ratio;
with ``--sample`` also one `lab run` over the whole 90-day sample (after set-up). The figures
go in docs/production.md, with the machine's load (printed first and last).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BARE_SPARK = "from lab_env import get_spark; get_spark().range(1).count()"


def timed(args: list[str], home: Path, extra: dict[str, str] | None = None) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")} | {
        "LAB_HOME": str(home)
    } | (extra or {})
    began = time.perf_counter()
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", default="2025-03-30", help="the logical date of the one-day run")
    parser.add_argument("--repeat", type=int, default=3, help="pairs of runs (default 3)")
    parser.add_argument("--sample", action="store_true", help="also run the 90-day sample once")
    args = parser.parse_args(argv)
    lab = str(Path(sys.executable).with_name("lab"))
    print(f"before: {load()}")
    bare, run = [], []
    with tempfile.TemporaryDirectory(prefix="bench-job-run-") as tmp:
        for n in range(args.repeat):
            bare.append(timed([sys.executable, "-c", BARE_SPARK], Path(tmp) / f"bare-{n}"))
            run.append(
                timed([lab, "run", "--start", args.day, "--end", args.day], Path(tmp) / f"run-{n}")
            )
            print(
                f"pair {n + 1}: bare Spark start {bare[-1]:6.1f} s   "
                f"lab run {args.day} {run[-1]:6.1f} s"
            )
        b, r = statistics.median(bare), statistics.median(run)
        print(f"median: bare Spark start {b:.1f} s, one-day lab run {r:.1f} s, ratio {r / b:.1f}x")
        if args.sample:
            sample = timed([lab, "run"], Path(tmp) / "sample")
            print(f"lab run over the 90-day sample (2025-01-01 .. 2025-03-31): {sample:.1f} s")
    print(f"after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
