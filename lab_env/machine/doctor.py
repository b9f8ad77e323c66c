"""``lab doctor``: is every piece the lab needs in place? Each failure names its fix.

Besides the tools (Java, jars), it reads the lakehouse itself: a catalog file SQLite cannot
read, a catalog that lost its tables while the warehouse still holds them, a table whose
metadata file cannot be read, who holds LAB_HOME now, and the audit branches that failed or
killed runs left on gold.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lab_env.config import Settings, get_settings
from lab_env.errors import LabError
from lab_env.lake import jars

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    source: str = ""  # where a found piece came from, printed after the detail
    skipped: bool = False  # not checked, because a check above failed


def check_java(settings: Settings) -> Check:
    from lab_env.lake.spark import check_java as find_java

    try:
        java = find_java()
    except LabError as exc:
        return Check("Java 17", False, exc.problem, exc.fix or "")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    first = out.splitlines()[0] if out else "no version printed"
    if 'version "17' not in first:
        return Check(
            "Java 17",
            False,
            f"{java} is {first}; Spark 3.5 here is tested with Java 17.",
            "sudo apt-get install -y openjdk-17-jre-headless and set JAVA_HOME to it.",
        )
    return Check("Java 17", True, f"{java} ({first})")


def _check_jar(name: str, choice: jars.JarChoice) -> Check:
    if choice.path is not None:
        return Check(name, True, str(choice.path), source=choice.source)
    return Check(name, False, choice.problem, choice.fix)


def check_iceberg_jar(settings: Settings) -> Check:
    return _check_jar("Iceberg Spark runtime", jars.iceberg_jar(settings))


def check_sqlite_jdbc(settings: Settings) -> Check:
    if not settings.is_local:
        return Check("SQLite JDBC driver", True, "not needed by the compose profile")
    return _check_jar("SQLite JDBC driver", jars.sqlite_jdbc_jar(settings))


def check_s3_jars(settings: Settings) -> Check:
    name = "S3 jars for Spark"
    if settings.is_local:
        return Check(name, True, "not needed by the local profile")
    choices = [c for c in jars.for_profile(settings) if c.pin.artifact != jars.ICEBERG_RUNTIME]
    missing = [c for c in choices if not c.found]
    if missing:
        return _check_jar(name, missing[0])
    sources = sorted({c.source for c in choices})
    folders = sorted({str(c.path.parent) for c in choices if c.path is not None})
    return Check(
        name,
        True,
        f"{', '.join(c.pin.file_name for c in choices)} in {', '.join(folders)}",
        source=", ".join(sources),
    )


def check_class_archive(settings: Settings) -> Check:
    """The Spark class archive: optional (Spark starts without it, only slower)."""
    from lab_env.lake import spark_archive

    name = "Spark class archive"
    if not settings.is_local:
        return Check(name, True, "not used by the compose profile")
    if not settings.spark_class_archive:
        return Check(name, True, "off (LAB_SPARK_CLASS_ARCHIVE=false)")
    try:
        path = spark_archive.archive_path(settings, jars.spark_jars(settings))
    except LabError:
        return Check(name, True, "not checked: a jar is missing (above)", skipped=True)
    if path is None:
        return Check(name, True, "not checked: Java is missing (above)", skipped=True)
    if path.is_file():
        return Check(name, True, str(path))
    return Check(name, True, "not built: Spark starts slower; `make spark-archive` builds it")


def check_catalog(settings: Settings) -> Check:
    from lab_env.lake.catalog import get_catalog

    where = str(settings.catalog_db) if settings.is_local else settings.rest_uri
    if not settings.is_local and not _reachable(f"{settings.rest_uri}/v1/config"):
        return _silent_service("Iceberg catalog", f"the REST catalog at {where}", "LAB_REST_URI")
    try:
        namespaces = [ns[0] for ns in get_catalog(settings).list_namespaces()]
    except LabError as exc:
        return Check("Iceberg catalog", False, exc.problem, exc.fix or "")
    except Exception as exc:
        return Check(
            "Iceberg catalog",
            False,
            f"{where}: {type(exc).__name__}: {' '.join(str(exc).split())}",
            "check LAB_HOME (local) or LAB_REST_URI (compose); docs/maintenance.md covers a "
            "damaged catalog.",
        )
    return Check(
        "Iceberg catalog", True, f"{where} (namespaces: {', '.join(namespaces) or 'none yet'})"
    )


def _tables(settings: Settings) -> tuple[Catalog, list[str]] | None:
    """The catalog and every table it lists, or None if it cannot be read."""
    from lab_env.lake.catalog import get_catalog

    try:
        catalog = get_catalog(settings)
        names = [".".join(ident) for (namespace,) in catalog.list_namespaces()
                 for ident in catalog.list_tables(namespace)]
    except Exception:  # check_catalog reports it
        return None
    return catalog, sorted(names)


def check_tables(settings: Settings) -> Check:
    """Every table's current metadata file reads, and the catalog still lists the tables
    the local warehouse holds."""
    from lab_env.lake.catalog import unreadable_metadata, warehouse_tables

    name = "Iceberg tables"
    found = _tables(settings)
    if found is None:
        return Check(name, True, "not checked: the catalog cannot be read (above)", skipped=True)
    catalog, names = found
    on_disk = warehouse_tables(settings)
    if not names and on_disk:
        shown = ", ".join(on_disk[:4]) + (", ..." if len(on_disk) > 4 else "")
        return Check(
            name,
            False,
            f"the catalog {settings.catalog_db} lists no tables, but the warehouse holds "
            f"{len(on_disk)} ({shown}): the catalog file was replaced or emptied.",
            "put back a copy of catalog.db if you have one; else rebuild silver and gold from "
            "bronze: lab run --steps silver gold --full-refresh.",
        )
    broken = []
    for table in names:
        try:
            catalog.load_table(table)
        except Exception as exc:
            broken.append(unreadable_metadata(table, exc, settings))
    if broken:
        more = f" ({len(broken) - 1} more table(s) too)" if len(broken) > 1 else ""
        return Check(name, False, broken[0].problem + more, broken[0].fix or "")
    if not names:
        return Check(name, True, "none yet")
    return Check(name, True, f"{len(names)} table(s), every metadata file readable")


def check_lock(settings: Settings) -> Check:
    """Who holds LAB_HOME now (never a failure: a run in progress is normal)."""
    from lab_env.lake.lock import current_holder

    holder = current_holder(settings.lab_home)
    return Check("LAB_HOME lock", True, f"in use by {holder.describe()}" if holder else "free")


def check_audit_branches(settings: Settings) -> Check:
    """List the audit branches that runs left behind (never a failure: the data is kept for
    a look; `lab maintain` removes them after the retention)."""
    from lab_env.lake.lock import current_holder
    from lab_env.lake.maintain import Policy, audit_branches
    from lab_env.quality.suites import audit_branch

    name = "Audit branches"
    found = _tables(settings)
    if found is None:
        return Check(name, True, "not checked: the catalog cannot be read (above)", skipped=True)
    catalog, names = found
    holder = current_holder(settings.lab_home)
    running = audit_branch(holder.run_id) if holder and holder.run_id else None
    now = dt.datetime.now(dt.UTC)
    left = []
    for table in names:
        try:
            branches = audit_branches(catalog.load_table(table), table)
        except Exception:  # check_tables reports it
            continue
        left += [b for b in branches if b.branch != running]
    if not left:
        return Check(name, True, "none left by failed or killed runs")
    retention = Policy().older_than.days
    listed = ", ".join(f"{b.table}@{b.branch} ({_days(b.age(now))})" for b in left)
    return Check(
        name,
        True,
        f"{len(left)} left by runs that failed or were killed: {listed}; `lab maintain` removes "
        f"those older than {retention}d (`lab maintain --dry-run` lists them)",
    )


def _days(age: dt.timedelta) -> str:
    return f"{age.days}d old" if age.days else f"{int(age.total_seconds() // 3600)}h old"


def check_storage(settings: Settings) -> Check:
    from lab_env.lake.storage import make_store

    if not settings.is_local and not _reachable(f"{settings.s3_endpoint}/minio/health/live"):
        return _silent_service("Raw storage", f"MinIO at {settings.s3_endpoint}",
                               "LAB_S3_ENDPOINT")
    store = make_store(settings)
    try:
        store.list("bronze")
        if settings.is_local:
            settings.lab_home.joinpath("raw").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return Check(
            "Raw storage",
            False,
            f"{store.uri()} cannot be used ({exc}).",
            "set LAB_HOME to a folder you can write, e.g. export LAB_HOME=$HOME/lakehouse.",
        )
    return Check("Raw storage", True, store.uri())


def _silent_service(check: str, service: str, variable: str) -> Check:
    """A failed check: a service of the compose profile does not answer."""
    return Check(
        check,
        False,
        f"{service} does not answer.",
        f"start the stack: docker compose up -d, or `lab stack up` without Docker (or set "
        f"{variable}).",
    )


def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3):
            return True
    except urllib.error.HTTPError:
        return True  # it answered
    except (OSError, ValueError):
        return False


CHECKS: tuple[Callable[[Settings], Check], ...] = (
    check_java,
    check_iceberg_jar,
    check_sqlite_jdbc,
    check_s3_jars,
    check_class_archive,
    check_catalog,
    check_tables,
    check_lock,
    check_audit_branches,
    check_storage,
)


def check_stack(settings: Settings) -> Check | None:
    """The native stack (`lab stack up`) under LAB_HOME, if one was started there."""
    from lab_env.machine import stack

    try:
        running = stack.load(settings.lab_home)
    except LabError as exc:
        return Check("Native stack", False, exc.problem, exc.fix or "")
    if running is None:
        return None
    statuses = stack.status(running)
    sick = [s.name for s in statuses if not s.healthy]
    where = stack.stack_dir(settings.lab_home)
    if sick:
        return Check(
            "Native stack", False, f"{', '.join(sick)} not healthy under {where}.", stack.RESTART
        )
    pids = ", ".join(f"{s.name} pid {s.pid}" for s in statuses)
    return Check("Native stack", True, f"{len(statuses)} services healthy under {where} ({pids})")


def run_checks(settings: Settings | None = None) -> list[Check]:
    """Run every check against ``settings`` (default: the current settings)."""
    settings = settings or get_settings()
    checks = [check(settings) for check in CHECKS]
    native_stack = check_stack(settings)  # only where `lab stack up` started one
    return checks if native_stack is None else [*checks, native_stack]


def report(checks: list[Check], profile: str) -> str:
    """The checks as ``lab doctor`` shows them: a line each, the fix under a failure, a verdict."""
    lines = [f"lab doctor (profile: {profile})"]
    for c in checks:
        source = f" (from {c.source})" if c.source else ""
        status = "skip" if c.skipped else "ok  " if c.ok else "FAIL"
        lines.append(f"  {status} {c.name}: {c.detail}{source}")
        if not c.ok:
            lines.append(f"       fix: {c.fix}")
    failed = sum(not c.ok for c in checks)
    lines.append("All good." if not failed else f"{failed} problem(s) found.")
    return "\n".join(lines)

