"""One settings object for the whole lab, read from LAB_* variables and an optional .env.

Two profiles share every name below:

* ``local`` (default): everything the lab writes lives under ``LAB_HOME``
  (``./lakehouse``): raw files, the Iceberg warehouse, the SQLite catalog, run outputs.
* ``compose``: the Docker Compose stack: MinIO (S3), the Iceberg REST catalog, a Spark master;
  or the same services run natively by ``lab stack up``, which writes their settings to
  ``LAB_HOME/stack/stack.env``: read after ``.env`` while it exists (the environment still wins).
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lab_env.errors import ConfigError
from lab_env.paths import REPO_ENV_FILE, REPO_JARS_DIR

PROFILES = ("local", "compose")
# The repository's .env, found from any working directory (notebook kernels run in solutions/).
# Where `make jars` puts the pinned jars.


class Settings(BaseSettings):
    """Every path, endpoint and credential the lab uses. Read with :func:`get_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="LAB_",
        env_file=(REPO_ENV_FILE, ".env"),  # a .env in the working directory wins
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
    )

    profile: Literal["local", "compose"] = "local"
    home: Path = Path("lakehouse")
    catalog_name: str = "lake"

    # Spark
    # Unset means local[2] on both profiles: on the host, executors in Docker could not reach a
    # driver outside it; the compose containers set spark://spark-master:7077 themselves.
    spark_master: str = "local[2]"
    spark_driver_memory: str = "2g"
    spark_ui: bool = False
    # JVM options of the driver (where local Spark does all its work). The lab's jobs are short
    # and small (docs/production.md): the quick JIT alone (C1) reaches full speed sooner than the
    # optimising one, and the serial garbage collector spends a third less CPU than the default
    # G1 on a 2 GB heap, with no collector threads competing for a laptop's cores. For
    # hours-long jobs on large data, set LAB_SPARK_DRIVER_JAVA_OPTIONS="" to get the JVM's
    # defaults (the peak-speed compiler, G1) back.
    spark_driver_java_options: str = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
    # Map Spark's classes from the class archive `make setup` builds (lab_env.lake.spark_archive):
    # local Spark starts in about two thirds of the time. Off, or without the archive, the JVM
    # loads them from the jars.
    spark_class_archive: bool = True
    # The pinned jars (jars/jars.lock) that `make jars` fetches from Maven Central, and overrides
    # of single jars in that folder.
    jars_dir: Path = REPO_JARS_DIR
    iceberg_jar: Path | None = None
    sqlite_jdbc_jar: Path | None = None

    # compose profile: MinIO and the Iceberg REST catalog
    s3_endpoint: str = "http://localhost:9000"
    s3_access_key: str = "minioadmin"
    s3_secret_key: SecretStr = SecretStr("minioadmin")
    s3_region: str = "us-east-1"
    bucket: str = "lakehouse"
    rest_uri: str = "http://localhost:8181"

    # the market-data source (CoinCap-style REST API); None means the bundled replay server
    coincap_url: str | None = None
    coincap_api_key: SecretStr | None = Field(default=None, repr=False)
    coincap_connect_timeout_s: float = 5.0
    coincap_timeout_s: float = 30.0  # read timeout of one request
    coincap_max_tries: int = 5  # tries per request, counting the first
    coincap_backoff_s: float = 0.5  # first backoff ceiling; doubles per retry (full jitter)
    coincap_max_wait_s: float = 30.0  # cap on one wait, Retry-After included

    # streaming (M9): a Kafka broker's bootstrap address; None means the one `lab kafka start`
    # runs under LAB_HOME. The tick topic the producer writes and the streaming job reads.
    kafka_bootstrap: str | None = None
    kafka_topic: str = "ticks"

    # self-checks record results for `lab progress`; production runs turn this off
    record_progress: bool = True
    # `lab check` keeps its kernel, with Spark warm, for the next check in this LAB_HOME
    # (lab_env.course.kept): it ends after this many seconds without a check; 0 keeps none
    check_kernel_idle_s: float = Field(default=900.0, ge=0)

    # production runs: where a failed task's alert goes besides the log (a Slack-style webhook)
    alert_webhook_url: SecretStr | None = Field(default=None, repr=False)  # URLs carry tokens
    # ... and to a Telegram chat through a bot (both set, or no Telegram alert); the API's base
    # URL is a setting so tests (or a proxy) can stand in for api.telegram.org
    telegram_bot_token: SecretStr | None = Field(default=None, repr=False)
    telegram_chat_id: SecretStr | None = Field(default=None, repr=False)
    telegram_api_url: str = "https://api.telegram.org"
    # run metrics (lab_env.jobs.metrics): always a textfile under LAB_HOME/metrics; also pushed to
    # this Prometheus Pushgateway when set, e.g. http://127.0.0.1:9091
    metrics_pushgateway: str | None = None
    # write-audit-publish: the Iceberg branch Spark writes WAP-enabled tables (gold) to; the
    # runner sets it for the gold step, the quality gate publishes it. Unset: write main.
    wap_branch: str | None = None
    # one writer per LAB_HOME (lab_env.lake.lock): how long a second writer waits for the first
    # before it gives up with a line naming the holder
    lock_wait_s: float = Field(default=5.0, ge=0)

    # M10: where `lab export` and the DAG's export task put gold (s3://bucket/prefix; unset: the
    # DAG skips the export), and the S3 endpoint (unset: boto3's own, AWS_ENDPOINT_URL or AWS).
    # Credentials come from the standard AWS chain only, never from LAB_* settings.
    export_target: str | None = None
    export_endpoint: str | None = None

    @field_validator("profile", mode="before")
    @classmethod
    def _known_profile(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() not in PROFILES:
            raise ValueError(
                f"unknown profile {value!r}; set LAB_PROFILE to one of {', '.join(PROFILES)}"
            )
        return value.strip().lower() if isinstance(value, str) else value

    # ----- derived locations (never set directly, so they cannot disagree) -----

    @property
    def lab_home(self) -> Path:
        """``LAB_HOME`` as an absolute path."""
        return self.home.expanduser().resolve()

    @property
    def is_local(self) -> bool:
        return self.profile == "local"

    @property
    def warehouse_uri(self) -> str:
        """Where Iceberg writes table data and metadata."""
        if self.is_local:
            return (self.lab_home / "warehouse").as_uri()
        return f"s3://{self.bucket}/warehouse"

    @property
    def catalog_db(self) -> Path:
        """The SQLite file that holds the local Iceberg catalog."""
        return self.lab_home / "catalog.db"

    @property
    def raw_root(self) -> str:
        """Root of the raw (bronze) file area: a folder, or ``bucket/raw`` on S3."""
        if self.is_local:
            return str(self.lab_home / "raw")
        return f"{self.bucket}/raw"

    @property
    def runs_dir(self) -> Path:
        """Executed notebooks and run summaries (always on the machine that runs them)."""
        return self.lab_home / "runs"

    def run_folder(self, start: dt.date, end: dt.date, run_id: str) -> Path:
        """Where a run keeps its executed notebooks: ``runs/<date or start_end>/<run_id>/``.

        The one rule for every run of steps: ``lab run``, ``lab ingest``, the DAG's tasks.
        """
        dates = f"{start}" if start == end else f"{start}_{end}"
        return self.runs_dir / dates / run_id.replace(":", "-").replace("+", "-")


def stack_env_file(home: Path) -> Path:
    """The settings ``lab stack up`` writes for the native stack under LAB_HOME ``home``."""
    return home.expanduser().resolve() / "stack" / "stack.env"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment (and ``overrides``), or raise a one-line ConfigError."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
        stack_env = stack_env_file(settings.lab_home)
        if stack_env.is_file():
            env_files = (*Settings.model_config["env_file"], stack_env)  # type: ignore[misc]
            settings = Settings(_env_file=env_files, **overrides)  # type: ignore[arg-type,call-arg]
        return settings
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "settings"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(
            f"Invalid setting LAB_{field.upper()}: {message}.",
            "correct it in your environment or .env (see .env.example).",
        ) from None


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read once. Tests call ``get_settings.cache_clear()``."""
    return load_settings()
