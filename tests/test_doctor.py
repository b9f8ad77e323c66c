"""`lab doctor`: each missing piece is named with its fix, and the exit code says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
            "apt-get install -y libxerial-sqlite-jdbc-java",
        ),
        (
            {"LAB_JNI_DIR": "/nonexistent/jni"},
            "SQLite JDBC driver",
            "apt-get install -y libxerial-sqlite-jdbc-java",
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
        "jdbc-native",
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
