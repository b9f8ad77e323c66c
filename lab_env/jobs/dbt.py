"""dbt on DuckDB over the lakehouse's silver: ``lab dbt build`` and ``lab dbt docs``.

The dbt project lives in ``dbt/``; everything it writes lives in ``LAB_HOME/dbt/``: the
profile (written from the lab's settings, so dbt reads the same catalog as Spark), the DuckDB
file with the marts, dbt's ``target/`` and its logs. These functions are thin: they write the
profile, work out the days an incremental run rewrites (gold's affected-days rule), run the
plain ``dbt`` command and turn its ``run_results.json`` into a summary or a one-line error.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab_env.config import Settings, get_settings
from lab_env.errors import LabError
from lab_env.paths import DBT_PROJECT

PROJECT_DIR = DBT_PROJECT
PROFILE = "lakehouse_lab"  # dbt_project.yml's `profile:`
# No hyphen: dbt-duckdb names the database after the file, and a hyphen breaks its SQL.
DUCKDB_FILE = "lakehouse.duckdb"
SILVER = ("silver.asset_prices", "silver.asset_snapshots", "silver.assets")
# dbt prints what it logs; the secret S3 key reaches the profile through an env var whose
# DBT_ENV_SECRET_ prefix makes dbt scrub it from logs and errors.
SECRET_ENV = "DBT_ENV_SECRET_S3_SECRET_KEY"
# The start of the error line when dbt's data tests failed.
TESTS_FAILED = "dbt tests failed"


class DbtTestsFailed(LabError):
    """dbt's data tests refused the data: bad data stays bad on a retry (the DAG fails at once)."""


def dbt_home(settings: Settings) -> Path:
    """Where dbt's profile, DuckDB file, target/ and logs live: ``LAB_HOME/dbt``."""
    return settings.lab_home / "dbt"


def duckdb_path(settings: Settings) -> Path:
    """The DuckDB file holding the staging models and the marts."""
    return dbt_home(settings) / DUCKDB_FILE


def target_dir(settings: Settings) -> Path:
    return dbt_home(settings) / "target"


def profile(settings: Settings) -> dict[str, object]:
    """The dbt profile for these settings: DuckDB under LAB_HOME, silver through pyiceberg."""
    from lab_env.lake.catalog import catalog_properties

    plugin = {"catalog": settings.catalog_name, **catalog_properties(settings)}
    if "s3.secret-access-key" in plugin:
        plugin["s3.secret-access-key"] = "{{ env_var('" + SECRET_ENV + "') }}"
    output = {
        "type": "duckdb",
        "path": str(duckdb_path(settings)),
        # One thread: the iceberg plugin shares one catalog; two threads raced on the
        # DuckDB catalog ("write-write conflict on alter").
        "threads": 1,
        # The date of a timestamptz is its UTC date, as in Spark (gold groups by it).
        "settings": {"TimeZone": "UTC"},
        "plugins": [{"module": "iceberg", "config": plugin}],
    }
    return {PROFILE: {"target": settings.profile, "outputs": {settings.profile: output}}}


def write_profile(settings: Settings) -> Path:
    """Write ``LAB_HOME/dbt/profiles.yml`` from the settings; return its folder."""
    import yaml

    folder = dbt_home(settings)
    folder.mkdir(parents=True, exist_ok=True)
    text = (
        "# Written by lab_env.jobs.dbt from the lab's settings (LAB_HOME, the catalog); "
        "do not edit:\n"
        "# `lab dbt build` rewrites it. Plain dbt: dbt build --project-dir dbt "
        f"--profiles-dir {folder}\n" + yaml.safe_dump(profile(settings), sort_keys=False)
    )
    path = folder / "profiles.yml"
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return folder


