"""The lake: Spark and its jars, the Iceberg catalog, the raw store, and what keeps them healthy.

``spark`` (the session, ``spark_archive`` for faster starts, ``jars``), ``catalog`` (pyiceberg),
``storage`` (bronze's raw store) and ``bronze`` (listing and retiring its answers), ``lock`` (one
writer per LAB_HOME), ``lineage`` (who wrote each snapshot), ``maintain`` (compaction, expiry).
"""
