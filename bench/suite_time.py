"""How long the whole test suite takes after set-up: what `make test` runs, timed.

    .venv/bin/python bench/suite_time.py [--slowest 15] [-- PYTEST ARGS ...]

Runs `lab build-exercises --check` and `pytest` exactly as `make test` does (so with the
options in pyproject.toml: nbval over the solutions, two xdist workers), and prints the wall
time of each, the test count from pytest's closing line, the slowest tests, and the machine's
load before and after (the machines are shared: quote the load with the figure). The figure
goes in docs/notebook-ci.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min), " + (
        f"{os.cpu_count()} cores"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slowest", type=int, default=15, help="how many slowest tests to list")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    print(f"before: {load()}")
    began = time.perf_counter()
    check = subprocess.run([str(BIN / "lab"), "build-exercises", "--check"], cwd=REPO, check=False)
    checked = time.perf_counter() - began
    began = time.perf_counter()
    tests = subprocess.run(
        [str(BIN / "pytest"), f"--durations={args.slowest}", "-q", *args.pytest_args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    ran = time.perf_counter() - began
    slowest = tests.stdout.split("slowest", 1)[-1].splitlines()[1 : args.slowest + 1]
    closing = [
        line for line in tests.stdout.splitlines() if re.search(r"\d+ (passed|failed)", line)
    ]
    print(f"lab build-exercises --check: {checked:.1f} s (exit {check.returncode})")
    print(f"pytest: {ran:.1f} s = {ran / 60:.1f} min (exit {tests.returncode})")
    print(f"pytest says: {closing[-1].strip('= ') if closing else '(no closing line)'}")
    print("slowest:")
    print("\n".join(f"  {line}" for line in slowest))
    print(f"after: {load()}")
    return tests.returncode or check.returncode


if __name__ == "__main__":
    sys.exit(main())
