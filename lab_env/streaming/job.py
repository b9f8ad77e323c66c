"""The streaming job: Kafka ticks -> Iceberg, with Spark Structured Streaming.

Two queries read the topic, each with its own checkpoint under ``LAB_HOME/checkpoints/stream``:

* **raw**: every Kafka record, parsed with an explicit schema, appended to
  ``bronze.stream_ticks`` with its partition and offset. Exactly once: the checkpoint records
  which offsets each micro-batch read, and Iceberg's streaming commit records the query id and
  batch id in the snapshot, so a batch replayed after a crash is skipped, not appended twice.
* **windows**: ticks deduplicated by event id, one-minute event-time windows per asset behind a
  watermark, appended to ``gold.stream_prices_1m`` once a window is final (append mode). Ticks
  older than the watermark are dropped from the windows and counted by Spark.

``available_now`` (tests, backfills) reads what the topic holds and stops; otherwise a
processing-time trigger runs until stopped (``lab stream run --live``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab_env.config import Settings, get_settings
from lab_env.errors import LabError
from lab_env.streaming.broker import bootstrap_servers

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

RAW_TABLE = "bronze.stream_ticks"
WINDOW_TABLE = "gold.stream_prices_1m"
WATERMARK = "30 seconds"
WINDOW = "1 minute"

# The tick's JSON, as the producer writes it. Explicit: a schema inferred from a stream would
# change with whatever arrived first.
TICK_DDL = "event_id STRING, asset_id STRING, event_time TIMESTAMP, price_usd DOUBLE"

RAW_COLUMNS = """
    event_id STRING COMMENT 'the id the producer gave the tick (a re-sent tick keeps it)',
    asset_id STRING COMMENT 'the Kafka key',
    event_time TIMESTAMP COMMENT 'when the price was observed (from the payload)',
    price_usd DOUBLE,
    kafka_partition INT,
    kafka_offset BIGINT COMMENT 'with kafka_partition: one row per Kafka record',
    kafka_timestamp TIMESTAMP COMMENT 'when the producer sent it',
    payload STRING COMMENT 'the record as received, also when it does not parse'
"""
WINDOW_COLUMNS = """
    window_start TIMESTAMP, window_end TIMESTAMP, asset_id STRING,
    ticks BIGINT COMMENT 'distinct ticks (by event_id) observed in the window',
    avg_price_usd DOUBLE, min_price_usd DOUBLE, max_price_usd DOUBLE
"""


@dataclass
class StreamRun:
    """What one run of the job did (summed over its micro-batches)."""

    batches: dict[str, int] = field(default_factory=dict)  # query -> micro-batches run
    input_rows: dict[str, int] = field(default_factory=dict)  # query -> Kafka records read
    late_rows_dropped: int = 0  # ticks behind the watermark, left out of the windows
    duplicates_dropped: int = 0  # re-sent ticks, left out of the windows
    watermark: str | None = None  # the windows query's last watermark (ISO-8601, UTC)
    seconds: float = 0.0


def checkpoint_dir(settings: Settings) -> Path:
    return settings.lab_home / "checkpoints" / "stream"


def create_tables(spark: SparkSession, settings: Settings) -> None:
    """The two sinks, created with explicit schemas (a no-op if they exist)."""
    cat = settings.catalog_name
    for namespace in ("bronze", "gold"):
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {cat}.{namespace}")
    spark.sql(f"CREATE TABLE IF NOT EXISTS {cat}.{RAW_TABLE} ({RAW_COLUMNS}) USING iceberg")
    spark.sql(f"CREATE TABLE IF NOT EXISTS {cat}.{WINDOW_TABLE} ({WINDOW_COLUMNS}) USING iceberg")


def read_ticks(spark: SparkSession, settings: Settings, *,
               max_offsets_per_trigger: int | None = None) -> DataFrame:
    """The topic as a stream of parsed ticks, with the Kafka coordinates of each record."""
    from pyspark.sql import functions as F

    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap_servers(settings))
        .option("subscribe", settings.kafka_topic)
        .option("startingOffsets", "earliest")
    )
    if max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    records = reader.load()
    payload = F.col("value").cast("string")
    return records.select(
        F.from_json(payload, TICK_DDL, {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss[.SSS]XXX"})
        .alias("tick"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        payload.alias("payload"),
    ).select("tick.*", "kafka_partition", "kafka_offset", "kafka_timestamp", "payload")


def windows(ticks: DataFrame, watermark: str = WATERMARK, window: str = WINDOW) -> DataFrame:
    """Distinct ticks per asset and event-time window, final once the watermark passes it."""
    from pyspark.sql import functions as F

    return (
        ticks.where(F.col("event_time").isNotNull())
        .withWatermark("event_time", watermark)
        .dropDuplicatesWithinWatermark(["event_id"])
        .groupBy(F.window("event_time", window).alias("w"), "asset_id")
        .agg(
            F.count("*").alias("ticks"),
            F.avg("price_usd").alias("avg_price_usd"),
            F.min("price_usd").alias("min_price_usd"),
            F.max("price_usd").alias("max_price_usd"),
        )
        .select(
            F.col("w.start").alias("window_start"),
            F.col("w.end").alias("window_end"),
            "asset_id", "ticks", "avg_price_usd", "min_price_usd", "max_price_usd",
        )
    )


def start_queries(
    spark: SparkSession,
    settings: Settings,
    *,
    available_now: bool = True,
    trigger_s: float = 1.0,
    max_offsets_per_trigger: int | None = None,
    watermark: str = WATERMARK,
    window: str = WINDOW,
    which: tuple[str, ...] = ("raw", "windows"),
) -> dict[str, StreamingQuery]:
    """Start the job's queries; each writes an Iceberg table through its own checkpoint."""
    create_tables(spark, settings)
    trigger: dict[str, Any] = (
        {"availableNow": True} if available_now else {"processingTime": f"{trigger_s} seconds"}
    )
    cat = settings.catalog_name
    ticks = read_ticks(spark, settings, max_offsets_per_trigger=max_offsets_per_trigger)
    plans = {
        # One task and one data file per micro-batch instead of one per Kafka partition: a
        # lab's stream is small, and every file is a small file for `lab maintain` to compact.
        "raw": (ticks.coalesce(1), RAW_TABLE),
        "windows": (windows(ticks, watermark, window), WINDOW_TABLE),
    }
    queries = {}
    for name in which:
        frame, table = plans[name]
        queries[name] = (
            frame.writeStream.format("iceberg")
            .outputMode("append")
            .queryName(f"stream_{name}")
            .trigger(**trigger)
            .option("checkpointLocation", str(checkpoint_dir(settings) / name))
            .toTable(f"{cat}.{table}")
        )
    return queries


