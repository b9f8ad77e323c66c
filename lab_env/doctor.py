"""``lab doctor``: is every piece the lab needs in place? Each failure names its fix."""

from __future__ import annotations

import argparse
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from lab_env import jars
from lab_env.config import Settings, get_settings
from lab_env.errors import LabError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_java(settings: Settings) -> Check:
    from lab_env.spark import check_java as find_java

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


def check_iceberg_jar(settings: Settings) -> Check:
    choice = jars.iceberg_jar(settings)
    if choice.found:
        return Check("Iceberg Spark runtime", True, str(choice.path))
    fix = (
        "unset LAB_ICEBERG_JAR or point it at iceberg-spark-runtime-3.5_2.12-1.9.2.jar."
        if settings.iceberg_jar is not None
        else "run `make setup` (it installs snowpark-connect-deps-iceberg==1.0.1)."
    )
    return Check(
        "Iceberg Spark runtime",
        False,
        f"no jar from {choice.source}; online, Spark would fetch {choice.maven} instead.",
        fix,
    )


def check_sqlite_jdbc(settings: Settings) -> Check:
    if not settings.is_local:
        return Check("SQLite JDBC driver", True, "not needed by the compose profile")
    choice = jars.sqlite_jdbc_jar(settings)
    if not choice.found:
        return Check(
            "SQLite JDBC driver",
            False,
            f"{settings.sqlite_jdbc_jar} is missing; online, Spark would fetch {choice.maven}.",
            "sudo apt-get install -y libxerial-sqlite-jdbc-java (or set LAB_SQLITE_JDBC_JAR).",
        )
    native = settings.jni_dir / "libsqlitejdbc.so"
    if not native.is_file():
        return Check(
            "SQLite JDBC driver",
            False,
            f"its native library {native} is missing.",
            "sudo apt-get install -y libxerial-sqlite-jdbc-java (or set LAB_JNI_DIR).",
        )
    return Check("SQLite JDBC driver", True, f"{choice.path} with {native}")


def check_catalog(settings: Settings) -> Check:
    from lab_env.catalog import get_catalog

    where = str(settings.catalog_db) if settings.is_local else settings.rest_uri
    if not settings.is_local and not _reachable(f"{settings.rest_uri}/v1/config"):
        return Check(
            "Iceberg catalog",
            False,
            f"the REST catalog at {where} does not answer.",
            "start the stack: docker compose up -d (or set LAB_REST_URI).",
        )
    try:
        namespaces = [ns[0] for ns in get_catalog(settings).list_namespaces()]
    except LabError as exc:
        return Check("Iceberg catalog", False, exc.problem, exc.fix or "")
    except Exception as exc:
        return Check(
            "Iceberg catalog",
            False,
            f"{where}: {type(exc).__name__}: {exc}",
            "run `lab run` to create it, or check LAB_HOME.",
        )
    return Check(
        "Iceberg catalog", True, f"{where} (namespaces: {', '.join(namespaces) or 'none yet'})"
    )


def check_storage(settings: Settings) -> Check:
    from lab_env.storage import make_store

    if not settings.is_local and not _reachable(f"{settings.s3_endpoint}/minio/health/live"):
        return Check(
            "Raw storage",
            False,
            f"MinIO at {settings.s3_endpoint} does not answer.",
            "start the stack: docker compose up -d (or set LAB_S3_ENDPOINT).",
        )
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
    check_catalog,
    check_storage,
)


def run_checks(settings: Settings | None = None) -> list[Check]:
    """Run every check against ``settings`` (default: the current settings)."""
    settings = settings or get_settings()
    return [check(settings) for check in CHECKS]


def report(checks: list[Check], profile: str) -> str:
    lines = [f"lab doctor (profile: {profile})"]
    for c in checks:
        lines.append(f"  {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}")
        if not c.ok:
            lines.append(f"       fix: {c.fix}")
    failed = sum(not c.ok for c in checks)
    lines.append("All good." if not failed else f"{failed} problem(s) found.")
    return "\n".join(lines)


def _cmd_doctor(args: argparse.Namespace) -> int:
    settings = get_settings()
    checks = run_checks(settings)
    print(report(checks, settings.profile))
    return 0 if all(c.ok for c in checks) else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("doctor", help="check Java, jars, catalog and storage")
    parser.set_defaults(handler=_cmd_doctor)
