"""Production runs: the notebook executor and its steps (``runner``), ``ingest``, the ``dbt`` step,
Prometheus ``metrics``, ``alerts``, and the SQLite connections Airflow shares (``airflow_db``)."""
