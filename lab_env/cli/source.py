"""The sample API: ``lab serve-samples`` (the replay server, with faults) and ``lab samples``
(regenerate the synthetic ``data_samples/``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from lab_env.cli.base import LabCommand
from lab_env.cli.params import PORT
from lab_env.cli.render import say, verbatim
from lab_env.config import get_settings
from lab_env.errors import LabError
from lab_env.source import replay, samples
from lab_env.source.replay import Faults, ReplayServer

# ----- lab serve-samples -----

# One flag per field of Faults but ``route``, named after it (--rate-limit sets rate_limit);
# a flag not given leaves the field's default. Counted faults: N < 0 means every request.
FAULT_OPTIONS = (
    click.option("--rate-limit", type=int, metavar="N",
                 help="429 with Retry-After for the first N requests"),
    click.option("--retry-after", metavar="S",
                 help="Retry-After value: seconds or an HTTP date (default: 1)"),
    click.option("--server-errors", type=int, metavar="N", help="500 for the first N requests"),
    click.option("--delay", type=float, metavar="S", help="wait S seconds before answering"),
    click.option("--slow-requests", type=int, metavar="N",
                 help="only the first N requests are slow (default: all)"),
    click.option("--truncate", type=int, metavar="N",
                 help="cut the JSON body of the first N answers in half"),
    click.option("--rename-field", metavar="OLD=NEW", help="rename a field in every record"),
    click.option("--extra-field", metavar="NAME[=VALUE]", help="add a field to every record"),
    click.option("--null-field", metavar="NAME", help="set a field to null in every record"),
)


F = TypeVar("F", bound=Callable[..., Any])


def fault_options(command: F) -> F:
    """Add the fault flags to ``command`` (they show in this order in --help)."""
    for option in reversed(FAULT_OPTIONS):
        command = option(command)
    return command


@click.command(
    "serve-samples", cls=LabCommand, help=verbatim(replay.__doc__),
    short_help="serve data_samples/ like the CoinCap API on 127.0.0.1, optionally with faults",
)
@click.option("--port", type=PORT, default=0, help="0 = any free port (default)")
@click.option("--host", default="127.0.0.1", help="default: 127.0.0.1")
@click.option("--samples", "samples_dir", default=str(samples.SAMPLES_DIR),
              help=f"default: {samples.SAMPLES_DIR}")
@click.option("--require-key", is_flag=True,
              help="answer 401 unless the request carries LAB_COINCAP_API_KEY as Bearer")
@fault_options
@click.option("--route", multiple=True, metavar="[FAULT=]ROUTE",
              help="limit faults to a route (assets or history); repeat as FAULT=ROUTE to limit "
                   "one fault, e.g. --route truncate=history")
def serve_samples_command(port: int, host: str, samples_dir: str, require_key: bool,
                          route: tuple[str, ...], **faults: Any) -> None:
    given = {name: value for name, value in faults.items() if value is not None}
    server = ReplayServer(
        Path(samples_dir), host=host, port=port, api_key=_api_key() if require_key else None,
        faults=Faults(**given, route=fault_routes(route)),
    )
    say(f"Replaying {samples_dir} ({server.days[0]}..{server.days[-1]}) at {server.url}")
    say(f"  export LAB_COINCAP_URL={server.url}")
    say(f"  faults: {_active(server.faults) or 'none'}; "
         f"API key required: {'yes' if require_key else 'no'}")
    say("Stop with Ctrl-C.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def fault_routes(items: tuple[str, ...]) -> str | dict[str, str] | None:
    """The ``route`` of :class:`Faults` from ``--route`` values: ``history`` limits every fault,
    ``truncate=history`` one fault (``server-errors`` or ``server_errors``)."""
    route: str | dict[str, str] | None = None
    for item in items:
        fault, sep, where = item.rpartition("=")
        if not sep:
            route = where
        else:
            route = dict(route) if isinstance(route, dict) else {}
            route[fault.replace("-", "_")] = where
    return route


def _api_key() -> str:
    secret = get_settings().coincap_api_key
    if secret is None:
        raise LabError(
            "--require-key needs LAB_COINCAP_API_KEY.", "export LAB_COINCAP_API_KEY=<a key>."
        )
    return secret.get_secret_value()


def _active(faults: Faults) -> dict[str, Any]:
    """The faults that differ from a well-behaved API."""
    return {
        f.name: getattr(faults, f.name)
        for f in dataclasses.fields(Faults)
        if getattr(faults, f.name) != f.default
    }


# ----- lab samples -----


@click.command("samples", cls=LabCommand,
               short_help="regenerate the synthetic data_samples/ from a seed")
@click.option("--seed", type=int, default=samples.DEFAULT_SEED,
              help=f"default: {samples.DEFAULT_SEED}")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=samples.SAMPLES_DIR, help=f"default: {samples.SAMPLES_DIR}")
def samples_command(seed: int, out: Path) -> None:
    """Regenerate the synthetic data_samples/ (the same seed writes the same bytes)."""
    for path in samples.generate(out, seed):
        say(f"wrote {path} ({path.stat().st_size:,} bytes)")


COMMANDS: list[click.Command] = [serve_samples_command, samples_command]
