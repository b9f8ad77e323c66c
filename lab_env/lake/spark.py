"""The process's one SparkSession, with the Iceberg catalog registered as ``lake``."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from lab_env.config import Settings, get_settings
from lab_env.errors import LabError
from lab_env.lake import jars, spark_archive

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)
LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")


def spark_conf(settings: Settings) -> dict[str, str]:
    """Every Spark setting the lab uses, as plain strings (also handy to print in a lesson)."""
    cat = f"spark.sql.catalog.{settings.catalog_name}"
    conf: dict[str, str] = {
        "spark.sql.extensions": (
            "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
        ),
        "spark.sql.defaultCatalog": settings.catalog_name,
        cat: "org.apache.iceberg.spark.SparkCatalog",
        f"{cat}.warehouse": settings.warehouse_uri,
        # Small data on a laptop: a few shuffle partitions instead of 200.
        "spark.sql.shuffle.partitions": "4",
        # Classes Spark generates and compiles per query shape, kept for the JVM's life. With
        # the default 100 a lesson's queries push each other out, so a kernel kept for the next
        # `lab check` generated, compiled and JIT-compiled them all again (lab_env.course.kept).
        "spark.sql.codegen.cache.maxEntries": "5000",
        "spark.default.parallelism": "4",
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": str(settings.spark_ui).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        # collect()/toPandas() hand results to Python over a local socket the JVM closes if
        # Python has not connected within this time (15 s by default): on a busy laptop that
        # failed as CANNOT_OPEN_SOCKET ... Connection refused.
        "spark.python.authenticate.socketTimeout": "120s",
    }
    if settings.wap_branch:
        # Write-audit-publish: tables with write.wap.enabled=true commit to this branch (created
        # from main on the first write), and reads see the branch once it exists.
        conf["spark.wap.branch"] = settings.wap_branch
    # The profile's pinned jars (jars/jars.lock); a missing one is a LabError that says `make jars`.
    local_jars = jars.spark_jars(settings)
    if settings.is_local:
        conf |= {
            f"{cat}.type": "jdbc",
            f"{cat}.uri": f"jdbc:sqlite:{settings.catalog_db}?busy_timeout=30000",
            # pyiceberg's SqlCatalog reads and writes the same tables with the same layout.
            f"{cat}.jdbc.schema-version": "V1",
            # pyiceberg creates the catalog tables (get_catalog); Iceberg's own check leaves a
            # SQLite cursor open that pins Spark's connection to an old snapshot of the catalog.
            f"{cat}.jdbc.init-catalog-tables": "false",
            # pyiceberg commits to the same tables: load fresh metadata instead of caching it.
            f"{cat}.cache-enabled": "false",
            "spark.sql.warehouse.dir": str(settings.lab_home / "spark-warehouse"),
            "spark.driver.extraJavaOptions": " ".join(filter(None, (
                _scratch_tmpdir(),
                f"-Dderby.system.home={settings.lab_home / 'derby'}",
                f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()}",
                settings.spark_driver_java_options,
                spark_archive.driver_options(settings, local_jars),
            ))),
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
        }
    else:
        conf |= {
            f"{cat}.type": "rest",
            f"{cat}.uri": settings.rest_uri,
            f"{cat}.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
            f"{cat}.s3.endpoint": settings.s3_endpoint,
            f"{cat}.s3.path-style-access": "true",
            f"{cat}.s3.access-key-id": settings.s3_access_key,
            f"{cat}.s3.secret-access-key": settings.s3_secret_key.get_secret_value(),
            f"{cat}.client.region": settings.s3_region,
            "spark.hadoop.fs.s3a.endpoint": settings.s3_endpoint,
            "spark.hadoop.fs.s3a.path.style.access": "true",
            "spark.hadoop.fs.s3a.access.key": settings.s3_access_key,
            "spark.hadoop.fs.s3a.secret.key": settings.s3_secret_key.get_secret_value(),
            # Iceberg writes s3:// locations; Spark's own file listing (remove_orphan_files)
            # reaches them through Hadoop, which has no file system for that scheme by default.
            "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        }
        conf["spark.driver.extraJavaOptions"] = " ".join(
            filter(None, (_scratch_tmpdir(), settings.spark_driver_java_options)))
        if urlparse(settings.spark_master).hostname in ("127.0.0.1", "localhost"):
            # A standalone master on this machine's loopback (`lab stack up`): its executors
            # reach the driver there, and nothing listens beyond this machine.
            conf |= {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
    one_jvm = settings.spark_master.startswith("local")
    if one_jvm:
        # Spark lists a list of more than 32 files (silver reads each bronze response by name)
        # with a job of one task per path: nothing gained when the driver is the only executor,
        # and about 8 s of each 9-12 s read of the 1,800 files of 90 days (docs/production.md).
        conf["spark.sql.sources.parallelPartitionDiscovery.threshold"] = "1000000"
    if local_jars and one_jvm:
        # One JVM is both driver and executor: the jars go on its class path as they are.
        # `spark.jars` would copy all of them (61 MB) into a temp folder per start, which a
        # JVM killed with its kernel never deletes: a day of test runs filled the disk.
        conf["spark.driver.extraClassPath"] = os.pathsep.join(local_jars)
    elif local_jars:
        conf["spark.jars"] = ",".join(local_jars)  # shipped to the cluster's executors
    return conf


def _scratch_tmpdir() -> str:
    """``-Djava.io.tmpdir`` in Spark's local folder when one is set (a run's kernel sets one of
    its own, deleted with it), else in the temp folder Python uses (``TMPDIR``, or /tmp): the
    native libraries sqlite-jdbc, snappy and lz4 unpack at every JVM start go there, and
    Spark's own local files too, instead of staying in /tmp after a killed JVM."""
    local_dirs = os.environ.get("SPARK_LOCAL_DIRS", "")
    return f"-Djava.io.tmpdir={local_dirs.split(',')[0] if local_dirs else tempfile.gettempdir()}"