def dbt_env(settings: Settings) -> dict[str, str]:
    """The environment the dbt command runs in: its folders under LAB_HOME, no network calls."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBT_")}
    env |= {
        "DBT_PROJECT_DIR": str(PROJECT_DIR),
        "DBT_PROFILES_DIR": str(dbt_home(settings)),
        "DBT_TARGET_PATH": str(target_dir(settings)),
        "DBT_LOG_PATH": str(dbt_home(settings) / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",  # no tracking calls from an offline lab
        "DBT_VERSION_CHECK": "false",
        "DBT_USE_COLORS": "false",
        "LAB_HOME": str(settings.lab_home),
    }
    if not settings.is_local:
        env[SECRET_ENV] = settings.s3_secret_key.get_secret_value()
    return env


# ----- the incremental window -----


def affected_days(settings: Settings, start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """The days a run for ``start``..``end`` rewrites, by gold's rule (04_gold, section 1).

    The run's dates, widened back to the earliest day of any silver point that arrived with
    them (``ingest_date`` in the range: late data, such as the overlap hour of the day before).
    """
    import pyarrow.compute as pc

    from lab_env.lake.catalog import get_catalog

    table = get_catalog(settings).load_table("silver.asset_prices")
    late = table.scan(
        row_filter=f"ingest_date >= '{start}' AND ingest_date <= '{end}'",
        selected_fields=("observed_at",),
    ).to_arrow()["observed_at"]
    earliest = pc.min(late).as_py() if len(late) else None
    if earliest is None:
        return start, end
    return min(start, earliest.astimezone(dt.UTC).date()), end


def window_vars(settings: Settings, start: dt.date | None, end: dt.date | None) -> dict[str, str]:
    """dbt's ``--vars`` for a run over ``start``..``end`` (none: every day silver has)."""
    if start is None or end is None:
        return {}
    write_from, write_to = affected_days(settings, start, end)
    return {"write_from": write_from.isoformat(), "write_to": write_to.isoformat()}


# ----- running dbt -----


@dataclass
class DbtNode:
    """One node of a dbt run: a model, a data or unit test, with its outcome."""

    unique_id: str
    status: str
    seconds: float
    failures: int | None = None
    message: str = ""

    @property
    def kind(self) -> str:
        return self.unique_id.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.unique_id.split(".")[2] if self.unique_id.count(".") >= 2 else self.unique_id

    @property
    def ok(self) -> bool:
        return self.status not in ("error", "fail", "runtime error")


@dataclass
class DbtRun:
    """What one dbt command did: its nodes, how long it took, where its output went."""

    command: list[str]
    returncode: int
    seconds: float
    log: Path
    vars: dict[str, str] = field(default_factory=dict)
    nodes: list[DbtNode] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and all(node.ok for node in self.nodes)

    def count(self, *kinds: str) -> int:
        return sum(1 for node in self.nodes if node.kind in kinds)

    def summary(self) -> str:
        """One line: models and tests, how many passed, the window, the time."""
        window = (
            f"days {self.vars['write_from']} .. {self.vars['write_to']}"
            if self.vars
            else "every day"
        )
        passed = sum(1 for n in self.nodes if n.kind in ("test", "unit_test") and n.ok)
        return (
            f"dbt {self.command[0]}: {self.count('model')} models, "
            f"{passed}/{self.count('test', 'unit_test')} tests passed ({window}) "
            f"in {self.seconds:.1f}s"
        )


def run_dbt(
    settings: Settings,
    args: list[str],
    *,
    vars: dict[str, str] | None = None,
) -> DbtRun:
    """Run ``dbt <args>`` on the lab's project in a subprocess; its output goes to a log file.

    A subprocess, not dbtRunner in this process: dbt sets up logging and adapters globally, and
    a notebook kernel or an Airflow worker should not carry that state from run to run.
    """
    folder = write_profile(settings)
    command = [*args, *(["--vars", json.dumps(vars)] if vars else [])]
    log = folder / "logs" / f"{args[0]}.out"
    log.parent.mkdir(parents=True, exist_ok=True)
    results = target_dir(settings) / "run_results.json"
    results.unlink(missing_ok=True)  # an old one would pass for this run's
    began = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("dbt")), *command],  # the venv's dbt
            cwd=PROJECT_DIR,
            env=dbt_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    run = DbtRun(command, done.returncode, time.perf_counter() - began, log, vars or {})
    if results.is_file():
        for node in json.loads(results.read_text())["results"]:
            run.nodes.append(
                DbtNode(
                    node["unique_id"],
                    node["status"],
                    float(node.get("execution_time") or 0.0),
                    node.get("failures"),
                    " ".join(str(node.get("message") or "").split()),
                )
            )
    return run


