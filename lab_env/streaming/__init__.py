"""Streaming (M9): a Kafka broker, a tick producer, and Spark Structured Streaming into Iceberg.

* :mod:`lab_env.streaming.broker`: ``lab kafka start|stop|status``, a real Apache Kafka broker
  (KRaft, one node) from its Maven Central jars, on 127.0.0.1 with its data under ``LAB_HOME``.
* :mod:`lab_env.streaming.produce`: ``lab stream produce``, the bundled sample replayed as ticks.
* :mod:`lab_env.streaming.job`: ``lab stream run``, Kafka -> ``bronze.stream_ticks`` (every record,
  exactly once) and ``gold.stream_prices_1m`` (event-time windows behind a watermark).
"""
