"""What the Spark class archive saves: Spark starts and `lab run`s with and without it.

    .venv/bin/python bench/class_archive.py [--repeat 3] [--day 2025-03-30]

In one process, alternately with the archive (as `make setup` leaves the lab) and without it
(``LAB_SPARK_CLASS_ARCHIVE=false``): a bare Spark start (a fresh Python process that starts the
lab's Spark session and counts one row), then a one-day `lab run` in a fresh LAB_HOME. Prints
each run's seconds, the medians and their ratios, with the machine's load first and last. The
archive must exist (`make spark-archive`). Figures go in docs/production.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from job_run import BARE_SPARK, load, timed

from lab_env.config import get_settings
from lab_env.lake import jars, spark_archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", default="2025-03-30", help="the logical date of the one-day run")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    args = parser.parse_args(argv)
    settings = get_settings()
    archive = spark_archive.archive_path(settings, jars.spark_jars(settings))
    if archive is None or not archive.is_file():
        raise SystemExit("no class archive: run `make spark-archive` first")
    print(f"archive: {archive} ({archive.stat().st_size / 2**20:.0f} MB)")
    print(f"before: {load()}")
    lab = str(Path(sys.executable).with_name("lab"))
    figures: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-class-archive-") as tmp:
        for n in range(args.repeat):
            for mode in ("with", "without"):
                env = {"LAB_SPARK_CLASS_ARCHIVE": "true" if mode == "with" else "false"}
                home = Path(tmp) / f"{mode}-{n}"
                bare = timed([sys.executable, "-c", BARE_SPARK], home / "bare", env)
                run = timed([lab, "run", "--start", args.day, "--end", args.day], home / "run", env)
                figures.setdefault((mode, "bare"), []).append(bare)
                figures.setdefault((mode, "run"), []).append(run)
                print(f"round {n + 1} {mode:>7} archive: bare Spark start {bare:5.1f} s, "
                      f"lab run {args.day} {run:5.1f} s")
    for what, label in (("bare", "bare Spark start"), ("run", "one-day lab run")):
        with_, without = (statistics.median(figures[(m, what)]) for m in ("with", "without"))
        print(f"median {label}: {with_:.1f} s with the archive, {without:.1f} s without "
              f"({without / with_:.2f}x)")
    print(f"after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
