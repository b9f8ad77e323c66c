"""The import contract of lab_env: no cycle, and every layer imports only the layers below it.

Read from the source with ``ast``, so an import inside a function counts as much as one at the
top of a module (that is where cycles hide); imports under ``if TYPE_CHECKING:`` never run and
are left out.
"""

from __future__ import annotations

import ast
import graphlib
import shutil
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lab_env"

# What every other module builds on: these import nothing of lab_env but each other.
FOUNDATION = {
    "lab_env.errors", "lab_env.config", "lab_env.dates", "lab_env.paths", "lab_env.processes",
    "lab_env.alerts", "lab_env.ports",
}
# The packages from the bottom up (docs/architecture.md): a module may import its own package
# and anything on a lower line, never a higher one or a sibling on its own line. `lab_env`
# itself (what a notebook imports) sits on top with the CLI.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"foundation"}),
    frozenset({"lake", "source"}),
    frozenset({"quality", "streaming", "dashboard"}),
    frozenset({"jobs"}),
    frozenset({"course", "machine"}),
    frozenset({"cli", "lab_env"}),
)


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(tree: ast.Module) -> set[int]:
    """The ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(inner) for statement in node.body for inner in ast.walk(statement)}
    return skipped


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module of the package under ``root`` -> the package's modules it imports at run time."""
    modules = {_module_name(path, root): path for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _type_checking_only(tree)
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                package = name if path.name == "__init__.py" else name.rpartition(".")[0]
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                module = node.module if node.level == 0 else ".".join(
                    filter(None, (base, node.module)))
                for alias in node.names:  # `from pkg import module` imports that module
                    submodule = f"{module}.{alias.name}"
                    targets.add(submodule if submodule in modules else module)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph (first module repeated last), or None."""
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def test_the_package_has_no_import_cycle() -> None:
    assert cycle(import_graph()) is None


def test_the_foundation_imports_nothing_above_it() -> None:
    graph = import_graph()
    assert graph.keys() >= FOUNDATION
    upward = {name: sorted(graph[name] - FOUNDATION) for name in FOUNDATION}
    assert not any(upward.values()), upward


def layer_of(module: str) -> tuple[int, str]:
    """(height, package) of a module: ``lab_env.lake.spark`` -> (1, "lake")."""
    if module in FOUNDATION:
        return 0, "foundation"
    parts = module.split(".")
    package = parts[1] if len(parts) > 1 else "lab_env"
    for height, packages in enumerate(LAYERS):
        if package in packages:
            return height, package
    raise AssertionError(f"{module} is in no layer of tests/test_imports.py's LAYERS")


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that runs to a higher layer, or across to another package of the same one."""
    found = []
    for module, targets in sorted(graph.items()):
        height, package = layer_of(module)
        for target in sorted(targets):
            other_height, other = layer_of(target)
            if other != package and other_height >= height:
                found.append(f"{module} -> {target}")
    return found


def test_every_layer_imports_only_the_layers_below_it() -> None:
    assert layer_violations(import_graph()) == []


def test_the_contract_catches_an_import_up_the_layers(tmp_path: Path) -> None:
    """An import from the lake up into jobs, added on purpose in a copy, breaks the contract."""
    copy = tmp_path / "lab_env"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    catalog = copy / "lake" / "catalog.py"
    catalog.write_text(
        catalog.read_text(encoding="utf-8")
        + "\n\ndef _late() -> None:\n    from lab_env.jobs.runner import Kernel  # noqa: F401\n",
        encoding="utf-8",
    )
    assert layer_violations(import_graph(copy)) == ["lab_env.lake.catalog -> lab_env.jobs.runner"]


def test_no_module_imports_the_cli() -> None:
    """The CLI sits on top: it calls into the package, nothing outside it calls back into it."""
    importers = sorted(
        name
        for name, targets in import_graph().items()
        if not name.startswith("lab_env.cli")
        and any(t == "lab_env.cli" or t.startswith("lab_env.cli.") for t in targets)
    )
    assert importers == [], importers


def test_the_contract_catches_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    """The checks fail on a cycle added on purpose, in a copy of the package."""
    copy = tmp_path / "lab_env"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    config = copy / "config.py"
    config.write_text(
        config.read_text(encoding="utf-8")
        + "\n\ndef _late() -> None:\n"
        "    from lab_env.jobs.runner import run_pipeline  # noqa: F401\n",
        encoding="utf-8",
    )
    graph = import_graph(copy)
    found = cycle(graph)
    assert found is not None and "lab_env.config" in found and "lab_env.jobs.runner" in found, found
    assert "lab_env.jobs.runner" in graph["lab_env.config"] - FOUNDATION


@pytest.mark.parametrize("guarded", [True, False])
def test_type_checking_imports_are_left_out(tmp_path: Path, guarded: bool) -> None:
    copy = tmp_path / "lab_env"
    copy.mkdir()
    (copy / "__init__.py").write_text("")
    (copy / "a.py").write_text("from . import b\n")  # relative imports count too
    body = "    from lab_env import a\n"
    (copy / "b.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n" + body
        if guarded
        else "def f() -> None:\n" + body
    )
    assert (cycle(import_graph(copy)) is None) is guarded


# The one place outside the CLI that prints: a check's verdict line is the output of the
# learner's notebook cell (what `lab check` reads back).
PRINTS_INTO_NOTEBOOKS = {"lab_env.course.checks._core"}


def printing_calls(root: Path = PACKAGE) -> list[str]:
    """Where a module outside ``cli/`` writes to the terminal: ``print``, a rich console's
    ``print``, ``click.echo``, ``sys.stdout``/``sys.stderr`` writes (module:line)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        name = _module_name(path, root)
        if name.startswith(f"{root.name}.cli") or name in PRINTS_INTO_NOTEBOOKS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            called = ast.unparse(node.func)
            if called in {"print", "click.echo", "click.secho"} or called.endswith(
                (".print", "stdout.write", "stderr.write")
            ):
                found.append(f"{name}:{node.lineno} {called}")
    return found


def test_only_the_cli_prints() -> None:
    """Domain code returns data (or takes a progress callback); lab_env/cli/ renders it."""
    assert printing_calls() == []


def test_the_print_rule_finds_a_print_added_on_purpose(tmp_path: Path) -> None:
    copy = tmp_path / "lab_env"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    maintain = copy / "lake" / "maintain.py"
    maintain.write_text(maintain.read_text(encoding="utf-8") + "\n\nprint('done')\n")
    assert [line.split(":")[0] for line in printing_calls(copy)] == ["lab_env.lake.maintain"]


# Who may change this process's environment: a library's own switch, set before it loads, and
# the LAB_HOME lock's token handed to the processes a writer starts. Settings never travel this
# way: kernels get theirs from the executor (lab_env.jobs.runner.kernel_env).
ENVIRONMENT_WRITERS = {
    "lab_env.lake.spark": "SPARK_LOCAL_IP and PYSPARK_PYTHON, read by spark-submit and by the"
    " SparkContext before any configuration",
    "lab_env.quality.suites": "GX_ANALYTICS_ENABLED, read by great_expectations on import",
    "lab_env.lake.lock": "the lock's token, inherited by the processes a writer starts",
}


def environment_writes(root: Path = PACKAGE) -> set[str]:
    """The modules that assign, update, pop or delete ``os.environ`` entries."""
    found = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = (node.targets if isinstance(node, ast.Assign | ast.Delete) else
                       [node.func.value] if isinstance(node, ast.Call)
                       and isinstance(node.func, ast.Attribute)
                       and node.func.attr in {"update", "pop", "setdefault", "clear",
                                              "__setitem__", "__delitem__"} else [])
            for target in targets:
                inner = target.value if isinstance(target, ast.Subscript) else target
                if ast.unparse(inner) in {"os.environ", "environ"}:
                    found.add(_module_name(path, root))
    return found


def test_only_library_switches_and_the_lock_write_the_environment() -> None:
    assert environment_writes() == set(ENVIRONMENT_WRITERS)


def test_the_environment_rule_finds_a_setting_written_on_purpose(tmp_path: Path) -> None:
    copy = tmp_path / "lab_env"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    config = copy / "config.py"
    config.write_text(config.read_text(encoding="utf-8")
                      + "\n\ndef _point(home: str) -> None:\n    os.environ['LAB_HOME'] = home\n")
    assert environment_writes(copy) == {*ENVIRONMENT_WRITERS, "lab_env.config"}


def test_the_code_map_in_the_docs_names_every_module() -> None:
    """docs/architecture.md's map of lab_env by concern lists every module and package."""
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    start = text.index("### `lab_env/` by concern")
    table = text[start : text.index("\n\n", text.index("| --- |", start))]
    names = [f"`{p.stem}`" for p in PACKAGE.rglob("*.py")
             if p.stem != "__init__" and p.parent.name != "checks"]
    names += [f"`{p.name}/`" for p in PACKAGE.rglob("*") if (p / "__init__.py").is_file()]
    missing = sorted(name for name in names if name not in table)
    assert not missing, f"not in docs/architecture.md's code map: {missing}"


def test_the_notebook_executor_builds_no_iri_grammar_at_import() -> None:
    """papermill (every `lab` command that runs a notebook), Airflow, dbt and Great Expectations
    import jsonschema. From 4.25 on, jsonschema imports rfc3987-syntax, which builds 38 Earley
    parsers with lark at import: 1.3 s of CPU in each of those processes. pyproject.toml pins
    jsonschema below it (docs/production.md); a re-lock that brings it back fails here."""
    import subprocess
    import sys

    code = "import sys, papermill; print(sorted({'rfc3987_syntax', 'lark'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", f"imported with papermill: {done.stdout.strip()}"
