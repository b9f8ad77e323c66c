"""The bundled sample replayed as a stream of price ticks into a Kafka topic.

Each round sends one tick per asset, walking the sample's hourly prices in order. A tick's key
is its asset id (so one asset's ticks stay in one partition, in order), its value JSON with the
event time: the moment the price was observed, which the streaming job windows by. The Kafka
record's own timestamp is the moment it was sent.

The event clock is the wall clock by default (a live ticker); ``start`` makes it synthetic and
reproducible (tick i observed at ``start + i * step_ms``), so a test or a lesson can send a
fixed stream as fast as the broker takes it. Faults on demand, like the replay server's:
``duplicates`` re-sends ticks already sent (an upstream retry: same event id, same event time),
``late`` sends ticks at the end that were observed ``late_by_s`` before the last on-time one.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

from lab_env.config import Settings, get_settings
from lab_env.errors import LabError
from lab_env.source import samples
from lab_env.streaming.broker import DEFAULT_PARTITIONS, bootstrap_servers


@dataclass(frozen=True)
class ProduceResult:
    """What one replay sent."""

    topic: str
    sent: int  # records written to the topic, duplicates and late ticks included
    on_time: int  # distinct ticks in event-time order
    duplicates: int
    late: int
    first_event_time: dt.datetime | None
    last_event_time: dt.datetime | None  # of the on-time ticks
    seconds: float
    run_id: str

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else float("inf")


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ticks(count: int, start: dt.datetime | None = None, step_ms: int = 100,
          run_id: str = "") -> list[dict[str, Any]]:
    """``count`` tick payloads, round-robin over the sample's assets, in sample order.

    ``event_time`` is None when ``start`` is None (the sender stamps the wall clock).
    """
    ids = samples.asset_ids()
    histories = {asset: samples.load_history(asset) for asset in ids}
    out = []
    for i in range(count):
        asset = ids[i % len(ids)]
        history = histories[asset]
        point = history[(i // len(ids)) % len(history)]
        event_time = start + dt.timedelta(milliseconds=i * step_ms) if start else None
        out.append({
            "event_id": f"{run_id}-{i:07d}",
            "asset_id": asset,
            "event_time": _iso(event_time) if event_time else None,
            "price_usd": float(point["priceUsd"]),
        })
    return out


def ensure_topic(bootstrap: str, topic: str, partitions: int = DEFAULT_PARTITIONS) -> bool:
    """Create ``topic`` if it does not exist; True if it was created now."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    try:
        if topic in admin.list_topics(timeout=10).topics:
            return False
        future = admin.create_topics([NewTopic(topic, partitions, 1)])[topic]
        future.result(timeout=15)
    except KafkaException as exc:
        error = exc.args[0]
        if getattr(error, "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
            return False
        raise LabError(
            f"Kafka at {bootstrap} refused topic {topic!r} ({error}).",
            "check the broker with `lab kafka status`.",
        ) from exc
    return True


def reset_topic(bootstrap: str, topic: str, partitions: int = DEFAULT_PARTITIONS) -> None:
    """Delete ``topic`` (and every record in it) if it exists, then create it empty."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    if topic in admin.list_topics(timeout=10).topics:
        admin.delete_topics([topic])[topic].result(timeout=15)
        deadline = time.monotonic() + 30
        while topic in admin.list_topics(timeout=10).topics:
            if time.monotonic() > deadline:
                raise LabError(f"Kafka did not delete topic {topic!r} within 30 s.",
                               "try again in a moment.")
            time.sleep(0.2)
    deadline = time.monotonic() + 30
    while True:  # a just-deleted name can be refused for a moment
        try:
            ensure_topic(bootstrap, topic, partitions)
            return
        except LabError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def produce(
    settings: Settings | None = None,
    *,
    count: int = 600,
    rate: float = 100.0,
    start: dt.datetime | None = None,
    step_ms: int = 100,
    duplicates: int = 0,
    late: int = 0,
    late_by_s: float = 300.0,
    seed: int = 9,
    topic: str | None = None,
) -> ProduceResult:
    """Replay ``count`` ticks at ``rate`` per second (0: as fast as possible), with faults."""
    from confluent_kafka import Producer

    settings = settings or get_settings()
    if count < 0 or duplicates < 0 or late < 0 or rate < 0 or step_ms <= 0 or late_by_s <= 0:
        raise LabError(
            "count, duplicates, late and rate must be >= 0, step_ms and late_by_s > 0.",
            "e.g. lab stream produce --count 600 --rate 100 --late 5 --duplicates 10.",
        )
    if duplicates > count:
        raise LabError(f"{duplicates} duplicates of {count} ticks.", "use --duplicates <= --count.")
    topic = topic or settings.kafka_topic
    bootstrap = bootstrap_servers(settings)
    ensure_topic(bootstrap, topic)
    run_id = uuid.uuid4().hex[:8]
    payloads = ticks(count, start, step_ms, run_id)
    rng = random.Random(seed)
    # Each duplicate goes right after its original, as a retried send would.
    dup_of = set(rng.sample(range(count), duplicates))
    plan: list[tuple[dict[str, Any], str]] = []
    for i, tick in enumerate(payloads):
        plan.append((tick, "on_time"))
        if i in dup_of:
            plan.append((tick, "duplicate"))
    late_ticks = ticks(late, None, step_ms, run_id + "L") if late else []
    plan.extend((tick, "late") for tick in late_ticks)

    # Idempotent producer: the broker drops the producer's own retries; our "duplicates" are
    # new sends of the same tick, which it cannot tell from new ticks.
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "log_level": 3,  # errors only: no warnings while a fresh broker loads its coordinators
    })
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    first: dt.datetime | None = None
    last: dt.datetime | None = None
    began = time.monotonic()
    for n, (tick, kind) in enumerate(plan):
        if rate > 0:
            wait = began + n / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        if kind == "late":
            base = last or dt.datetime.now(dt.UTC)
            tick = {**tick, "event_time": _iso(base - dt.timedelta(seconds=late_by_s))}
        elif tick["event_time"] is None and kind == "on_time":
            tick["event_time"] = _iso(dt.datetime.now(dt.UTC))
        if kind == "on_time":
            moment = dt.datetime.fromisoformat(tick["event_time"].replace("Z", "+00:00"))
            first = first or moment
            last = moment
        value = json.dumps(tick, separators=(",", ":")).encode()
        while True:
            try:
                producer.produce(topic, key=tick["asset_id"].encode(), value=value,
                                 on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(30)
    if failures or remaining:
        raise LabError(
            f"{len(failures) + remaining} of {len(plan)} ticks were not delivered to {topic!r} "
            f"({failures[0] if failures else 'timed out'}).",
            "check the broker with `lab kafka status`, then run the producer again.",
        )
    return ProduceResult(topic, len(plan), count, duplicates, late, first, last,
                         time.monotonic() - began, run_id)


def parse_time(text: str) -> dt.datetime:
    """An ISO-8601 moment (``2025-01-01T00:00:00Z``), or ``now``; naive means UTC."""
    if text == "now":
        return dt.datetime.now(dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise LabError(
            f"--start {text!r} is not an ISO-8601 time.", "use e.g. 2025-01-01T00:00:00Z or now."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