def require_silver(settings: Settings) -> None:
    """A LabError unless silver's tables exist (dbt's sources)."""
    from lab_env.lake.catalog import get_catalog

    catalog = get_catalog(settings)
    for name in SILVER:
        if not catalog.table_exists(name):
            raise LabError(
                f"{name} does not exist, and dbt reads its sources from silver.",
                "build silver first: lab run --steps bronze silver.",
            )


def failure(run: DbtRun) -> LabError:
    """The one-line error for a failed dbt run: the first failing node, what to do about it."""
    tests = [n for n in run.nodes if n.kind in ("test", "unit_test")]
    failed_tests = [n for n in tests if not n.ok]
    broken = [n for n in run.nodes if n.kind not in ("test", "unit_test") and not n.ok]
    log = run.log.parent / "dbt.log"
    if broken and broken[0].status == "error":
        node = broken[0]
        return LabError(
            f"dbt {run.command[0]} failed: {node.kind} {node.name}: {_gist(node.message)}.",
            f"fix the model (dbt/models), then run `lab dbt build` again; the log is {log}.",
        )
    if failed_tests:
        first = failed_tests[0]
        rows = f" ({first.failures} failing row{'' if first.failures == 1 else 's'})"
        return DbtTestsFailed(
            f"{TESTS_FAILED}: {len(failed_tests)} of {len(tests)}, first {first.name}"
            f"{rows if first.failures else ''}.",
            f"see the failing rows with `dbt test --select {first.name} --store-failures` "
            f"(plain dbt: --project-dir dbt --profiles-dir {run.log.parent.parent}); fix the "
            "data or the model, then `lab dbt build` again.",
        )
    return LabError(
        f"dbt {run.command[0]} failed before it ran: {_last_error(run.log)}.",
        f"read {run.log}; `lab doctor` checks the lakehouse dbt reads.",
    )


def _gist(message: str, limit: int = 240) -> str:
    text = " ".join(message.split()).rstrip(".")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _last_error(log: Path) -> str:
    """The most telling line of dbt's output: its last error, else its last line."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for marker in ("Error", "error", "ERROR"):
        hits = [line for line in lines if marker in line and "Encountered an error" not in line]
        if hits:
            return _gist(hits[-1].split("  ", 1)[-1])
    return _gist(lines[-1]) if lines else "dbt printed nothing"


def build(
    settings: Settings | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    *,
    full_refresh: bool = False,
    select: list[str] | None = None,
) -> DbtRun:
    """``dbt build``: every model, then its tests; incremental over ``start``..``end``'s
    affected days (or every day, without dates or with ``full_refresh``).

    Raises a one-line LabError when a model or a test fails.
    """
    settings = settings or get_settings()
    require_silver(settings)
    vars = {} if full_refresh else window_vars(settings, start, end)
    args = ["build", *(["--full-refresh"] if full_refresh else [])]
    args += ["--select", *select] if select else []
    run = run_dbt(settings, args, vars=vars)
    if not run.ok:
        raise failure(run)
    return run


def docs(settings: Settings | None = None) -> Path:
    """``dbt docs generate --static``: one self-contained HTML page; return its path."""
    settings = settings or get_settings()
    require_silver(settings)
    run = run_dbt(settings, ["docs", "generate", "--static"])
    page = target_dir(settings) / "static_index.html"
    if run.returncode != 0 or not page.is_file():
        raise failure(run)
    return page


def job(
    params: dict[str, object], folder: Path, settings: Settings
) -> tuple[Path, LabError | None]:
    """The ``dbt`` step of ``lab run`` and the DAG: ``dbt build`` over the run's affected days.

    Returns the file that records the build (dbt's run_results.json, copied into the run's
    folder) and the error (None when every model and test passed; :class:`DbtTestsFailed` when
    the data tests refused the data).
    """
    import shutil

    start = dt.date.fromisoformat(str(params["start_date"]))
    end = dt.date.fromisoformat(str(params["end_date"]))
    output = folder / "dbt_run_results.json"
    folder.mkdir(parents=True, exist_ok=True)
    error: LabError | None = None
    try:
        run = build(settings, start, end, full_refresh=bool(params.get("full_refresh")))
    except LabError as exc:
        run, error = None, exc
    results = target_dir(settings) / "run_results.json"
    if results.is_file():
        shutil.copyfile(results, output)
    (folder / "dbt.log").write_text((run.summary() if run else str(error)) + "\n")
    return output, error