def summarize(queries: dict[str, StreamingQuery], began: float) -> StreamRun:
    """Sum the queries' progress reports (Spark keeps the last 100 of each)."""
    run = StreamRun(seconds=time.monotonic() - began)
    for name, query in queries.items():
        progress = [p for p in query.recentProgress if p]
        run.batches[name] = len({p["batchId"] for p in progress})
        run.input_rows[name] = sum(int(p.get("numInputRows", 0)) for p in progress)
        if name != "windows":
            continue
        for p in progress:
            for op in p.get("stateOperators", []):
                run.late_rows_dropped += int(op.get("numRowsDroppedByWatermark", 0))
                run.duplicates_dropped += int(
                    op.get("customMetrics", {}).get("numDroppedDuplicateRows", 0)
                )
        marks = [p.get("eventTime", {}).get("watermark") for p in progress]
        run.watermark = next((m for m in reversed(marks) if m), None)
    return run


def run(
    settings: Settings | None = None,
    *,
    live: bool = False,
    seconds: float | None = None,
    trigger_s: float = 1.0,
    max_offsets_per_trigger: int | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> StreamRun:
    """Run the job: until the topic is read (``live=False``), or for ``seconds`` / until Ctrl-C."""
    from lab_env.lake.spark import get_spark

    settings = settings or get_settings()
    bootstrap_servers(settings)  # no broker: say so before Spark starts
    spark = get_spark(settings)
    began = time.monotonic()
    queries = start_queries(spark, settings, available_now=not live, trigger_s=trigger_s,
                            max_offsets_per_trigger=max_offsets_per_trigger)
    try:
        if live:
            deadline = None if seconds is None else began + seconds
            while deadline is None or time.monotonic() < deadline:
                for query in queries.values():
                    if query.exception() is not None:
                        raise query.exception()  # type: ignore[misc]
                if on_progress:
                    on_progress(_progress_line(queries))
                time.sleep(min(5.0, seconds or 5.0))
        else:
            for query in queries.values():
                query.awaitTermination()
    finally:
        for query in queries.values():
            if query.isActive:
                query.stop()
    for query in queries.values():
        error = query.exception()
        if error is not None:
            raise LabError(
                f"Streaming query {query.name} failed: {str(error).splitlines()[0][:300]}.",
                "check the broker (`lab kafka status`) and `lab --verbose stream run`.",
            )
    return summarize(queries, began)


def _progress_line(queries: dict[str, StreamingQuery]) -> str:
    parts = []
    for name, query in queries.items():
        last = query.lastProgress or {}
        parts.append(f"{name}: batch {last.get('batchId', '-')}, "
                     f"{last.get('numInputRows', 0)} rows")
    return "; ".join(parts)
