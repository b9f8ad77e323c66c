"""The README's `jupyter lab notebooks/` works as it is: as root too, with no news pop-up.

Starts the real JupyterLab server of .venv on 127.0.0.1 (as whoever runs the tests: root in CI
and in containers) and reads the settings the lab installs (jupyter/) back through its API.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pipeline_runs import free_port, stop_group

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A running `jupyter lab notebooks/` with the lab's settings: its URL and token."""
    port, token = free_port(), secrets.token_hex(16)
    home = tmp_path_factory.mktemp("jupyter-home")  # no user-level Jupyter settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env |= {"HOME": str(home), "JUPYTER_TOKEN": token}
    log = (home / "jupyter.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("jupyter")), "lab", "notebooks/", f"--port={port}"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            said = (home / "jupyter.log").read_text()
            assert server.poll() is None, f"jupyter lab exited:\n{said[-3000:]}"
            assert time.monotonic() < deadline, f"jupyter lab did not answer:\n{said[-3000:]}"
            try:
                if requests.get(f"{url}/api/status", params={"token": token}, timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        yield url, token
    finally:
        stop_group(server, timeout=30)
        log.close()


def test_jupyter_lab_starts_on_loopback_whoever_runs_it(jupyter_lab: tuple[str, str]) -> None:
    url, token = jupyter_lab
    status = requests.get(f"{url}/api/status", params={"token": token}, timeout=10)
    assert status.ok
    listed = requests.get(f"{url}/api/contents", params={"token": token}, timeout=10).json()
    assert any(item["name"].endswith(".ipynb") for item in listed["content"])
    assert requests.get(f"{url}/api/status", timeout=10).status_code == 403  # the token is needed


def test_jupyter_lab_fetches_no_news_and_checks_no_updates(jupyter_lab: tuple[str, str]) -> None:
    url, token = jupyter_lab
    plugin = "@jupyterlab/apputils-extension:notification"
    settings = requests.get(
        f"{url}/lab/api/settings/{plugin}", params={"token": token}, timeout=10
    ).json()
    # overrides.json replaces the defaults every user starts from
    properties = settings["schema"]["properties"]
    defaults = {name: spec.get("default") for name, spec in properties.items()}
    assert defaults["fetchNews"] == "false"
    assert defaults["checkForUpdates"] is False
