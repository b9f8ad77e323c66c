"""The Lakehouse Lab's environment: settings, Spark, the Iceberg catalog, raw storage, checks.

Heavy libraries (pyspark, pyiceberg) load only when a function that needs them is called.
"""

from lab_env.catalog import get_catalog
from lab_env.config import Settings, get_settings
from lab_env.errors import LabError
from lab_env.spark import get_spark
from lab_env.storage import get_store

__all__ = ["LabError", "Settings", "get_catalog", "get_settings", "get_spark", "get_store"]
