"""What every ``lab`` command shares: its parameters kept for error messages, and the LAB_HOME
lock for commands that write the lakehouse."""

from __future__ import annotations

import shlex
from typing import Any

import click

# Keys of click's ``Context.meta`` (one dict shared by the nested contexts of a call).
PARAMS = "lab.params"  # the running command's parameters: `main` names a busy --port from them
ARGV = "lab.argv"  # the command line, for the lock's holder description


class LabCommand(click.Command):
    """A ``lab`` command. ``writes=True``: it writes the lakehouse, so it holds the LAB_HOME lock
    (:mod:`lab_env.lake.lock`) from the start, and a second writer is refused before it prints
    or starts anything. A ``--dry-run`` writes nothing and takes no lock."""

    def __init__(self, *args: Any, writes: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writes = writes

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        from lab_env.cli.params import Several, spread

        several = {opt for p in self.params if isinstance(p, Several) for opt in p.opts}
        return super().parse_args(ctx, spread(args, several) if several else args)

    def invoke(self, ctx: click.Context) -> Any:
        ctx.meta[PARAMS] = ctx.params
        if not self.writes or ctx.params.get("dry_run"):
            return super().invoke(ctx)
        from lab_env.config import get_settings
        from lab_env.lake.lock import lakehouse_lock

        argv = ctx.meta.get(ARGV) or ctx.command_path.split()[1:]
        with lakehouse_lock(get_settings(), None, shlex.join(["lab", *argv])):
            return super().invoke(ctx)


class LabGroup(click.Group):
    """A group of ``lab`` commands (``lab``, ``lab bronze``, ``lab stack`` ...): its commands
    are :class:`LabCommand` and its subgroups LabGroups."""

    command_class = LabCommand
    group_class = type  # subgroups are of this same class

    def invoke(self, ctx: click.Context) -> Any:
        ctx.meta[PARAMS] = ctx.params
        return super().invoke(ctx)
