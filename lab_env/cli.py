"""The ``lab`` command: ``lab doctor``, ``lab run`` and the lab's other tools."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from lab_env.errors import LabError

# Each module adds its subcommands with ``register(subparsers)``.
COMMAND_MODULES: tuple[str, ...] = (
    "lab_env.doctor",
    "lab_env.runner",
    "lab_env.exercises",
    "lab_env.grading",
    "lab_env.ingest",
    "lab_env.replay",
    "lab_env.lineage",
    "lab_env.maintain",
    "lab_env.quality.report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lab", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="show full tracebacks")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except LabError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
