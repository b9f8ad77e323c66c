"""Produce -> visible in Iceberg: the latency of the raw stream, and its throughput, at a set rate.

    .venv/bin/python bench/streaming.py [--rate 100] [--warmup 20] [--seconds 60] [--trigger 0.5]

In a fresh LAB_HOME: the lab's Kafka broker (`lab kafka start`'s, tied to this process), the
streaming job's raw query (Kafka -> bronze.stream_ticks, processing-time trigger) in this
process's Spark, and the tick producer in a thread at ``--rate`` records per second with the
wall clock as event time. After ``--warmup`` seconds (Spark's first batches compile code and
open the catalog) it measures for ``--seconds``.

A record's latency is the commit time of the Iceberg snapshot that added its data file (the
moment a reader can see it: Iceberg has no earlier visibility) minus the record's Kafka
timestamp (CreateTime: when the producer was handed it). Both clocks are this machine's. The
figures go in docs/streaming.md with the machine's load (printed first and last).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="records per second (100)")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds before measuring (20)")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds measured (60)")
    parser.add_argument("--trigger", type=float, default=0.5,
                        help="seconds between micro-batches (0.5)")
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="lab-bench-streaming-"))
    os.environ.update({"LAB_HOME": str(home), "LAB_KAFKA_TOPIC": "bench",
                       "LAB_RECORD_PROGRESS": "false"})
    os.environ.setdefault("LAB_SPARK_MASTER", "local[2]")
    from lab_env.config import get_settings
    from lab_env.lake.spark import get_spark
    from lab_env.streaming import broker, job
    from lab_env.streaming.produce import ensure_topic, produce

    print(f"start: {load()}")
    settings = get_settings()
    state, _ = broker.start(settings, tied=True)
    try:
        ensure_topic(state.bootstrap, settings.kafka_topic)
        spark = get_spark(settings)
        queries = job.start_queries(spark, settings, available_now=False,
                                    trigger_s=args.trigger, which=("raw",))
        total = args.warmup + args.seconds
        sender = threading.Thread(
            target=produce, kwargs={"settings": settings, "count": int(args.rate * total),
                                    "rate": args.rate}, daemon=True)
        began = time.time()
        sender.start()
        sender.join(total + 60)
        measured_from = began + args.warmup
        measured_to = time.time()
        time.sleep(3 * args.trigger + 2)  # the last batches commit
        progress = list(queries["raw"].recentProgress)
        for query in queries.values():
            query.stop()
        cat = settings.catalog_name
        stats = spark.sql(f"""
            WITH added AS (
                SELECT e.data_file.file_path AS file, s.committed_at
                FROM {cat}.{job.RAW_TABLE}.entries e
                JOIN {cat}.{job.RAW_TABLE}.snapshots s USING (snapshot_id)
                WHERE e.status = 1),
            lat AS (
                SELECT (unix_millis(a.committed_at) - unix_millis(t.kafka_timestamp)) / 1000.0 AS s
                FROM {cat}.{job.RAW_TABLE} t JOIN added a ON t._file = a.file
                WHERE t.kafka_timestamp >= timestamp_millis({int(measured_from * 1000)}))
            SELECT count(*) AS n, percentile(s, 0.5) AS p50, percentile(s, 0.95) AS p95,
                   percentile(s, 0.99) AS p99, max(s) AS max FROM lat""").first()
    finally:
        broker.stop(settings)
    batch_ms = sorted(p["durationMs"].get("triggerExecution", 0) for p in progress
                      if p["numInputRows"])
    window = measured_to - measured_from
    print(f"rate {args.rate:.0f} records/s, trigger {args.trigger} s, warm-up {args.warmup:.0f} s, "
          f"measured {window:.0f} s: {stats.n} records")
    print(f"produce -> visible in {job.RAW_TABLE}: p50 {stats.p50:.2f} s, p95 {stats.p95:.2f} s, "
          f"p99 {stats.p99:.2f} s, max {stats.max:.2f} s")
    print(f"throughput {stats.n / window:.1f} records/s committed; micro-batch median "
          f"{batch_ms[len(batch_ms) // 2] if batch_ms else 0} ms over {len(batch_ms)} batches")
    print(f"end: {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
