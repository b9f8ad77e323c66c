"""``lab dashboard``: serve the Streamlit app on 127.0.0.1, offline, in this process."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from lab_env.config import Settings, get_settings

APP = Path(__file__).with_name("app.py")
DEFAULT_PORT = 8501


def streamlit_flags(port: int, address: str = "127.0.0.1") -> list[str]:
    """Streamlit's options for the lab: this machine only, no browser, no telemetry.

    The frontend's scripts, fonts and chart libraries ship inside the streamlit wheel, so with
    usage statistics off the page makes no request beyond the server (the browser test checks).
    """
    return [
        "--server.address", address,
        "--server.port", str(port),
        "--server.headless", "true",  # no browser opened, no e-mail prompt
        "--browser.gatherUsageStats", "false",
        "--browser.serverAddress", "127.0.0.1",
        "--global.developmentMode", "false",
        "--server.fileWatcherType", "none",  # a served app, not an editor session
        "--client.toolbarMode", "viewer",
    ]


def free_port(port: int, address: str = "127.0.0.1") -> int:
    """``port`` if it can be bound (raises EADDRINUSE otherwise); 0: any free one."""
    with socket.socket() as sock:
        sock.bind((address, port))
        return int(sock.getsockname()[1])


def serve(port: int = DEFAULT_PORT, settings: Settings | None = None,
          address: str = "127.0.0.1", on_ready: Callable[[str], None] | None = None) -> None:
    """Check that gold can be read, then run the app until Ctrl-C (blocks).

    ``address``: 127.0.0.1 on a machine; 0.0.0.0 only inside a container whose port is
    published on the host's 127.0.0.1 (the Compose service). ``on_ready`` gets the app's URL
    once gold has been read, before Streamlit starts.
    """
    from streamlit.web import cli as streamlit_cli

    from lab_env.dashboard import data

    settings = settings or get_settings()
    port = free_port(port, address)
    data.load_tables(settings)  # no gold yet: one line with the fix, not an empty page
    if on_ready:
        on_ready(f"http://{address}:{port}/")
    streamlit_cli.main.main(["run", str(APP), *streamlit_flags(port, address)],
                            prog_name="streamlit", standalone_mode=False)
