"""The ``lab`` command: ``lab doctor``, ``lab run`` and the lab's other tools.

One click group; each module of this package adds the commands of one concern, and is the only
code of lab_env that prints: commands parse their options, call into the package, and render
what it returns (:mod:`lab_env.cli.render`). Every failure ends as one line,
``error: <what is wrong> Fix: <what to do>``, and a non-zero exit code; ``lab --verbose`` adds
the traceback.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Sequence

import click

from lab_env.cli.base import ARGV, PARAMS, LabGroup
from lab_env.cli.errors import as_lab_error
from lab_env.errors import one_line

__all__ = ["as_lab_error", "lab", "main"]

# The modules that add commands, each with a ``COMMANDS`` list, in the order `lab --help` shows.
COMMAND_MODULES: tuple[str, ...] = (
    "lab_env.cli.machine",  # doctor, stack
    "lab_env.cli.jobs",  # run, ingest, bronze, dbt
    "lab_env.cli.course",  # build-exercises, check, progress, restore
    "lab_env.cli.lake",  # lineage, maintain, spark-archive
    "lab_env.cli.source",  # serve-samples
    "lab_env.cli.quality",  # docs
    "lab_env.cli.streaming",  # kafka, stream
    "lab_env.cli.dashboard",  # dashboard, report, export
)


@click.group(cls=LabGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="show full tracebacks")
def lab(verbose: bool) -> None:
    """The lab's command line: run the pipeline, check exercises, run the stack."""


for _name in COMMAND_MODULES:
    for _command in importlib.import_module(_name).COMMANDS:
        lab.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lab`` with ``argv`` (default: the process's arguments); return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = False
    meta: dict[str, object] = {}
    try:
        with lab.make_context("lab", list(args)) as ctx:
            verbose = bool(ctx.params.get("verbose"))
            meta = ctx.meta
            meta[ARGV] = args
            return int(lab.invoke(ctx) or 0)
    except click.exceptions.Exit as exc:  # --help
        return exc.exit_code
    except click.ClickException as exc:  # a usage error: click says which option and why
        exc.show()
        return exc.exit_code
    except (KeyboardInterrupt, click.Abort):
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:
        params = meta.get(PARAMS)
        error = as_lab_error(exc, params if isinstance(params, dict) else None)
        if verbose:
            traceback.print_exc()
        click.echo(f"error: {one_line(str(error))}", err=True)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
