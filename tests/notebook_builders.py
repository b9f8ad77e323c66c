"""Small notebooks built in code, for the tests of the exercise tooling and the grader."""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook


def write_notebook(path: Path, *cells: nbformat.NotebookNode) -> Path:
    """Write ``cells`` as a Python 3 notebook at ``path`` (folders created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3", "language": "python"
    }
    nbformat.write(nb, str(path))
    return path


def code(source: str, **kwargs: object) -> nbformat.NotebookNode:
    """A code cell from an indented triple-quoted ``source``."""
    return new_code_cell(textwrap.dedent(source).strip("\n"), **kwargs)
