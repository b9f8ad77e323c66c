"""Where the JVM pieces come from: the Iceberg Spark runtime and the SQLite JDBC driver.

Offline first: the Iceberg jar ships inside the pinned PyPI package
``snowpark-connect-deps-iceberg`` and the JDBC driver in Debian's
``libxerial-sqlite-jdbc-java``. When a file is missing, Spark can still fetch the same
pieces from Maven Central by coordinates (``spark.jars.packages``) on a machine that is online.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab_env.config import Settings

SPARK_SCALA = "3.5_2.12"
ICEBERG_VERSION = "1.9.2"
ICEBERG_JAR_NAME = f"iceberg-spark-runtime-{SPARK_SCALA}-{ICEBERG_VERSION}.jar"
ICEBERG_MAVEN = f"org.apache.iceberg:iceberg-spark-runtime-{SPARK_SCALA}:{ICEBERG_VERSION}"
ICEBERG_AWS_MAVEN = f"org.apache.iceberg:iceberg-aws-bundle:{ICEBERG_VERSION}"
SQLITE_JDBC_MAVEN = "org.xerial:sqlite-jdbc:3.46.1.3"


@dataclass(frozen=True)
class JarChoice:
    """A local jar file, or Maven coordinates for Spark to download."""

    path: Path | None
    maven: str
    source: str  # where the path came from, for `lab doctor`

    @property
    def found(self) -> bool:
        return self.path is not None


def iceberg_jar(settings: Settings) -> JarChoice:
    """The Iceberg Spark runtime: ``LAB_ICEBERG_JAR``, else the pinned PyPI package."""
    if settings.iceberg_jar is not None:
        path = settings.iceberg_jar.expanduser()
        return JarChoice(path if path.is_file() else None, ICEBERG_MAVEN, "LAB_ICEBERG_JAR")
    try:
        import snowpark_connect_deps_iceberg as deps
    except ImportError:
        return JarChoice(None, ICEBERG_MAVEN, "snowpark-connect-deps-iceberg (not installed)")
    path = Path(deps.__file__).parent / "jars" / ICEBERG_JAR_NAME
    return JarChoice(
        path if path.is_file() else None, ICEBERG_MAVEN, "snowpark-connect-deps-iceberg"
    )


def sqlite_jdbc_jar(settings: Settings) -> JarChoice:
    """The SQLite JDBC driver (``LAB_SQLITE_JDBC_JAR``, default: Debian's package)."""
    path = settings.sqlite_jdbc_jar.expanduser()
    return JarChoice(path if path.is_file() else None, SQLITE_JDBC_MAVEN, str(path))
