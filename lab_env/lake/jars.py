"""The JVM jars Spark loads: pinned in ``jars/jars.lock``, fetched from Maven Central.

``make jars`` copies them into one folder (``LAB_JARS_DIR``, default ``jars/lib``) and checks their
SHA-256. Each profile needs its own set: the Iceberg runtime and the SQLite JDBC driver (local), the
Iceberg runtime, the AWS SDK for S3FileIO and Hadoop's S3A (compose). A jar already on Spark's own
classpath (the lab image puts them there) is used from there; ``LAB_ICEBERG_JAR`` and
``LAB_SQLITE_JDBC_JAR`` point at another copy of one jar.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from lab_env.config import Settings
from lab_env.errors import LabError
from lab_env.paths import JARS_LOCK

LOCK_FILE = JARS_LOCK
SPARK_SCALA = "3.5_2.12"
ICEBERG_VERSION = "1.9.2"
ICEBERG_RUNTIME = f"iceberg-spark-runtime-{SPARK_SCALA}"
ICEBERG_JAR_NAME = f"{ICEBERG_RUNTIME}-{ICEBERG_VERSION}.jar"
SQLITE_JDBC = "sqlite-jdbc"
# `lab stack` (lab_env.machine.stack): the Iceberg REST catalog fixture, pinned under a profile
# of its own so that no Spark session loads it.
STACK = "stack"
REST_FIXTURE = "iceberg-open-api"

FROM_MAVEN = "Maven Central via `make jars`"
ON_SPARK_CLASSPATH = "Spark's own jars folder"
FIX = "run `make jars` (it fetches the pinned jars from Maven Central)."
# The settings that replace one jar of the folder with a file of your own.
OVERRIDES = {ICEBERG_RUNTIME: "iceberg_jar", SQLITE_JDBC: "sqlite_jdbc_jar"}
# The Kafka broker's own jars (`lab kafka start`): a profile of their own, in a folder of their own
# inside the jars folder, so Spark's classpath never sees them (their kafka-clients is 4.x).
KAFKA_BROKER = "kafka-broker"


@dataclass(frozen=True)
class Pin:
    """One line of ``jars/jars.lock``."""

    group: str
    artifact: str
    version: str
    sha256: str
    profiles: frozenset[str]

    @property
    def coordinate(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"

    @property
    def file_name(self) -> str:
        return f"{self.artifact}-{self.version}.jar"


@dataclass(frozen=True)
class JarChoice:
    """Where one pinned jar was found (``path``), or why it was not and how to fix that."""

    pin: Pin
    path: Path | None
    source: str  # where the path came from, for `lab doctor`
    problem: str = ""
    fix: str = FIX

    @property
    def found(self) -> bool:
        return self.path is not None

    @property
    def on_spark_classpath(self) -> bool:
        return self.source == ON_SPARK_CLASSPATH


@functools.cache
def pins(lock: Path = LOCK_FILE) -> tuple[Pin, ...]:
    """Every jar pinned in the lock file, in its order."""
    try:
        text = lock.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabError(
            f"The jar lock file {lock} cannot be read ({exc.strerror}).",
            "run the lab from its git checkout (the file is part of it).",
        ) from None
    found = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        profiles, coordinate, sha256 = line.split()[:3]
        group, artifact, version = coordinate.split(":")
        found.append(Pin(group, artifact, version, sha256, frozenset(profiles.split(","))))
    return tuple(found)


def pin(artifact: str) -> Pin:
    """The pinned version of ``artifact`` (e.g. ``sqlite-jdbc``) that Spark loads."""
    return {p.artifact: p for p in pins() if KAFKA_BROKER not in p.profiles}[artifact]


def spark_jars_folder() -> Path | None:
    """pyspark's own ``jars`` folder, found without importing pyspark (None if not installed)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "jars"


def find(settings: Settings, pinned: Pin) -> JarChoice:
    """One pinned jar: its LAB_* override, else in Spark's own jars folder, else in LAB_JARS_DIR."""
    override = OVERRIDES.get(pinned.artifact)
    custom: Path | None = getattr(settings, override) if override else None
    if override and custom is not None:
        name = f"LAB_{override.upper()}"
        path = custom.expanduser().resolve()
        if path.is_file():
            return JarChoice(pinned, path, name)
        return JarChoice(
            pinned,
            None,
            name,
            f"{name} is {custom}, which is not a file.",
            f"unset {name} to use the jar from `make jars`, or point it at {pinned.file_name}.",
        )
    spark_jars = spark_jars_folder()
    if spark_jars is not None and (spark_jars / pinned.file_name).is_file():
        return JarChoice(pinned, (spark_jars / pinned.file_name).resolve(), ON_SPARK_CLASSPATH)
    path = (settings.jars_dir.expanduser() / pinned.file_name).resolve()
    if path.is_file():
        return JarChoice(pinned, path, FROM_MAVEN)
    return JarChoice(pinned, None, FROM_MAVEN, f"{pinned.file_name} is missing from {path.parent}.")


def iceberg_jar(settings: Settings) -> JarChoice:
    """The Iceberg Spark runtime."""
    return find(settings, pin(ICEBERG_RUNTIME))


def sqlite_jdbc_jar(settings: Settings) -> JarChoice:
    """The SQLite JDBC driver (its native libraries are inside the jar)."""
    return find(settings, pin(SQLITE_JDBC))


def for_profile(settings: Settings) -> list[JarChoice]:
    """Every jar Spark needs on the settings' profile."""
    return [find(settings, p) for p in pins() if settings.profile in p.profiles]


def spark_jars(settings: Settings) -> list[str]:
    """The jar paths for ``spark.jars``, or a LabError naming the first missing jar and its fix."""
    choices = for_profile(settings)
    for choice in choices:
        if not choice.found:
            raise LabError(f"Spark needs a jar: {choice.problem}", choice.fix)
    return [str(c.path) for c in choices if not c.on_spark_classpath]


def kafka_broker_classpath(settings: Settings) -> list[Path]:
    """The Kafka broker's jars (``make jars`` puts them in ``<jars folder>/kafka-broker``)."""
    folder = settings.jars_dir.expanduser().resolve() / KAFKA_BROKER
    paths = [folder / p.file_name for p in pins() if KAFKA_BROKER in p.profiles]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise LabError(
            f"The Kafka broker needs {len(missing)} jar(s) missing from {folder} "
            f"(first: {missing[0]}).",
            FIX,
        )
    return paths
