"""``lab docs``: the quality report and Data Docs of a run (:mod:`lab_env.quality.report`)."""

from __future__ import annotations

import click

from lab_env.cli.base import LabCommand
from lab_env.cli.params import PORT
from lab_env.cli.render import say


@click.command(
    "docs", cls=LabCommand,
    short_help="the quality report and Data Docs of a run (print, open or serve)",
)
@click.option("--run", "run_id", metavar="ID",
              help="the run id (default: the latest run with a report)")
@click.option("--serve", is_flag=True, help="serve it on 127.0.0.1")
@click.option("--port", type=PORT, default=8765, help="port for --serve (0: any free)")
@click.option("--open", "open_page", is_flag=True, help="open it in your browser")
def docs(run_id: str | None, serve: bool, port: int, open_page: bool) -> None:
    """Print the path of a run's quality report (index.html, linking its Data Docs); open it
    in your browser, or serve its folder on 127.0.0.1 until Ctrl-C."""
    from lab_env.quality import report

    page = report.find_report(run_id)
    say(str(page))
    if open_page:
        import webbrowser

        webbrowser.open(page.as_uri())
    if serve:
        from lab_env.cli.serve import serve_folder

        serve_folder(page.parent, page.name, port)


COMMANDS: list[click.Command] = [docs]
