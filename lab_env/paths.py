"""Where things are: the repository's folders and files, and bronze's place in the object store.

The one place that knows the repository's layout; every module asks here instead of counting
``parents`` from its own file.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"  # the notebooks with their answers: lessons, jobs, references
NOTEBOOKS = REPO / "notebooks"  # the learner's copies, built from SOLUTIONS
SAMPLES_DIR = REPO / "data_samples"  # the recorded API answers the replay server serves
DBT_PROJECT = REPO / "dbt"
GOLD_SQL = REPO / "sql" / "gold"  # gold's marts in SQL, the independent recomputation
JARS_LOCK = REPO / "jars" / "jars.lock"
REPO_JARS_DIR = REPO / "jars" / "lib"  # where `make jars` puts them
REPO_ENV_FILE = REPO / ".env"

# Bronze's prefix in the object store: <BRONZE>/<endpoint>/ingest_date=YYYY-MM-DD/...
BRONZE = "bronze/coincap"
