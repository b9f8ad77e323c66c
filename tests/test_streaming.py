"""M9 streaming, end to end on a real broker: Apache Kafka (KRaft) from its Maven jars, the tick
producer, Spark's Kafka source and the Iceberg sinks.

One broker serves the module. The crash test runs the job as `lab stream run` in a process of its
own (its own LAB_HOME, Spark and checkpoints) and kills it with SIGKILL mid-run; the in-process
tests share the session's Spark.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab_env.config import Settings, get_settings, load_settings
from lab_env.errors import LabError
from lab_env.streaming import broker
from lab_env.streaming.produce import produce
from tests.mistakes import mistake

REPO = Path(__file__).resolve().parents[1]
START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
STEP_MS = 500  # 2 ticks per second of event time: 120 per one-minute window


@pytest.fixture(scope="module")
def kafka(lab_home: Path) -> Iterator[str]:
    """One real broker for the module, under the session's LAB_HOME; its bootstrap address."""
    settings = get_settings()
    state, started = broker.start(settings)
    assert started, "a broker was already running for the test session's LAB_HOME"
    command = Path(f"/proc/{state.pid}/cmdline").read_bytes().split(b"\0")
    assert {b"-XX:TieredStopAtLevel=1", b"-XX:+UseSerialGC"} <= set(command), command
    try:
        yield state.bootstrap
    finally:
        stopped = broker.stop(settings)
        assert stopped is not None and stopped.pid == state.pid


