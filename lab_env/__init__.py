"""The Lakehouse Lab's environment: settings, Spark, the Iceberg catalog, raw storage, checks.

What a notebook needs is here: ``from lab_env import checks, get_spark, get_catalog, get_store``.

Heavy libraries (pyspark, pyiceberg) load only when a function that needs them is called.
"""

from lab_env.config import Settings, get_settings
from lab_env.course import checks
from lab_env.errors import LabError
from lab_env.lake.catalog import get_catalog
from lab_env.lake.spark import get_spark
from lab_env.lake.storage import get_store

__all__ = [
    "LabError", "Settings", "checks", "get_catalog", "get_settings", "get_spark", "get_store"
]