def check_java() -> str:
    """Return ``java``'s path, or raise a LabError that says how to install Java 17."""
    java_home = os.environ.get("JAVA_HOME")
    java = shutil.which("java", path=f"{java_home}/bin") if java_home else shutil.which("java")
    if java is None:
        raise LabError(
            "Java was not found; Spark needs Java 17.",
            "sudo apt-get install -y openjdk-17-jre-headless (or set JAVA_HOME).",
        )
    return java


def get_spark(settings: Settings | None = None) -> SparkSession:
    """The process's SparkSession; the first call starts it, later calls return the same one."""
    from pyspark.sql import SparkSession

    settings = settings or get_settings()
    active = SparkSession.getActiveSession()
    if active is not None:
        _follow_wap_branch(active, settings)
        return active
    check_java()
    if settings.is_local:
        from lab_env.lake.catalog import get_catalog

        get_catalog(settings)  # WAL mode and the catalog tables, before Spark connects
        # Local Spark talks to itself only: bind to loopback, which also silences a hostname
        # warning. Not on compose: executors on spark-worker must reach this driver.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Spark's Python workers (createDataFrame from rows, Python UDFs) run `python3` from
        # PATH unless told otherwise: on a machine whose python3 is not this venv's version,
        # they fail with PYTHON_VERSION_MISMATCH. They run this interpreter, as the kernel does.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("lakehouse-lab").master(settings.spark_master)
    for key, value in spark_conf(settings).items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # py4j and JVM start-up errors are walls of text
        raise LabError(
            f"Spark could not start ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}).",
            "run `lab doctor` to see which piece is missing.",
        ) from exc
    session.sparkContext.setLogLevel("WARN")
    log.info("Spark %s started, catalog %r", session.version, settings.catalog_name)
    return session


def _follow_wap_branch(session: SparkSession, settings: Settings) -> None:
    """A running session writes to the audit branch the settings name now, or to main.

    ``spark.wap.branch`` is read at each write and read, so a session that outlives one job
    step (a run's kernel executes every step) follows the step it serves.
    """
    if settings.wap_branch:
        session.conf.set("spark.wap.branch", settings.wap_branch)
    else:
        session.conf.unset("spark.wap.branch")


def exit_jvm(timeout: float = 300) -> None:
    """Stop the process's Spark session and let its JVM exit the normal way; wait until it has.

    PySpark's JVM lives as long as this process and dies with it, skipping its exit hooks. It
    also exits by itself when its standard input closes: then the hooks run (a JVM started with
    ``-XX:ArchiveClassesAtExit`` writes its class archive, lab_env.lake.spark_archive). A later
    :func:`get_spark` starts a new JVM.
    """
    from pyspark import SparkContext

    stop_spark()
    gateway = SparkContext._gateway
    if gateway is None:
        return
    # No more calls into the JVM: Python objects freed meanwhile would tell a JVM that is going
    # away, and py4j logs each failed call as an ERROR.
    gateway.shutdown()
    gateway.proc.stdin.close()
    gateway.proc.wait(timeout)
    SparkContext._gateway = None
    SparkContext._jvm = None


def renew_session(settings: Settings | None = None) -> None:
    """Give this process a new SparkSession on the JVM it runs, if it runs one.

    The new session starts as a fresh Spark would: its own SQL settings (from the start-up
    configuration), no temporary views or functions, and its own Iceberg catalog, which reopens
    the catalog file (a check copies the milestone's start state over it). What the old session
    left behind is ended: its streaming queries stopped, cached data dropped, its catalog's
    connections closed. The JVM's loaded classes and compiled code stay: a notebook run next
    pays neither a JVM start nor its warm-up (lab_env.course.kept). :func:`get_spark` and
    ``SparkSession.builder.getOrCreate()`` return the new session.
    """
    from py4j.protocol import Py4JError
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    old = SparkSession._instantiatedSession
    if SparkContext._active_spark_context is None or old is None or old._sc._jsc is None:
        return
    for query in old.streams.active:
        query.stop()
    old.catalog.clearCache()  # the cache is shared by every session of a JVM
    settings = settings or get_settings()
    name = settings.catalog_name
    try:
        old._jsparkSession.sessionState().catalogManager().catalog(name).icebergCatalog().close()
    except Py4JError as exc:  # not an Iceberg catalog that can close, or its file is gone
        log.debug("catalog %s of the old session not closed: %s", name, exc)
    if settings.is_local:
        from lab_env.lake.catalog import get_catalog

        get_catalog(settings)  # as at a start: WAL mode and the catalog tables, before Spark
    new = old.newSession()
    SparkSession._instantiatedSession = new
    SparkSession._activeSession = new
    jvm = new._jvm
    assert jvm is not None
    jvm.SparkSession.setDefaultSession(new._jsparkSession)
    jvm.SparkSession.setActiveSession(new._jsparkSession)


def stop_spark() -> None:
    """Stop the process's SparkSession, if one is running."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
