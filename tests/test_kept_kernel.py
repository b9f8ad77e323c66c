"""`lab check` keeps its kernel for the next check (lab_env.course.kept): the next check runs
in the same kernel and JVM and sees what a fresh kernel would; a check that never finished, or
a kernel left idle, leaves nothing running."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from lab_env import processes
from lab_env.config import load_settings
from lab_env.course import kept
from tests.notebook_builders import code, write_notebook
from tests.pipeline_runs import REPO, lab, lab_env_vars

# A course notebook's name (milestone 00 starts from an empty lakehouse: nothing to build).
COURSE = "00_welcome.ipynb"
# What the kernel, its JVM and its Spark session look like from a notebook; then it leaves
# behind everything a check could leave for the next one.
PROBE = """\
import json, os
from lab_env.lake.spark import get_spark
spark = get_spark()
print("PROBE " + json.dumps({
    "kernel": os.getpid(),
    "jvm": spark.sparkContext._jvm.ProcessHandle.current().pid(),
    "view_left": spark.catalog.tableExists("left_view"),
    "variable_left": "left_variable" in globals(),
    "shuffle_partitions": spark.conf.get("spark.sql.shuffle.partitions"),
    "cached_datasets": spark.sparkContext._jsc.sc().getPersistentRDDs().size(),
    "cwd": os.getcwd(),
    "replay_server": os.environ["LAB_COINCAP_URL"],
}))
left_variable = 1
spark.range(3).createOrReplaceTempView("left_view")
spark.conf.set("spark.sql.shuffle.partitions", "7")
spark.range(10).cache().count()
"""


def probe(home: Path) -> dict:
    executed = nbformat.read(home / "runs" / "checks" / COURSE, as_version=4)
    printed = "".join(out.get("text", "") for cell in executed.cells
                      for out in cell.get("outputs", []))
    found = [line for line in printed.splitlines() if line.startswith("PROBE ")]
    assert found, f"the probe printed nothing:\n{printed[-2000:]}"
    return json.loads(found[0].removeprefix("PROBE "))


def alive(pid: int) -> bool:
    return processes.identity(pid) is not None  # an exited one not yet reaped counts as gone


def test_the_next_check_runs_in_the_kept_kernel_and_sees_what_a_fresh_one_would(
    tmp_path: Path
) -> None:
    home = tmp_path / "home"
    notebook = write_notebook(tmp_path / "notebooks" / COURSE, code(PROBE))
    first = lab(home, "check", str(notebook))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "This check started a kernel" in first.stdout, first.stdout
    before = probe(home)

    again = lab(home, "check", str(notebook))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "ran in the kernel kept from your last check" in again.stdout, again.stdout
    after = probe(home)
    assert (after["kernel"], after["jvm"]) == (before["kernel"], before["jvm"])  # kept, warm
    # ... and nothing of the first check is left: as in a kernel started for this check
    assert after["view_left"] is False and after["variable_left"] is False
    assert after["shuffle_partitions"] == before["shuffle_partitions"] == "4"
    assert after["cached_datasets"] == 0
    assert after["cwd"] == str(notebook.parent)
    assert after["replay_server"] != before["replay_server"]  # this check's environment

    settings = load_settings(home=home)
    record = json.loads((settings.runs_dir / "checks" / kept.RECORD).read_text())
    assert kept.stop(settings)
    assert not alive(before["kernel"]) and not alive(before["jvm"])
    assert not Path(record["scratch"]).exists()
    assert not kept.stop(settings)  # nothing left to stop


def test_an_unfinished_check_or_an_idle_kernel_leaves_nothing_running(tmp_path: Path) -> None:
    home = tmp_path / "home"
    idle = {"LAB_CHECK_KERNEL_IDLE_S": "30"}
    started = tmp_path / "notebooks" / "started"
    notebook = write_notebook(
        tmp_path / "notebooks" / COURSE,
        code(f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\ntime.sleep(600)"),
    )
    # a learner's `lab check` killed half-way: its kernel is still in the notebook
    check = subprocess.Popen(
        [sys.executable, "-m", "lab_env.cli", "check", str(notebook)], cwd=REPO,
        env=lab_env_vars(home) | idle, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not started.exists():
        assert check.poll() is None and time.monotonic() < deadline, "the notebook never started"
        time.sleep(0.5)
    check.send_signal(signal.SIGKILL)
    check.wait()
    settings = load_settings(home=home)
    unfinished = json.loads((settings.runs_dir / "checks" / kept.RECORD).read_text())
    assert unfinished["idle_since"] is None and alive(unfinished["pid"])

    write_notebook(notebook, code(PROBE))
    next_check = lab(home, "check", str(notebook), env=idle)
    assert next_check.returncode == 0, next_check.stdout + next_check.stderr
    assert "This check started a kernel" in next_check.stdout, next_check.stdout
    assert not alive(unfinished["pid"]) and not Path(unfinished["scratch"]).exists()
    now = probe(home)
    assert now["kernel"] != unfinished["pid"]

    # left idle, the kernel ends by itself (idle time, then at most a watch interval and the
    # JVM's exit), with its JVM and its scratch folder
    record = json.loads((settings.runs_dir / "checks" / kept.RECORD).read_text())
    deadline = time.monotonic() + 30 + 60
    while alive(now["kernel"]) and time.monotonic() < deadline:
        time.sleep(1)
    assert not alive(now["kernel"]) and not alive(now["jvm"])
    assert not Path(record["scratch"]).exists()