def consume_all(bootstrap: str, topic: str, expected: int) -> list[dict]:
    """Every record of ``topic`` (a fresh group, from the start) with its key and partition."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.time_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    records: list[dict] = []
    deadline = time.monotonic() + 30
    try:
        while len(records) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            records.append(json.loads(msg.value()) | {"_key": msg.key().decode(),
                                                      "_partition": msg.partition()})
    finally:
        consumer.close()
    return records


def expected_windows(ticks: list[dict], watermark: dt.datetime) -> dict[tuple, tuple]:
    """(window start, asset) -> (ticks, min, max) of distinct ticks, for windows the watermark
    has passed (final in append mode)."""
    seen: set[str] = set()
    acc: dict[tuple, list[float]] = defaultdict(list)
    for tick in ticks:
        if tick["event_id"] in seen:
            continue
        seen.add(tick["event_id"])
        start = tick["event_time"].replace(second=0, microsecond=0)
        if start + dt.timedelta(minutes=1) <= watermark:
            acc[(start, tick["asset_id"])].append(tick["price_usd"])
    return {key: (len(p), min(p), max(p)) for key, p in acc.items()}


def test_broker_status_and_one_line_errors(
    kafka: str, lab_home: Path, fresh_settings: Settings
) -> None:
    state = broker.status(load_settings(home=lab_home))
    assert state is not None and state.bootstrap == kafka
    assert (lab_home / "kafka" / "data" / "meta.properties").is_file()
    # A LAB_HOME without a broker: a one-line error that says how to start one.
    with pytest.raises(LabError, match=r"No Kafka broker is running.*lab kafka start"):
        broker.bootstrap_servers(fresh_settings)


# A "kernel": starts the broker tied to itself, says its pid, and ends at once.
TIED_START = """
import sys
from lab_env.config import load_settings
from lab_env.streaming import broker
state, started = broker.start(load_settings(home=sys.argv[1]), tied=True)
print(state.pid if started else "not started", flush=True)
"""


def test_a_broker_left_by_an_ended_kernel_is_replaced_not_reused(tmp_path: Path) -> None:
    """Kernel > Restart in 09: the old kernel's tied broker got SIGTERM and is still shutting
    down when the new kernel's first cell asks for a broker. Reusing it would fail a moment
    later; the new kernel waits for it to end and starts its own."""
    home = tmp_path / "lakehouse"
    kernel = subprocess.run([sys.executable, "-c", TIED_START, str(home)], cwd=REPO,
                            capture_output=True, text=True, timeout=180, check=False)
    assert kernel.returncode == 0, kernel.stdout + kernel.stderr
    old = int(kernel.stdout.split()[-1])
    settings = load_settings(home=home)
    state, started = broker.start(settings)
    try:
        assert started and state.pid != old, "reused the broker of a kernel that has ended"
        assert not broker._is_our_broker(old)
        assert state.owner is None and broker.status(settings) == state
    finally:
        broker.stop(settings)


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """The storage tool reads ``-t -AAA...`` as two options: one start in 64 failed so."""
    import uuid

    drawn = iter([uuid.UUID(bytes=bytes([0xF8]) + bytes(15)), uuid.UUID(int=1)])
    monkeypatch.setattr(broker.uuid, "uuid4", lambda: next(drawn))
    cluster_id = broker.new_cluster_id()
    assert cluster_id == "AAAAAAAAAAAAAAAAAAAAAQ"  # the first draw, "-AAA...", was refused
    assert len(cluster_id) == 22


def test_producer_keys_by_asset_with_event_time_and_faults(kafka: str) -> None:
    settings = load_settings(kafka_topic="produce-test")
    result = produce(settings, count=60, rate=0, start=START, step_ms=STEP_MS,
                     duplicates=4, late=3, late_by_s=120)
    assert (result.sent, result.on_time, result.duplicates, result.late) == (67, 60, 4, 3)
    records = consume_all(kafka, "produce-test", 67)
    assert len(records) == 67
    # One asset, one partition: its ticks stay in order.
    partitions = defaultdict(set)
    for record in records:
        assert record["_key"] == record["asset_id"]
        partitions[record["asset_id"]].add(record["_partition"])
    assert all(len(p) == 1 for p in partitions.values())
    assert len({p for ps in partitions.values() for p in ps}) > 1, "every key in one partition"
    ids = [r["event_id"] for r in records]
    assert len(ids) - len(set(ids)) == 4  # the re-sent ticks keep their id
    last = START + dt.timedelta(milliseconds=59 * STEP_MS)
    late = [r for r in records if r["event_id"].endswith(tuple(f"L-{i:07d}" for i in range(3)))]
    assert {r["event_time"] for r in late} == {
        (last - dt.timedelta(seconds=120)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    }


def run_job(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lab_env.cli", "stream", "run", *args],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group: the kill takes the Spark JVM too
    )


def raw_rows(settings: Settings) -> list[dict]:
    from lab_env.lake.catalog import get_catalog

    try:
        table = get_catalog(settings).load_table("bronze.stream_ticks")
    except Exception:  # not created yet
        return []
    return table.scan().to_arrow().to_pylist()


@pytest.mark.spark
def test_kill_9_mid_run_then_restart_loses_and_duplicates_nothing(
    kafka: str, lab_home: Path, spark  # type: ignore[no-untyped-def]
) -> None:
    """SIGKILL `lab stream run` (Python and its Spark JVM) after its first commit, run the job
    again (here, in the session's Spark): every Kafka record is in bronze exactly once, and the
    windows hold exactly the distinct on-time ticks; the late ones are left out and counted."""
    from lab_env.streaming import job

    topic = "crash-test"
    settings = load_settings(home=lab_home, kafka_topic=topic, kafka_bootstrap=kafka)
    produced = produce(settings, count=600, rate=0, start=START, step_ms=STEP_MS,
                       duplicates=20, late=5, late_by_s=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env |= {"LAB_HOME": str(lab_home), "LAB_KAFKA_TOPIC": topic, "LAB_KAFKA_BOOTSTRAP": kafka,
            "LAB_SPARK_MASTER": "local[2]", "LAB_SPARK_DRIVER_MEMORY": "1g",
            "LAB_RECORD_PROGRESS": "false"}
    first = run_job(env, "--max-offsets", "60")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and first.poll() is None:
        if raw_rows(settings):
            break
        time.sleep(0.2)
    assert first.poll() is None, "the job finished before it could be killed: " + str(
        first.stdout.read() if first.stdout else "")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(30)
    killed_at = len(raw_rows(settings))
    assert 0 < killed_at < produced.sent

    again = job.run(settings, max_offsets_per_trigger=200)

    rows = raw_rows(settings)
    coordinates = {(r["kafka_partition"], r["kafka_offset"]) for r in rows}
    assert len(rows) == produced.sent == 625, "lost or duplicated Kafka records"
    assert len(coordinates) == len(rows), "a Kafka record is in bronze twice"
    assert all(r["event_time"] is not None and r["asset_id"] for r in rows)
    assert len({r["event_id"] for r in rows}) == 605  # 600 ticks + 5 late; 20 re-sent

    # The five late ticks reached the windows query after the kill (they are the topic's
    # last records): dropped there, and counted.
    assert again.late_rows_dropped == 5
    assert again.watermark is not None
    watermark = dt.datetime.fromisoformat(again.watermark.replace("Z", "+00:00"))
    from lab_env.lake.catalog import get_catalog

    gold = get_catalog(settings).load_table("gold.stream_prices_1m").scan().to_arrow().to_pylist()
    got = {(r["window_start"], r["asset_id"]): (r["ticks"], r["min_price_usd"],
                                                r["max_price_usd"]) for r in gold}
    on_time = [r for r in rows if "L-" not in r["event_id"]]
    assert len(got) == len(gold), "a window was written twice"
    assert got == expected_windows(on_time, watermark)
    assert len(got) >= 20  # at least the first minutes of every asset are final


# ----- the lesson's self-checks: the right answer passes, typical mistakes fail with a hint -----


def _lag(kind: str):  # type: ignore[no-untyped-def]
    """The learner's ``lag(bootstrap, topic, group)`` of 09.1: ``kind`` "right" is the answer,
    the others its typical mistakes."""

    def lag(bootstrap: str, topic: str, group: str) -> dict[int, int]:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        try:
            parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            out = {}
            for tp in consumer.committed([TopicPartition(topic, p) for p in parts], timeout=10):
                low, high = consumer.get_watermark_offsets(tp, timeout=10)
                if kind == "right":
                    out[tp.partition] = high - (tp.offset if tp.offset >= 0 else low)
                elif kind == "committed" and tp.offset >= 0:
                    out[tp.partition] = tp.offset
                elif kind == "end":
                    out[tp.partition] = high
                elif (kind == "skip_uncommitted" and tp.offset >= 0) or kind == "raw_invalid":
                    out[tp.partition] = high - tp.offset  # -1001 for a partition never read
            return out
        finally:
            consumer.close()

    return lag


@pytest.mark.parametrize(
    ("kind", "hint"),
    [
        pytest.param("committed", "committed offsets",
                     marks=mistake("09.1", "committed-offsets"), id="committed-offsets"),
        pytest.param("end", "every record", marks=mistake("09.1", "end-offsets"), id="end-offsets"),
        pytest.param("skip_uncommitted", "never committed",
                     marks=mistake("09.1", "skips-uncommitted"), id="skips-uncommitted"),
        ("raw_invalid", "partition 2 has lag"),
    ],
)
def test_consumer_lag_check_names_the_mistake(kafka: str, kind: str, hint: str) -> None:
    from lab_env.course.checks.streaming import consumer_lag

    result = consumer_lag(_lag(kind), bootstrap=kafka)
    assert not result.passed and hint in result.message, result.message


def test_consumer_lag_check_passes_the_right_answer(kafka: str) -> None:
    from lab_env.course.checks.streaming import consumer_lag

    assert consumer_lag(_lag("right"), bootstrap=kafka).passed


SINK = "silver.stream_ticks_check_test"


def _sink(kind: str):  # type: ignore[no-untyped-def]
    def write_batch(batch, batch_id: int) -> None:  # type: ignore[no-untyped-def]
        spark = batch.sparkSession
        if kind == "append":
            batch.writeTo(f"lake.{SINK}").append()
        elif kind == "overwrite":
            batch.dropDuplicates(["event_id"]).writeTo(f"lake.{SINK}").overwritePartitions()
        elif kind in ("merge_no_dedupe", "merge"):
            source = batch if kind == "merge_no_dedupe" else batch.dropDuplicates(["event_id"])
            source.createOrReplaceTempView("incoming")
            spark.sql(f"MERGE INTO lake.{SINK} t USING incoming s ON t.event_id = s.event_id "
                      "WHEN NOT MATCHED THEN INSERT *")

    return write_batch


def _create_sink(spark) -> None:  # type: ignore[no-untyped-def]
    """The learner's sink table of 09.2, as the notebook creates it."""
    spark.sql(f"CREATE TABLE IF NOT EXISTS lake.{SINK} (event_id STRING, asset_id STRING, "
              "event_time TIMESTAMP, price_usd DOUBLE) USING iceberg")


def _idempotent_sink_check(spark, kind: str):  # type: ignore[no-untyped-def]
    """09.2's check on the sink of ``kind``, written into the table the notebook creates."""
    from lab_env.course.checks.streaming import idempotent_sink

    _create_sink(spark)
    return idempotent_sink(_sink(kind), SINK, spark=spark)


def _windows(kind: str):  # type: ignore[no-untyped-def]
    from pyspark.sql import functions as F

    def build(ticks):  # type: ignore[no-untyped-def]
        time_column = "kafka_timestamp" if kind == "processing_time" else "event_time"
        if kind != "no_watermark":
            ticks = ticks.withWatermark(time_column, "30 seconds")
        if kind not in ("no_dedupe", "no_watermark"):
            ticks = ticks.dropDuplicatesWithinWatermark(["event_id"])
        return (
            ticks.groupBy(F.window(time_column, "1 minute").alias("w"), "asset_id")
            .agg(F.count("*").alias("ticks"))
            .select(F.col("w.start").alias("window_start"), F.col("w.end").alias("window_end"),
                    "asset_id", "ticks")
        )

    return build


def _event_time_windows_check(spark, kind: str):  # type: ignore[no-untyped-def]
    """09.3's check on the windowed count of ``kind``."""
    from lab_env.course.checks.streaming import event_time_windows

    return event_time_windows(_windows(kind), spark=spark)


@pytest.mark.spark
@pytest.mark.parametrize(
    ("check", "kind", "hint"),
    [
        pytest.param(_idempotent_sink_check, "append", "appended again",
                     marks=mistake("09.2", "plain-append"), id="idempotent-sink-plain-append"),
        pytest.param(_idempotent_sink_check, "overwrite", "overwrite replaces",
                     marks=mistake("09.2", "overwrite"), id="idempotent-sink-overwrite"),
        pytest.param(_idempotent_sink_check, "merge_no_dedupe", "re-sent",
                     marks=mistake("09.2", "merge-without-dedupe"),
                     id="idempotent-sink-merge-without-dedupe"),
        pytest.param(_event_time_windows_check, "no_watermark", "without a watermark",
                     marks=mistake("09.3", "no-watermark"), id="event-time-windows-no-watermark"),
        pytest.param(_event_time_windows_check, "processing_time", "processing time",
                     marks=mistake("09.3", "processing-time"),
                     id="event-time-windows-processing-time"),
        pytest.param(_event_time_windows_check, "no_dedupe", "counted twice",
                     marks=mistake("09.3", "no-dedupe"), id="event-time-windows-no-dedupe"),
    ],
)
def test_spark_check_names_the_mistake(spark, check, kind: str, hint: str) -> None:  # type: ignore[no-untyped-def]
    """09.2 and 09.3: the learner's code of a typical mistake fails with the hint naming it."""
    result = check(spark, kind)
    assert not result.passed and hint in result.message, result.message


@pytest.mark.spark
@pytest.mark.parametrize(
    ("check", "kind"),
    [
        pytest.param(_idempotent_sink_check, "merge", id="idempotent-sink"),
        pytest.param(_event_time_windows_check, "right", id="event-time-windows"),
    ],
)
def test_spark_check_passes_the_right_answer(spark, check, kind: str) -> None:  # type: ignore[no-untyped-def]
    assert check(spark, kind).passed
