"""The machine the lab runs on: the native ``stack`` (S3, REST catalog, Spark, Airflow on
127.0.0.1) and ``doctor``, which checks every piece."""
