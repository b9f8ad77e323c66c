"""Run metrics the Prometheus way: the textfile, the alert rules, and a real Prometheus reading
back what one real `lab run` recorded (through a real Pushgateway)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from lab_env.config import Settings, load_settings
from lab_env.jobs import metrics
from lab_env.jobs.runner import StepResult, TableChange
from lab_env.ports import free_ports
from tests.pipeline_runs import REPO, lab_env_vars

PROMETHEUS_DIR = REPO / "docker" / "prometheus"
DAY = dt.date(2025, 3, 31)
# The end of DAY: when its gold is complete, the freshness metric's value.
DAY_END = dt.datetime(2025, 4, 1, tzinfo=dt.UTC).timestamp()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text format -> {(name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def quality_result(ok: bool = True) -> StepResult:
    return StepResult(
        "quality", "06_quality.ipynb", "/runs/x/06_quality.ipynb", 12.5, ok,
        [TableChange("gold.fct_asset_daily", 1, 40, 0, 3600)],
    )


def binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(f"{names[0]} is not installed: run `make system` (apt-get install {names[0]}).")


def test_a_step_s_metrics_in_the_textfile_format() -> None:
    from prometheus_client import generate_latest

    registry = metrics.step_registry(
        quality_result(ok=False), newest_gold_day=DAY, verdict="BLOCKED", now=DAY_END + 7200
    )
    got = samples(generate_latest(registry).decode())
    step = (("step", "quality"),)
    table = (("step", "quality"), ("table", "gold.fct_asset_daily"))
    assert got == {
        ("lakehouse_step_duration_seconds", step): 12.5,
        ("lakehouse_step_success", step): 0.0,
        ("lakehouse_step_last_run_timestamp_seconds", step): DAY_END + 7200,
        ("lakehouse_rows_written", table): 40.0,
        ("lakehouse_rows_deleted", table): 0.0,
        ("lakehouse_table_rows", table): 3600.0,
        ("lakehouse_quality_verdict", (("step", "quality"), ("verdict", "PUBLISHED"))): 0.0,
        ("lakehouse_quality_verdict", (("step", "quality"), ("verdict", "PASSED"))): 0.0,
        ("lakehouse_quality_verdict", (("step", "quality"), ("verdict", "BLOCKED"))): 1.0,
        ("lakehouse_quality_gate_blocked", step): 1.0,
        ("lakehouse_gold_newest_day_timestamp_seconds", step): DAY_END,
        ("lakehouse_gold_age_seconds", step): 7200.0,
    }


def test_a_step_writes_its_own_textfile_and_survives_a_dead_pushgateway(
    fresh_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "run"
    (folder / "quality").mkdir(parents=True)
    (folder / "quality" / "report.json").write_text(json.dumps({"verdict": "BLOCKED"}))
    settings = fresh_settings.model_copy(update={"metrics_pushgateway": "http://127.0.0.1:9"})
    path = metrics.record_step(quality_result(ok=False), folder, settings)
    assert path == settings.lab_home / "metrics" / "lakehouse_quality.prom"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file left
    got = samples(path.read_text())
    assert got[("lakehouse_quality_gate_blocked", (("step", "quality"),))] == 1.0
    assert not any(name.startswith("lakehouse_gold") for name, _ in got)  # no gold table yet
    assert "metrics push to http://127.0.0.1:9 failed" in caplog.text


def test_alert_rules_and_config_pass_promtool_and_its_rule_tests() -> None:
    promtool = binary("promtool")
    for args in (
        ["check", "config", str(PROMETHEUS_DIR / "prometheus.yml")],
        ["check", "rules", str(PROMETHEUS_DIR / "alerts.yml")],
        ["test", "rules", str(REPO / "tests" / "prometheus" / "alerts_test.yml")],
    ):
        result = subprocess.run(
            [promtool, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


# ----- a real Prometheus and Pushgateway, and one real day of `lab run` -----


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _listens(process: subprocess.Popen[bytes], port: int) -> bool:
    """Whether ``process`` itself holds the listening socket on ``port``.

    A 200 on the port is not enough: a port picked free can be taken by another server before
    ours binds it (ours then exits), and that server would answer in its place.
    """
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr.port == port
        for c in psutil.Process(process.pid).net_connections("tcp")
    )


def _wait_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until ``process`` listens on ``port`` and answers ``/-/ready`` there."""
    url = f"http://127.0.0.1:{port}/-/ready"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args[0]} exited: {log.read_text()[-2000:]}")
        try:
            if _listens(process, port):
                with urllib.request.urlopen(url, timeout=2):
                    return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{url} not ready in 60 s: {log.read_text()[-2000:]}")


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Prometheus:
    """A real Prometheus scraping a real Pushgateway, on 127.0.0.1, with the lab's own rules."""

    def __init__(self, url: str, pushgateway: str) -> None:
        self.url = url
        self.pushgateway = pushgateway

    def query(self, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
        """An instant query: {labels that are not job/instance: value}."""
        answer = _get(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert answer["status"] == "success", answer
        hidden = ("__name__", "job", "instance")
        return {
            tuple(sorted((k, v) for k, v in r["metric"].items() if k not in hidden)):
            float(r["value"][1])
            for r in answer["data"]["result"]
        }

    def rules(self) -> dict[str, dict[str, Any]]:
        groups = _get(f"{self.url}/api/v1/rules")["data"]["groups"]
        return {rule["name"]: rule for group in groups for rule in group["rules"]}

    def wait_for(self, what: str, check: Any, timeout: float = 60) -> Any:
        """Poll ``check()`` until it returns something truthy (scrapes come every second)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.5)
        pytest.fail(f"Prometheus never showed {what} in {timeout:.0f} s")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Debian's prometheus and prometheus-pushgateway on free ports, stopped by pid after."""
    prometheus_bin = binary("prometheus")
    pushgateway_bin = binary("prometheus-pushgateway", "pushgateway")
    root = tmp_path_factory.mktemp("prometheus")
    push_port, prom_port = free_ports(2)
    # The repository's config, pointed at this Pushgateway and evaluated every second.
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(PROMETHEUS_DIR / rules) for rules in config["rule_files"]]
    [job] = config["scrape_configs"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{push_port}"]}]
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    servers = []
    try:
        servers.append(
            _start(
                [
                    pushgateway_bin,
                    f"--web.listen-address=127.0.0.1:{push_port}",
                    # Debian's build persists to /var/lib/prometheus/pushgateway.data by default:
                    # every instance would start with what earlier runs pushed (a blocked gate).
                    "--persistence.file=",
                ],
                root / "pushgateway.log",
            )
        )
        _wait_ready(push_port, servers[-1], root / "pushgateway.log")
        servers.append(
            _start(
                [
                    prometheus_bin,
                    f"--config.file={root / 'prometheus.yml'}",
                    f"--storage.tsdb.path={root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                root / "prometheus.log",
            )
        )
        _wait_ready(prom_port, servers[-1], root / "prometheus.log")
        yield Prometheus(f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{push_port}")
    finally:
        for server in reversed(servers):
            _stop(server)


@pytest.mark.spark
@pytest.mark.notebook
def test_prometheus_reads_back_what_a_real_run_recorded(
    prometheus: Prometheus, tmp_path: Path
) -> None:
    # A fresh Pushgateway: nothing pushed before this run, none kept from an earlier one.
    assert _get(f"{prometheus.pushgateway}/api/v1/metrics")["data"] == []
    home = tmp_path / "lakehouse"
    env = lab_env_vars(home) | {"LAB_METRICS_PUSHGATEWAY": prometheus.pushgateway}
    run = subprocess.run(
        [sys.executable, "-m", "lab_env.cli", "run", "--start", str(DAY), "--end", str(DAY)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    [summary_file] = (home / "runs").glob("*/*/summary.json")
    summary = json.loads(summary_file.read_text())
    steps = [step["name"] for step in summary["steps"]]
    assert steps == ["bronze", "silver", "gold", "quality"]

    # Every step's success, through the Pushgateway and a scrape, as Prometheus stores it.
    success = prometheus.wait_for(
        "every step's metrics",
        lambda: (got := prometheus.query("lakehouse_step_success")) and len(got) == 4 and got,
    )
    assert success == {(("step", step),): 1.0 for step in steps}
    durations = prometheus.query("lakehouse_step_duration_seconds")
    written = prometheus.query("lakehouse_rows_written")
    for step in summary["steps"]:
        assert durations[(("step", step["name"]),)] == pytest.approx(step["seconds"])
        for change in step["tables"]:
            key = (("step", step["name"]), ("table", change["table"]))
            assert written[key] == change["added_records"], key
    assert written[(("step", "silver"), ("table", "silver.asset_prices"))] > 0
    assert prometheus.query('lakehouse_quality_verdict == 1') == {
        (("step", "quality"), ("verdict", "PUBLISHED")): 1.0
    }
    # Gold's newest day is the day just run, published by the gate.
    assert prometheus.query("lakehouse_gold_newest_day_timestamp_seconds{step='quality'}") == {
        (("step", "quality"),): DAY_END
    }
    # The textfile holds the same values, for node-exporter's textfile collector.
    settings = load_settings(home=home)
    quality = samples(metrics.textfile(settings, "quality").read_text())
    assert quality[("lakehouse_quality_gate_blocked", (("step", "quality"),))] == 0.0
    assert quality[("lakehouse_step_duration_seconds", (("step", "quality"),))] == (
        durations[(("step", "quality"),)]
    )

    # The rules loaded and evaluate: that day is long past, so gold is stale; the gate passed.
    rules = prometheus.wait_for(
        "the stale-gold alert firing",
        lambda: (r := prometheus.rules())["LakehouseGoldStale"]["state"] == "firing" and r,
    )
    assert {name: rule["health"] for name, rule in rules.items()} == {
        "LakehouseGoldStale": "ok",
        "LakehouseQualityGateBlocked": "ok",
    }
    assert rules["LakehouseQualityGateBlocked"]["state"] == "inactive", (
        rules["LakehouseQualityGateBlocked"],
        prometheus.query("lakehouse_quality_gate_blocked"),
    )

    # A blocked gate, recorded the way the quality step records it: its alert fires.
    folder = Path(summary["folder"])
    report = folder / "quality" / "report.json"
    report.write_text(json.dumps({**json.loads(report.read_text()), "verdict": "BLOCKED"}))
    pushing = settings.model_copy(update={"metrics_pushgateway": prometheus.pushgateway})
    metrics.record_step(quality_result(ok=False), folder, pushing)
    prometheus.wait_for(
        "the blocked-gate alert firing",
        lambda: prometheus.rules()["LakehouseQualityGateBlocked"]["state"] == "firing",
    )
