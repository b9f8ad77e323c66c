"""Every `lab` subcommand, given bad input, ends with one line and a fix, never a traceback.

The commands come from the CLI's own parser: a new subcommand fails
``test_every_subcommand_has_bad_input_cases`` until it gets cases here. Every case runs `lab` as
a subprocess (all of them at once, in a thread pool) on a LAB_HOME of its own: missing, a
file, unwritable, with a corrupt catalog.db, or with a table whose metadata file is cut short.
None of them gets as far as starting Spark.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pytest

from lab_env.cli import as_lab_error, lab, main
from lab_env.config import load_settings
from lab_env.errors import LabError
from lab_env.jobs.runner import StepFailed
from lab_env.lake.lock import INHERITED

REPO = Path(__file__).resolve().parents[1]
MISSING = "/nonexistent/lab-test"
NOTEBOOK = str(REPO / "notebooks" / "01_local_stack.ipynb")

pytestmark = pytest.mark.xdist_group("cli_errors")  # one worker runs the cases once


@dataclass(frozen=True)
class Case:
    """``lab <command> <args>`` on a LAB_HOME of kind ``home``, and what it must print.

    ``expect``: ``error`` (one line on stderr, with "Fix:"), ``usage`` (click's usage
    message) or ``report`` (lab doctor's report, with a FAIL line and its fix).
    """

    command: str
    args: tuple[str, ...] = ()
    home: str = "fresh"  # fresh, file, unwritable, corrupt, truncated, report
    expect: str = "error"
    says: str = ""  # a part of the message that shows it is the right one
    env: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        words = " ".join([self.command, *self.args]).replace(MISSING, "MISSING")
        return f"{words} [{self.home}{' ' + str(self.env) if self.env else ''}]"


CASES = [
    Case("doctor", home="corrupt", expect="report", says="cannot be read (file is not a"),
    Case("doctor", home="truncated", expect="report", says="roll_back_metadata"),
    Case("doctor", home="file", expect="report", says="is a file, not a folder"),
    Case("doctor", env={"LAB_PROFILE": "cloud"}, says="LAB_PROFILE"),
    Case("run", ("--start", "2025-02-30"), expect="usage", says="not a date"),
    Case("run", ("--start", "2025-03-02", "--end", "2025-03-01"), says="swap --start and --end"),
    Case("run", ("--steps", "bronze", "--start", "2025-03-30"), home="file", says="is a file"),
    Case("run", ("--steps", "bronze", "--start", "2025-03-30"), home="corrupt",
         says="not a database"),
    Case("run", ("--steps", "bronze", "--start", "2025-03-30"), home="truncated",
         says="metadata"),
    Case("run", ("--start", "2025-03-30"), env={"LAB_LOCK_WAIT_S": "-1"}, says="LAB_LOCK_WAIT_S"),
    Case("build-exercises", ("--check", "--root", MISSING), says="No solutions/ folder"),
    Case("check", ("nope.ipynb",), says="No notebook at"),
    Case("check", ("garbage.ipynb",), says="Not a notebook"),
    Case("check", (NOTEBOOK,), home="file", says="is a file"),
    Case("progress", ("--root", MISSING), says="No notebooks in"),
    Case("restore", ("two",), expect="usage", says="is not a valid integer"),
    Case("restore", ("2",), home="file", says="is a file"),
    Case("restore", ("2",), home="unwritable", says="cannot be written"),
    Case("ingest", ("--start", "2025-02-30"), expect="usage", says="not a date"),
    Case("ingest", ("--start", "2025-03-02", "--end", "2025-03-01"), says="swap"),
    Case("ingest", ("--start", "2025-03-30"), home="file", says="is a file"),
    Case("serve-samples", ("--port", "BUSY"), says="already in use"),
    Case("serve-samples", ("--samples", MISSING), says="No replay samples"),
    Case("serve-samples", ("--rename-field", "bad"), says="OLD=NEW"),
    Case("serve-samples", ("--port", "70000"), expect="usage", says="not in the range"),
    Case("samples", ("--out", "garbage.ipynb"), expect="usage", says="is a file"),
    Case("lineage", ("nope",), says="namespace.table"),
    Case("lineage", ("",), says="namespace.table"),
    Case("lineage", ("silver.t",), home="corrupt", says="not a database"),
    Case("lineage", ("silver.t",), home="truncated", says="roll_back_metadata"),
    Case("lineage", ("silver.t",), home="file", says="is a file"),
    Case("maintain", ("--older-than", "7x"), says="not a duration"),
    Case("maintain", ("--retain-last", "0"), says="retain_last"),
    Case("maintain", ("sandbox.none",), says="No table 'sandbox.none'"),
    Case("maintain", (), home="corrupt", says="not a database"),
    Case("maintain", ("silver.t",), home="truncated", says="roll_back_metadata"),
    Case("maintain", ("--dry-run",), home="file", says="is a file"),
    Case("dbt", ("build",), says="does not exist, and dbt reads its sources from silver"),
    Case("dbt", ("build", "--start", "2025-02-30"), expect="usage", says="not a date"),
    Case("dbt", ("build",), home="file", says="is a file"),
    Case("dbt", ("docs",), home="corrupt", says="not a database"),
    Case("docs", ("--run", "nope"), says="No quality report"),
    Case("bronze", ("list", "--start", "2025-02-30"), expect="usage", says="not a date"),
    Case("bronze", ("list", "--start", "2025-03-02", "--end", "2025-03-01"), says="swap"),
    Case("bronze", ("list", "--start", "2025-03-30"), home="file", says="is a file"),
    Case("bronze", ("retire", "--run", "r1", "--reason", "x"), says="--run needs the day"),
    Case("bronze", ("retire", "k.json", "--reason", "x"), says="is not a bronze answer"),
    Case("bronze", ("retire", "--run", "r1", "--start", "2025-03-30", "--reason", "x"),
         home="unwritable", says="cannot be written"),
    Case("docs", ("--serve", "--port", "BUSY"), home="report", says="already in use"),
    Case("dashboard", ("--port", "BUSY"), says="already in use"),
    Case("dashboard", ("--port", "0"), says="lab run"),
    Case("dashboard", ("--port", "0"), home="corrupt", says="not a database"),
    Case("report", (), says="gold.dim_asset does not exist"),
    Case("report", ("--day", "31.03.2025"), expect="usage", says="not a date"),
    Case("export", ("--to", "bucket/prefix"), says="s3://bucket/prefix"),
    Case("export", (), says="LAB_EXPORT_TARGET"),
    Case("export", ("--to", "s3://bucket-x/p", "--start", "2025-03-02", "--end", "2025-03-01"),
         says="swap --start and --end"),
    Case("export", ("--to", "s3://bucket-x/p"), says="gold.dim_asset does not exist"),
    # None of these gets as far as starting a service: up checks everything it needs first.
    Case("stack", (), expect="usage", says="ACTION"),
    Case("stack", ("status",), says="No stack runs under"),
    Case("stack", ("up",), env={"LAB_JARS_DIR": MISSING}, says="make jars"),
    Case("stack", ("up",), env={"JAVA_HOME": MISSING}, says="Java 17"),
    Case("stack", ("up",), home="file", says="is a file"),
    Case("spark-archive", (), env={"LAB_JARS_DIR": MISSING}, says="make jars"),
    Case("spark-archive", (), env={"JAVA_HOME": MISSING}, says="Java 17"),
    Case("kafka", ("start", "--port", "BUSY"), says="already in use"),
    Case("kafka", ("start", "--port", "70000"), expect="usage", says="not in the range"),
    Case("kafka", ("start",), home="file", says="is a file"),
    Case("kafka", ("launch",), expect="usage", says="No such command"),
    Case("stream", ("produce",), says="lab kafka start"),
    Case("stream", ("produce", "--count", "-1"), expect="usage", says="not in the range"),
    Case("stream", ("produce", "--start", "yesterday"), says="not an ISO-8601 time"),
    Case("stream", ("produce", "--count", "2", "--duplicates", "5"), says="--duplicates"),
    Case("stream", ("run",), says="lab kafka start"),
]


def subcommands() -> set[str]:
    return set(lab.commands)


# Every subcommand also meets an option it does not have; and `lab` meets no or a wrong command.
GENERIC = [Case(name, ("--no-such-option",), expect="usage") for name in sorted(subcommands())]
TOP = [Case("", expect="usage"), Case("no-such-command", expect="usage")]
ALL = CASES + GENERIC + TOP


def make_home(kind: str, root: Path, truncated: Path) -> Path:
    home = root / "lakehouse"
    if kind == "file":
        home.write_text("not a folder\n")
    elif kind == "unwritable":
        return Path("/proc/lakehouse")
    elif kind == "corrupt":
        home.mkdir()
        (home / "catalog.db").write_bytes(os.urandom(8192))
    elif kind == "truncated":
        shutil.copytree(truncated, home)  # the catalog points into the original: read only
    elif kind == "report":
        report = home / "runs" / "2025-03-30" / "run-x" / "quality" / "index.html"
        report.parent.mkdir(parents=True)
        report.write_text("<html></html>\n")
    return home


def truncated_home(root: Path) -> Path:
    """A LAB_HOME whose table silver.t has two commits, the last one's metadata cut short."""
    from lab_env.lake.catalog import ensure_namespaces, get_catalog

    home = root / "truncated"
    catalog = get_catalog(load_settings(home=home))
    ensure_namespaces(catalog)
    table = catalog.create_table("silver.t", schema=pa.schema([("id", pa.int64())]))
    table.append(pa.table({"id": [1, 2]}))
    metadata = Path(urlparse(catalog.load_table("silver.t").metadata_location).path)
    metadata.write_text(metadata.read_text()[:200])
    # Close the catalog's connections now: the last one to close folds catalog.db-wal into the
    # file and deletes it, which must not happen while the cases copy this folder.
    catalog.engine.dispose()
    return home


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def results(
    tmp_path_factory: pytest.TempPathFactory, busy_port: int
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every case's outcome, keyed by its id; the cases run concurrently."""
    root = tmp_path_factory.mktemp("cli-errors")
    truncated = truncated_home(root)
    (root / "garbage.ipynb").write_text("this is not JSON\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith("LAB_") and k != INHERITED}

    def run(index: int, case: Case) -> subprocess.CompletedProcess[str]:
        folder = root / f"case{index}"
        folder.mkdir()
        home = make_home(case.home, folder, truncated)
        args = [a.replace("BUSY", str(busy_port)) for a in case.args]
        command = [case.command] if case.command else []
        return subprocess.run(
            [sys.executable, "-m", "lab_env.cli", *command, *args],
            env=base | {"LAB_HOME": str(home)} | case.env,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case.id: pool.submit(run, i, case) for i, case in enumerate(ALL)}
        return {key: future.result() for key, future in futures.items()}


def test_every_subcommand_has_bad_input_cases() -> None:
    missing = subcommands() - {case.command for case in CASES}
    assert not missing, f"add bad-input cases for: {', '.join(sorted(missing))}"


@pytest.mark.parametrize("case", ALL, ids=[case.id for case in ALL])
def test_bad_input_gives_one_line_with_a_fix(
    case: Case, results: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    result = results[case.id]
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "Traceback" not in out and "at org.apache" not in out, out
    if case.expect == "usage":
        assert "usage: lab" in result.stderr.lower(), out  # click's usage message
    elif case.expect == "report":
        assert "FAIL" in result.stdout and "fix:" in result.stdout, out
    else:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, out
        assert lines[0].startswith("error: ") and " Fix: " in lines[0], out
    assert case.says in out, out


def test_a_quoted_error_keeps_one_fix_and_one_full_stop() -> None:
    """A notebook cell raised a LabError; the step's error quotes it (issue 14: "idempotent..
    Fix: ... Fix:")."""
    inner = LabError("CoinCap GET /v3/assets failed after 5 tries (last: HTTP 500).",
                     "check the API, then re-run: ingestion is idempotent.")
    step = StepFailed(Path("02_bronze.ipynb"), Path("/runs/r/02_bronze.ipynb"), 12,
                      f"LabError: {inner}")
    message = str(step)
    assert message.count("Fix:") == 1 and ".." not in message, message
    assert message.endswith("ingestion is idempotent; open the executed copy "
                            "/runs/r/02_bronze.ipynb to see the cell and its traceback.")
    assert step.problem.endswith("(last: HTTP 500).")


@pytest.mark.parametrize(
    ("exc", "says"),
    [
        (sqlite3.DatabaseError("database disk image is malformed"),
         "cannot be read (database disk image is malformed). Fix: put back a copy"),
        (sqlite3.OperationalError("database is locked"), "locked by another process"),
        (OSError(errno.EADDRINUSE, "Address already in use"), "Port 8765 on 127.0.0.1 is already"),
        (PermissionError(errno.EACCES, "Permission denied", "/etc/shadow"),
         "Permission denied: /etc/shadow. Fix: check that the path exists"),
        (RuntimeError("boom\n  at line two\nthree"),
         "Unexpected RuntimeError: boom three. Fix: run the command again with `lab --verbose`"),
    ],
    ids=["corrupt-sqlite", "locked-sqlite", "busy-port", "permission", "unknown"],
)
def test_what_libraries_raise_becomes_one_line_with_a_fix(exc: Exception, says: str) -> None:
    error = as_lab_error(exc, {"port": 8765})
    assert "\n" not in str(error) and says in str(error), str(error)


def test_a_wrapped_error_is_found_under_its_wrapper() -> None:
    try:
        try:
            raise sqlite3.DatabaseError("file is not a database")
        except sqlite3.DatabaseError as inner:
            raise ValueError("could not open") from inner
    except ValueError as outer:
        assert "file is not a database" in str(as_lab_error(outer))


def test_verbose_keeps_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--verbose", "lineage", "nope"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1].startswith("error: No table 'nope'")
