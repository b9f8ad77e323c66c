"""How long a learner waits for `lab check`, and whether anything but the verdicts reaches them.

    .venv/bin/python bench/check_time.py [--milestone 3] [--repeat 3]

In a fresh LAB_HOME (a temp folder): `lab restore N` builds and keeps the start of milestone N
(timed, once); then `lab check` runs on the milestone's notebook with every exercise answered
(the solution, copied where a learner's notebook would be), each starting from the kept state as
a learner's check does: ``--repeat`` + 1 times as a learner's checks run (the first starts the
kernel the next ones reuse, lab_env.course.kept), alternating with ``--repeat`` checks that each
start a kernel of their own (``LAB_CHECK_KERNEL_IDLE_S=0``). Prints each check's seconds, the
medians and their ratio, the exercises passed, any line of the output that carries
``WARNING``/``ERROR``/``WARN`` (a kernel's or the JVM's noise), and the machine's load first and
last. The figures go in docs/notebook-ci.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOISE = re.compile(r"\b(WARNING|WARN|ERROR)\b")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def lab(home: Path, *args: str, **extra: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")} | {
        "LAB_HOME": str(home),
        "COLUMNS": "200",  # the verdict table on one line per exercise
    } | extra
    began = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).with_name("lab")), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    return time.perf_counter() - began, done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--milestone", type=int, default=3, help="the milestone (default 3)")
    parser.add_argument("--repeat", type=int, default=3, help="checks to time (default 3)")
    args = parser.parse_args(argv)
    (solution,) = sorted((REPO / "solutions").glob(f"{args.milestone:02d}_*.ipynb"))
    print(f"before: {load()}")
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        home = Path(tmp) / "lakehouse"
        learner = Path(tmp) / "notebooks" / solution.name
        learner.parent.mkdir()
        shutil.copy(solution, learner)
        seconds, done = lab(home, "restore", str(args.milestone))
        if done.returncode != 0:
            raise SystemExit(f"lab restore failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        print(f"lab restore {args.milestone} (builds and keeps the start state): {seconds:.1f} s")
        try:
            check(home, learner, "kept kernel, started now")
            kept, fresh = [], []
            for _ in range(args.repeat):
                fresh.append(check(home, learner, "a kernel of its own",
                                   LAB_CHECK_KERNEL_IDLE_S="0"))
                kept.append(check(home, learner, "kept kernel, reused"))
        finally:
            stop_kept_kernel(home)
        warm, cold = statistics.median(kept), statistics.median(fresh)
        print(f"median: lab check {solution.name} {warm:.1f} s in the kept kernel, {cold:.1f} s "
              f"with a kernel of its own: {cold / warm:.2f}x")
    print(f"after: {load()}")
    return 0


def stop_kept_kernel(home: Path) -> None:
    from lab_env.config import load_settings
    from lab_env.course import kept

    kept.stop(load_settings(home=home))


def check(home: Path, learner: Path, how: str, **extra: str) -> float:
    """One timed `lab check`, printed as a line; its seconds."""
    seconds, done = lab(home, "check", str(learner), **extra)
    verdict = re.search(r"\d+/\d+ exercises passed", done.stdout)
    noise = [line for line in (done.stdout + done.stderr).splitlines() if NOISE.search(line)]
    print(f"check ({how}): {seconds:5.1f} s, exit {done.returncode}, "
          f"{verdict[0] if verdict else 'no verdict line'}, {len(noise)} WARNING/ERROR line(s)")
    for line in noise[:5]:
        print(f"  | {line}")
    return seconds


if __name__ == "__main__":
    sys.exit(main())
