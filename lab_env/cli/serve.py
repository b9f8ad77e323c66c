"""Serving a folder of static pages (the quality report, dbt docs) on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import contextlib
import functools
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click


def serve_folder(folder: Path, page: str, port: int = 0) -> None:
    """Serve ``folder`` on 127.0.0.1 (``port`` 0: any free one), say where ``page`` is, and
    block until Ctrl-C. The pages open offline as files too."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Requests are not logged to the terminal."""

    handler = functools.partial(Quiet, directory=str(folder))
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        click.echo(f"Serving http://127.0.0.1:{server.server_port}/{page} (Ctrl-C to stop)")
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
