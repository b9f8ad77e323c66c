"""This machine: ``lab doctor`` (is every piece in place?) and ``lab stack up|down|status``
(the compose profile's services, run natively)."""

from __future__ import annotations

from collections.abc import Iterator

import click

from lab_env.cli.base import LabCommand, LabGroup
from lab_env.cli.render import say, verbatim
from lab_env.config import get_settings, stack_env_file
from lab_env.errors import LabError
from lab_env.machine import doctor, stack

# ----- lab doctor -----


@click.command("doctor", cls=LabCommand, short_help="check Java, jars, catalog and storage")
def doctor_command() -> int:
    """Check Java, jars, catalog and storage; each failure names its fix (exit 1 if any)."""
    settings = get_settings()
    checks = doctor.run_checks(settings)
    say(doctor.report(checks, settings.profile))
    return 0 if all(c.ok for c in checks) else 1


# ----- lab stack -----


@click.group(
    "stack", cls=LabGroup, subcommand_metavar="ACTION", help=verbatim(stack.__doc__),
    short_help="run the compose profile's services natively: S3, REST catalog, Spark (no Docker)",
)
def stack_group() -> None:
    pass


@stack_group.command("up", help="start the stack on free ports under LAB_HOME/stack")
def stack_up() -> None:
    running = stack.up(get_settings())
    say(f"lab stack: up under {running.folder}")
    say("\n".join(_status_lines(stack.status(running))))
    say(f"Settings: {stack_env_file(running.home)} (lab reads it while the stack runs).")
    say(f"Use it: LAB_HOME={running.home} lab run   "
         f"Stop it: LAB_HOME={running.home} lab stack down")


@stack_group.command("down", help="stop the stack's processes by pid (its data stays)")
def stack_down() -> None:
    home = get_settings().lab_home
    stopped = stack.down(home)
    if stopped:
        say(f"lab stack: stopped {', '.join(stopped)}; data kept in {stack.stack_dir(home)}.")
    else:
        say(f"lab stack: nothing runs under {stack.stack_dir(home)}.")


@stack_group.command("status", help="each service, its pid and health")
def stack_status() -> int:
    home = get_settings().lab_home
    running = stack.load(home)
    if running is None:
        raise LabError(f"No stack runs under {stack.stack_dir(home)}.", "start one: lab stack up.")
    statuses = stack.status(running)
    healthy = all(s.healthy for s in statuses)
    say(f"lab stack under {running.folder}: {'healthy' if healthy else 'NOT healthy'}")
    say("\n".join(_status_lines(statuses)))
    if not healthy:
        say(f"  fix: {stack.RESTART}")
    return 0 if healthy else 1


def _status_lines(statuses: list[stack.ServiceStatus]) -> Iterator[str]:
    """A line per service: ok, FAIL (runs but unhealthy) or down; its name, pid and detail."""
    for s in statuses:
        state = "ok  " if s.healthy else "FAIL" if s.alive else "down"
        pid = f"pid {s.pid}" if s.pid else "-"
        yield f"  {state} {s.name:<13} {pid:<10} {s.detail}"


COMMANDS: list[click.Command] = [doctor_command, stack_group]
