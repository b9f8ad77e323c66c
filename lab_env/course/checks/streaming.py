"""Self-checks for 09 streaming. Each one runs the learner's code on a small stream of its own
(files or a Kafka topic of its own, under LAB_HOME/checks/09), so it judges what the code does,
not how it is spelled, and never touches the lesson's tables or topic.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab_env.config import get_settings
from lab_env.course.checks._core import _Verdict, exercise, fail, ok

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
# When the check's ticks "arrived": a day after they were observed, so windows in processing
# time (the arrival) can never be taken for windows in event time.
ARRIVED = dt.datetime(2025, 1, 2, 12, 0, tzinfo=dt.UTC)
TICK_SCHEMA = ("event_id STRING, asset_id STRING, event_time TIMESTAMP, price_usd DOUBLE, "
               "kafka_partition INT, kafka_offset BIGINT, kafka_timestamp TIMESTAMP, "
               "payload STRING")


def _tick(event_id: str, asset: str, second: int, price: float, offset: int) -> dict[str, Any]:
    return {
        "event_id": event_id, "asset_id": asset,
        "event_time": (T0 + dt.timedelta(seconds=second)).isoformat(),
        "price_usd": price, "kafka_partition": 0, "kafka_offset": offset,
        "kafka_timestamp": (ARRIVED + dt.timedelta(seconds=5 * offset)).isoformat(),
        "payload": "{}",
    }


def window_batches() -> list[list[dict[str, Any]]]:
    """Three micro-batches of ticks for two assets, every 10 s of event time.

    Batch 0: 00:00:00-00:02:50 and one re-sent tick. Batch 1: 00:03:00-00:04:10. Batch 2: a tick
    from 00:00:05 and one at 00:05:00. Spark drops a row older than the watermark of the batch
    before (00:02:20 by batch 2): the tick from 00:00:05 is late.
    """
    batches: list[list[dict[str, Any]]] = [[], [], []]
    offset = 0
    for second in range(0, 180, 10):
        for n, asset in enumerate(("bitcoin", "ethereum")):
            batches[0].append(_tick(f"{asset}-{second}", asset, second, 100.0 * (n + 1) + second,
                                    offset))
            offset += 1
    batches[0].append(dict(batches[0][4], kafka_offset=offset))  # re-sent: same event id
    offset += 1
    for second in range(180, 260, 10):
        batches[1].append(_tick(f"bitcoin-{second}", "bitcoin", second, 100.0 + second, offset))
        offset += 1
    batches[2].append(_tick("bitcoin-late", "bitcoin", 5, 1.0, offset))
    batches[2].append(_tick("bitcoin-300", "bitcoin", 300, 400.0, offset + 1))
    return batches


def expected_windows() -> dict[tuple[dt.datetime, str], int]:
    """The final one-minute windows up to 00:03: six distinct on-time ticks each."""
    return {(T0.replace(tzinfo=None) + dt.timedelta(minutes=m), asset): 6
            for m in range(3) for asset in ("bitcoin", "ethereum")}


def _scratch(name: str) -> Path:
    folder = get_settings().lab_home / "checks" / "09" / f"{name}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    return folder


def run_windows(spark: SparkSession, build: Callable[[DataFrame], DataFrame]) -> list[dict]:
    """Feed :func:`window_batches` through ``build`` as a file stream, one file per micro-batch,
    and collect what an append-mode sink receives."""
    folder = _scratch("windows")
    source = folder / "in"
    source.mkdir()
    for i, batch in enumerate(window_batches()):
        path = source / f"batch-{i}.json"
        path.write_text("".join(json.dumps(t) + "\n" for t in batch))
        os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))  # files are read in mtime order
    ticks = spark.readStream.schema(TICK_SCHEMA).option("maxFilesPerTrigger", 1).json(str(source))
    out = build(ticks)
    rows: list[dict] = []
    try:
        query = (
            out.writeStream.outputMode("append")
            .foreachBatch(lambda frame, _id: rows.extend(r.asDict() for r in frame.collect()))
            .trigger(availableNow=True)
            .option("checkpointLocation", str(folder / "checkpoint"))
            .start()
        )
        query.awaitTermination()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


@exercise("09.3", "Event-time windows behind a watermark, duplicates and late ticks left out")
def event_time_windows(build: Callable[[DataFrame], DataFrame],
                       spark: SparkSession | None = None) -> _Verdict:
    """``build(ticks)`` returns one row per final one-minute window and asset: ``window_start``,
    ``window_end``, ``asset_id``, ``ticks`` (distinct event ids)."""
    from lab_env.lake.spark import get_spark

    spark = spark or get_spark()
    try:
        rows = run_windows(spark, build)
    except Exception as exc:
        text = str(exc).lower()
        if "without watermark" in text or ("watermark" in text and "append" in text):
            return fail("Spark refuses an append-mode aggregation without a watermark: it could "
                        "never tell when a window is final. Add .withWatermark('event_time', "
                        "'30 seconds') before the groupBy.")
        raise
    if not rows:
        return fail("no window was emitted: in append mode a window leaves only once the "
                    "watermark passes its end; use a 30-second delay on event_time and "
                    "one-minute windows.")
    missing = {"window_start", "window_end", "asset_id", "ticks"} - set(rows[0])
    if missing:
        return fail(f"your result has no column(s) {sorted(missing)}: select window.start AS "
                    "window_start, window.end AS window_end, asset_id and the count AS ticks.")
    starts = {r["window_start"] for r in rows}
    if any(s is not None and s.date() != T0.date() for s in starts):
        return fail("your windows start on the day the ticks arrived, not when they were "
                    "observed: that is processing time (kafka_timestamp or current_timestamp). "
                    "Window by event_time, the time in the payload.")
    if any(r["window_end"] - r["window_start"] != dt.timedelta(minutes=1) for r in rows):
        return fail("your windows are not one minute long: window('event_time', '1 minute').")
    if any(r["asset_id"] is None for r in rows):
        return fail("group by the window AND asset_id: one row per asset per minute.")
    got = {(r["window_start"], r["asset_id"]): r["ticks"] for r in rows}
    if len(got) != len(rows):
        return fail("a window was emitted twice: use append mode, where each window is final.")
    want = expected_windows()
    first = (T0.replace(tzinfo=None), "bitcoin")
    if got.get(first) == 8:
        return fail("bitcoin's 00:00 window counts 8 ticks: a re-sent tick and a late one. "
                    "Drop duplicates by event_id (dropDuplicatesWithinWatermark) and keep the "
                    "watermark short (30 seconds) so the late tick is dropped.")
    if got.get(first) == 7:
        return fail("bitcoin's 00:00 window counts 7 ticks, not 6: a tick re-sent with the same "
                    "event_id is counted twice, or the late tick (observed 00:00:05, arrived "
                    "after 00:04) got in. Use .dropDuplicatesWithinWatermark(['event_id']) "
                    "after a 30-second watermark.")
    wrong = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
    if wrong:
        key, (seen, expected) = next(iter(wrong.items()))
        return fail(f"window {key[0]:%H:%M} of {key[1]} has {seen} ticks, expected {expected} "
                    "distinct ones; count rows after dropping duplicates, per window and asset.")
    return ok(f"{len(got)} final windows in event time; the re-sent tick and the late one "
              "are left out")


@exercise("09.2", "A foreachBatch sink that stays exact when a batch is replayed")
def idempotent_sink(write_batch: Callable[[DataFrame, int], None], table: str,
                    spark: SparkSession | None = None) -> _Verdict:
    """``write_batch(batch, batch_id)`` writes ticks into ``table`` (emptied first) so that a
    replayed batch, a tick re-sent within a batch and one re-sent in a later batch all leave
    each event_id exactly once."""
    from lab_env.lake.spark import get_spark

    spark = spark or get_spark()
    spark.sql(f"DELETE FROM {table}")
    ticks = [t for batch in window_batches() for t in batch][:12]
    columns = "event_id STRING, asset_id STRING, event_time TIMESTAMP, price_usd DOUBLE"

    def frame(rows: list[dict[str, Any]]) -> DataFrame:
        data = [(r["event_id"], r["asset_id"], dt.datetime.fromisoformat(r["event_time"]),
                 r["price_usd"]) for r in rows]
        return spark.createDataFrame(data, columns)

    batch0 = [*ticks[:8], ticks[3]]  # a tick re-sent within the batch
    batch1 = [*ticks[8:], ticks[1]]  # and one re-sent a batch later
    steps = [("batch 0", batch0, 0), ("batch 0 replayed after a crash", batch0, 0),
             ("batch 1", batch1, 1)]
    for what, rows, batch_id in steps:
        try:
            write_batch(frame(rows), batch_id)
        except Exception as exc:
            text = str(exc)
            if "MERGE" in text.upper() and "multiple" in text.lower():
                return fail(f"{what}: MERGE refuses a batch in which one event_id appears twice "
                            "(a tick re-sent within the batch): drop duplicates by event_id in "
                            "the batch before the MERGE.")
            raise
    counts = {r["event_id"]: r["n"] for r in spark.sql(
        f"SELECT event_id, count(*) AS n FROM {table} GROUP BY event_id").collect()}
    want = {t["event_id"] for t in ticks}
    doubled = sorted(k for k, n in counts.items() if n > 1)
    if len(doubled) >= 8:
        return fail(f"{len(doubled)} event ids are there twice: the replayed batch was appended "
                    "again. A plain append is at-least-once; MERGE INTO on event_id (or skip a "
                    "batch_id the table has already committed) makes the replay harmless.")
    if doubled:
        return fail(f"{doubled} are there twice: a tick re-sent by the producer has the same "
                    "event_id; drop duplicates within the batch and MERGE on event_id so a "
                    "later batch does not add it again.")
    if set(counts) < want:
        lost = sorted(want - set(counts))
        return fail(f"{len(lost)} ticks are missing (e.g. {lost[0]}): an overwrite replaces "
                    "what earlier batches wrote. Merge or append; never overwrite the table.")
    if set(counts) != want:
        return fail(f"unexpected event ids {sorted(set(counts) - want)} in {table}.")
    return ok(f"{len(want)} distinct ticks exactly once after a replayed batch and two re-sends")


@exercise("09.1", "Consumer lag per partition")
def consumer_lag(lag: Callable[[str, str, str], dict[int, int]],
                 bootstrap: str | None = None) -> _Verdict:
    """``lag(bootstrap, topic, group)`` returns {partition: records the group has not read}."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    from lab_env.streaming.broker import bootstrap_servers
    from lab_env.streaming.produce import ensure_topic

    bootstrap = bootstrap or bootstrap_servers()
    topic = f"check-lag-{uuid.uuid4().hex[:8]}"
    group = f"{topic}-group"
    ensure_topic(bootstrap, topic, partitions=3)
    producer = Producer({"bootstrap.servers": bootstrap})
    for partition, count in ((0, 10), (1, 6), (2, 4)):
        for i in range(count):
            producer.produce(topic, value=b"x", key=str(i).encode(), partition=partition)
    producer.flush(15)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    # The group has read 7 of partition 0 and all of partition 1; it never read partition 2.
    consumer.commit(offsets=[TopicPartition(topic, 0, 7), TopicPartition(topic, 1, 6)],
                    asynchronous=False)
    consumer.close()
    want = {0: 3, 1: 0, 2: 4}
    got = {int(k): int(v) for k, v in (lag(bootstrap, topic, group) or {}).items()}
    if got == {0: 7, 1: 6} or got == {0: 7, 1: 6, 2: 0}:
        return fail("those are the committed offsets (where the group will read next), not the "
                    "lag: lag = the partition's end offset (high watermark) - committed offset.")
    if got == {0: 10, 1: 6, 2: 4}:
        return fail("that is every record in each partition: subtract the group's committed "
                    "offset (consumer.committed) from the end offset.")
    if set(got) != set(want):
        return fail(f"partitions {sorted(got)}, but the topic has {sorted(want)}: a partition "
                    "the group never committed is still lagging (count all its records).")
    if got[2] != want[2]:
        return fail(f"partition 2 has lag {got[2]}: the group never committed there "
                    "(committed offset is negative, OFFSET_INVALID), so all its records "
                    "(end - low watermark) are unread.")
    if got != want:
        return fail(f"lag {got}, expected {want}: end offset (high watermark) - committed.")
    return ok(f"lag {got}: the group read partition 1, is 3 behind on 0, never read 2")
