"""``lab kafka start|stop|status`` (:mod:`lab_env.streaming.broker`) and ``lab stream
produce|run`` (:mod:`lab_env.streaming.produce`, :mod:`lab_env.streaming.job`)."""

from __future__ import annotations

import time

import click

from lab_env.cli.base import LabGroup
from lab_env.cli.params import AMOUNT, COUNT, PORT
from lab_env.cli.render import say, verbatim
from lab_env.config import get_settings
from lab_env.streaming import broker, job


@click.group(
    "kafka", cls=LabGroup, help=verbatim(broker.__doc__),
    short_help="run a one-node Apache Kafka broker (KRaft) on 127.0.0.1 with its data in LAB_HOME",
)
def kafka() -> None:
    pass


@kafka.command("start", short_help="start the broker (or say it runs already)")
@click.option("--port", type=PORT, default=0,
              help="the client port on 127.0.0.1 (0: last one or any free port)")
def kafka_start(port: int) -> None:
    """Start this LAB_HOME's broker and wait until it serves clients; if it runs already,
    say where."""
    settings = get_settings()
    state, started = broker.start(settings, port=port)
    verb = "started" if started else "already running"
    say(f"kafka: {verb} on {state.bootstrap} (pid {state.pid}, cluster {state.cluster_id}); "
         f"data and log in {broker.kafka_home(settings)}")


@kafka.command("stop", short_help="stop the broker by its pid")
def kafka_stop() -> None:
    """Stop this LAB_HOME's broker by the pid in its state file (SIGTERM, then SIGKILL)."""
    state = broker.stop(get_settings())
    say(f"kafka: stopped (pid {state.pid})" if state else "kafka: not running")


@kafka.command("status", short_help="is it running, and where (exit 1 if not)")
def kafka_status() -> int:
    """Say whether this LAB_HOME's broker runs, where, and whether it answers; exit 1 if it
    does not run."""
    settings = get_settings()
    state = broker.status(settings)
    if state is None:
        say(f"kafka: not running for LAB_HOME {settings.lab_home} (start: lab kafka start)")
        return 1
    up = "accepting connections" if broker.port_open(state.port) else "not answering yet"
    say(f"kafka: running on {state.bootstrap} (pid {state.pid}), {up}; "
         f"up {time.time() - state.started_at:.0f} s")
    return 0


@click.group(
    "stream", cls=LabGroup, help=verbatim(job.__doc__),
    short_help="replay ticks into Kafka, and stream them into Iceberg with Spark",
)
def stream() -> None:
    pass


@stream.command("produce", short_help="replay the bundled sample as ticks into Kafka")
@click.option("--count", type=COUNT, default=600, help="ticks to send (default: 600)")
@click.option("--rate", type=AMOUNT, default=100.0,
              help="records per second, 0: as fast as possible (default: 100.0)")
@click.option("--start", metavar="ISO|now",
              help="synthetic event clock from this moment (default: the wall clock)")
@click.option("--step-ms", type=int, default=100,
              help="event time between ticks on the synthetic clock (default: 100)")
@click.option("--duplicates", type=COUNT, default=0, help="re-send N ticks (same event id)")
@click.option("--late", type=COUNT, default=0, help="send N late ticks at the end")
@click.option("--late-by", type=float, default=300.0, metavar="S",
              help="how far behind the last tick a late one was observed (default: 300)")
def stream_produce(count: int, rate: float, start: str | None, step_ms: int, duplicates: int,
                   late: int, late_by: float) -> None:
    """Replay the bundled sample as ticks into the topic (LAB_KAFKA_TOPIC), keyed by asset,
    with re-sent and late ticks on demand."""
    from lab_env.streaming.produce import parse_time, produce

    result = produce(
        get_settings(), count=count, rate=rate, start=parse_time(start) if start else None,
        step_ms=step_ms, duplicates=duplicates, late=late, late_by_s=late_by,
    )
    say(f"produce: {result.sent} records to {result.topic!r} in {result.seconds:.1f} s "
         f"({result.rate:.0f}/s): {result.on_time} ticks, {result.duplicates} duplicates, "
         f"{result.late} late; event time {result.first_event_time} .. {result.last_event_time}")


@stream.command("run", short_help="Kafka -> bronze.stream_ticks and gold.stream_prices_1m "
                "(reads what is there, then stops)")
@click.option("--live", is_flag=True,
              help="keep running with a processing-time trigger (Ctrl-C stops)")
@click.option("--seconds", type=AMOUNT, help="with --live: stop after this long")
@click.option("--trigger", type=AMOUNT, default=1.0, metavar="S",
              help="with --live: seconds between micro-batches (default: 1)")
@click.option("--max-offsets", type=COUNT, metavar="N", help="at most N records per micro-batch")
def stream_run(live: bool, seconds: float | None, trigger: float, max_offsets: int | None
               ) -> None:
    """Run the streaming job: Kafka -> bronze.stream_ticks and gold.stream_prices_1m. It reads
    what the topic holds, then stops; with --live it keeps running until Ctrl-C or --seconds."""
    result = job.run(
        get_settings(), live=live, seconds=seconds, trigger_s=trigger,
        max_offsets_per_trigger=max_offsets, on_progress=lambda line: say(f"stream: {line}"),
    )
    rows = ", ".join(f"{name} {n} rows in {result.batches[name]} batches"
                     for name, n in result.input_rows.items())
    say(f"stream: {rows}; {result.late_rows_dropped} late and {result.duplicates_dropped} "
         f"duplicate ticks left out of the windows; watermark {result.watermark}; "
         f"{result.seconds:.1f} s")


COMMANDS: list[click.Command] = [kafka, stream]
