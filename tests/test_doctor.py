"""`lab doctor`: each missing piece is named with its fix, and the exit code says so; it reads the
lakehouse too (a corrupt or emptied catalog, unreadable metadata, who holds LAB_HOME, audit
branches left by failed runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pytest
from pyiceberg.table import Table

from lab_env.config import load_settings
from lab_env.lake.catalog import ensure_namespaces, get_catalog
from lab_env.lake.lock import lakehouse_lock
from lab_env.quality.suites import audit_branch

REPO = Path(__file__).resolve().parents[1]


def doctor(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    base |= {"LAB_HOME": str(tmp_path / "lakehouse")} | env
    return subprocess.run(
        [sys.executable, "-m", "lab_env.cli", "doctor"],
        capture_output=True,
        text=True,
        env=base,
        cwd=tmp_path,
        check=False,
        timeout=120,
    )


def test_all_good_on_this_machine(tmp_path: Path) -> None:
    result = doctor(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All good." in result.stdout
    jars = REPO / "jars" / "lib"
    for piece, jar in [
        ("Iceberg Spark runtime", "iceberg-spark-runtime-3.5_2.12-1.9.2.jar"),
        ("SQLite JDBC driver", "sqlite-jdbc-"),
    ]:
        (line,) = [line for line in result.stdout.splitlines() if f" {piece}: " in line]
        assert f"{jars}/{jar}" in line and "(from Maven Central via `make jars`)" in line, line
    (line,) = [line for line in result.stdout.splitlines() if " Spark class archive: " in line]
    assert f"{jars}/spark-classes-" in line, line  # make setup built it


def test_a_missing_class_archive_is_a_hint_not_a_failure(tmp_path: Path) -> None:
    folder = tmp_path / "jars"
    folder.mkdir()
    for jar in (REPO / "jars" / "lib").glob("*.jar"):
        (folder / jar.name).symlink_to(jar)
    result = doctor(tmp_path, LAB_JARS_DIR=str(folder))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Spark class archive: not built" in result.stdout
    assert "make spark-archive" in result.stdout


def test_an_override_is_reported_as_the_source(tmp_path: Path) -> None:
    jar = REPO / "jars" / "lib" / "iceberg-spark-runtime-3.5_2.12-1.9.2.jar"
    result = doctor(tmp_path, LAB_ICEBERG_JAR=str(jar))
    assert f"Iceberg Spark runtime: {jar} (from LAB_ICEBERG_JAR)" in result.stdout


@pytest.mark.parametrize(
    ("env", "piece", "fix"),
    [
        (
            {"LAB_ICEBERG_JAR": "/nonexistent/iceberg.jar"},
            "Iceberg Spark runtime",
            "LAB_ICEBERG_JAR",
        ),
        (
            {"LAB_SQLITE_JDBC_JAR": "/nonexistent/sqlite-jdbc.jar"},
            "SQLite JDBC driver",
            "LAB_SQLITE_JDBC_JAR",
        ),
        ({"LAB_JARS_DIR": "/nonexistent/jars"}, "Iceberg Spark runtime", "run `make jars`"),
        ({"LAB_JARS_DIR": "/nonexistent/jars"}, "SQLite JDBC driver", "run `make jars`"),
        (
            {
                "LAB_PROFILE": "compose",
                "LAB_JARS_DIR": "/nonexistent/jars",
                "LAB_REST_URI": "http://127.0.0.1:9",
                "LAB_S3_ENDPOINT": "http://127.0.0.1:9",
            },
            "S3 jars for Spark",
            "run `make jars`",
        ),
        (
            {"JAVA_HOME": "/nonexistent/java", "PATH": "/nonexistent/bin"},
            "Java 17",
            "openjdk-17-jre-headless",
        ),
        ({"LAB_HOME": "/proc/lakehouse"}, "Iceberg catalog", "LAB_HOME"),
        (
            {
                "LAB_PROFILE": "compose",
                "LAB_REST_URI": "http://127.0.0.1:9",
                "LAB_S3_ENDPOINT": "http://127.0.0.1:9",
            },
            "Iceberg catalog",
            "docker compose up -d",
        ),
        (
            {
                "LAB_PROFILE": "compose",
                "LAB_REST_URI": "http://127.0.0.1:9",
                "LAB_S3_ENDPOINT": "http://127.0.0.1:9",
            },
            "Raw storage",
            "docker compose up -d",
        ),
    ],
    ids=[
        "iceberg-jar",
        "jdbc-jar",
        "jars-not-fetched-iceberg",
        "jars-not-fetched-jdbc",
        "jars-not-fetched-s3",
        "java",
        "home-unwritable",
        "rest-down",
        "minio-down",
    ],
)
def test_each_missing_piece_is_named_with_its_fix(
    tmp_path: Path, env: dict[str, str], piece: str, fix: str
) -> None:
    if "PATH" in env:  # keep python reachable, hide java
        env = env | {"PATH": str(Path(sys.executable).parent)}
    result = doctor(tmp_path, **env)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    failed = [i for i, line in enumerate(lines) if line.strip().startswith(f"FAIL {piece}")]
    assert failed, result.stdout
    assert fix in lines[failed[0] + 1], result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_bad_profile_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    result = doctor(tmp_path, LAB_PROFILE="cloud")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "LAB_PROFILE" in result.stderr
    assert "Traceback" not in result.stderr


def make_table(home: Path, name: str = "silver.t", commits: int = 2) -> Table:
    """A real table in the SQLite catalog of ``home``, written by ``commits`` appends."""
    catalog = get_catalog(load_settings(home=home))
    ensure_namespaces(catalog)
    table = catalog.create_table(name, schema=pa.schema([("id", pa.int64())]))
    for n in range(commits):
        table.append(pa.table({"id": [n]}))
    return catalog.load_table(name)


def failure(result: subprocess.CompletedProcess[str], piece: str) -> tuple[str, str]:
    """The FAIL line of ``piece`` and the fix line below it."""
    lines = result.stdout.splitlines()
    (at,) = [i for i, line in enumerate(lines) if line.strip().startswith(f"FAIL {piece}:")]
    return lines[at], lines[at + 1]


def test_a_corrupt_catalog_is_named_with_a_fix_that_works_without_it(tmp_path: Path) -> None:
    home = tmp_path / "lakehouse"
    home.mkdir()
    (home / "catalog.db").write_bytes(b"garbage, not SQLite " * 100)
    result = doctor(tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    line, fix = failure(result, "Iceberg catalog")
    assert "catalog.db cannot be read (file is not a database)" in line
    assert f"mv {home}/catalog.db" in fix and "lab run --steps silver gold --full-refresh" in fix
    assert "skip Iceberg tables: not checked" in result.stdout


def test_an_emptied_catalog_while_the_warehouse_holds_tables(tmp_path: Path) -> None:
    home = tmp_path / "lakehouse"
    make_table(home, "silver.t")
    make_table(home, "gold.g")
    for path in home.glob("catalog.db*"):
        path.unlink()  # the catalog is gone; its tables' files are not
    result = doctor(tmp_path)
    assert result.returncode == 1, result.stdout
    line, fix = failure(result, "Iceberg tables")
    assert "lists no tables, but the warehouse holds 2 (gold.g, silver.t)" in line
    assert "--full-refresh" in fix


def test_unreadable_metadata_is_named_and_the_fix_rolls_it_back(tmp_path: Path) -> None:
    home = tmp_path / "lakehouse"
    table = make_table(home, "silver.t", commits=2)
    first = table.snapshots()[0].snapshot_id
    metadata = Path(urlparse(table.metadata_location).path)
    metadata.write_text(metadata.read_text()[:300])  # a disk that filled up mid-write

    result = doctor(tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    line, fix = failure(result, "Iceberg tables")
    assert f"The metadata of silver.t {table.metadata_location} cannot be read" in line
    assert "roll_back_metadata" in fix
    command = fix[fix.index('python -c "') + len("python -c "):].split(". Details")[0]

    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    subprocess.run([sys.executable, "-c", command.strip('"')], env=env | {"LAB_HOME": str(home)},
                   cwd=tmp_path, check=True, timeout=60)
    assert doctor(tmp_path).returncode == 0
    back = get_catalog(load_settings(home=home)).load_table("silver.t")
    assert back.current_snapshot().snapshot_id == first, "one commit back"  # type: ignore[union-attr]
    assert back.scan().to_arrow().num_rows == 1


def test_audit_branches_left_by_runs_are_listed_but_not_the_running_one(tmp_path: Path) -> None:
    home = tmp_path / "lakehouse"
    table = make_table(home, "gold.fct", commits=2)
    first, second = (s.snapshot_id for s in table.snapshots())
    table.manage_snapshots().create_branch(first, "audit_run_killed").commit()
    table.manage_snapshots().create_branch(second, audit_branch("run-now")).commit()
    table.manage_snapshots().create_branch(second, "dev").commit()  # not an audit branch

    settings = load_settings(home=home, lock_wait_s=0)
    with lakehouse_lock(settings, "run-now", "lab run"):  # run-now is still at work
        result = doctor(tmp_path)
    assert result.returncode == 0, result.stdout
    (line,) = [line for line in result.stdout.splitlines() if "Audit branches:" in line]
    assert "1 left by runs that failed or were killed: gold.fct@audit_run_killed (0h old)" in line
    assert "`lab maintain` removes those older than 7d" in line
    assert "run_now" not in line and "dev" not in line
    assert f"LAB_HOME lock: in use by run run-now (pid {os.getpid()}" in result.stdout
