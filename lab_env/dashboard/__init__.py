"""Gold for people who do not read notebooks (milestone 10).

* :mod:`lab_env.dashboard.data`: what is shown, read from the gold Iceberg tables through
  pyiceberg into DuckDB (never another tool's DuckDB file), plus the last run's verdict;
* ``app.py``: the Streamlit app, started by ``lab dashboard`` (:mod:`lab_env.dashboard.serve`);
* :mod:`lab_env.dashboard.report`: the same figures as one self-contained HTML page,
  ``lab report``;
* :mod:`lab_env.dashboard.export`: gold as Parquet to any S3 endpoint, ``lab export``.
"""
