"""Self-checks for milestones 00 (welcome) and 01 (the local stack).

They look at the real environment and the real tables: the settings the lab runs with, the jar
Spark loads, the namespaces in the catalog, and the two hello tables, ``silver.hello_assets``
(written by Spark) and ``gold.hello_top_assets`` (written by pyiceberg from a DuckDB query).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from lab_env.config import get_settings
from lab_env.course.checks import exercise, fail, ok
from lab_env.course.checks._core import _Verdict, kernel_namespace, learner_cell, replay
from lab_env.lake import jars
from lab_env.lake.catalog import NAMESPACES, get_catalog

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import Table

HELLO_ASSETS = "silver.hello_assets"
HELLO_TOP = "gold.hello_top_assets"
# The columns of silver.hello_assets and their Iceberg types: one row per asset.
HELLO_SCHEMA = {"asset_id": "string", "symbol": "string", "rank": "int", "price_usd": "double"}
HELLO_DDL = "asset_id STRING, symbol STRING, rank INT, price_usd DOUBLE"
TOP_COLUMNS = ("price_rank", "symbol", "price_usd")
TOP_N = 3


def uri_path(location: str | os.PathLike[str]) -> str:
    """A location as a path: ``file:/x`` or ``file:///x`` gives ``/x``, ``s3://b/k`` ``b/k``."""
    text = os.fspath(location).strip()
    parts = urlsplit(text)
    if parts.scheme == "file":
        return str(Path(unquote(parts.path)).resolve())
    if parts.scheme in ("s3", "s3a"):
        return f"{parts.netloc}{parts.path}"
    return str(Path(text).expanduser().resolve())


def _load(name: str) -> Table | None:
    catalog = get_catalog()
    return catalog.load_table(name) if catalog.table_exists(name) else None


def _engine(table: Table) -> str:
    """Which engine committed the current snapshot (Spark names itself, pyiceberg does not)."""
    snapshot = table.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return ""
    return snapshot.summary.additional_properties.get("engine-name", "pyiceberg")


def _expected_top() -> pa.Table | None:
    """The TOP_N most expensive assets of silver.hello_assets, highest price first."""
    table = _load(HELLO_ASSETS)
    if table is None:
        return None
    rows = table.scan(selected_fields=("symbol", "price_usd")).to_arrow()
    return rows.sort_by([("price_usd", "descending")]).slice(0, TOP_N)


def _as_arrow(answer: Any) -> pa.Table:
    """The learner's result as an Arrow table: Arrow, pandas, or a DuckDB relation."""
    import pyarrow as pa

    if isinstance(answer, pa.Table):
        return answer
    if hasattr(answer, "to_arrow_table"):  # a DuckDB relation
        return answer.to_arrow_table()
    if hasattr(answer, "toPandas"):  # a Spark DataFrame
        return pa.Table.from_pandas(answer.toPandas(), preserve_index=False)
    return pa.Table.from_pandas(answer, preserve_index=False)


def _compare_top(rows: pa.Table, where: str) -> _Verdict | None:
    """A fail verdict if ``rows`` is not the top-N table, else None."""
    missing = [c for c in TOP_COLUMNS if c not in rows.column_names]
    if missing:
        return fail(f"{where} has no column {missing[0]!r}; it needs {', '.join(TOP_COLUMNS)}.")
    expected = _expected_top()
    if expected is None:
        return fail(f"{HELLO_ASSETS} does not exist: do exercise 01.2 first.")
    if rows.num_rows != expected.num_rows:
        return fail(
            f"{where} has {rows.num_rows} rows; keep the {expected.num_rows} most expensive "
            "assets (LIMIT)."
        )
    rows = rows.sort_by("price_rank")
    if rows.column("price_rank").to_pylist() != list(range(1, rows.num_rows + 1)):
        return fail(
            f"price_rank in {where} is {rows.column('price_rank').to_pylist()}: number the rows "
            "1, 2, 3 from the highest price (row_number() OVER (ORDER BY price_usd DESC))."
        )
    got = rows.column("symbol").to_pylist()
    want = expected.column("symbol").to_pylist()
    if got != want:
        if sorted(got) == sorted(want):
            return fail(f"{where} ranks {got}: rank 1 is the highest price (ORDER BY ... DESC).")
        return fail(f"{where} holds {got}: take the most expensive assets by price_usd.")
    if rows.column("price_usd").to_pylist() != expected.column("price_usd").to_pylist():
        return fail(f"the prices in {where} differ from {HELLO_ASSETS}: copy price_usd unchanged.")
    return None


@exercise("00.1", "Find your LAB_HOME")
def lab_home(answer: str | os.PathLike[str] | None) -> _Verdict:
    """The learner's LAB_HOME is the folder the settings resolve to."""
    if answer is None or not os.fspath(answer).strip():
        return fail("set my_lab_home to a path: the settings object knows it (get_settings()).")
    expected = get_settings().lab_home
    given = Path(uri_path(answer))
    if given != expected and expected in given.parents:
        return fail(
            f"{given} is a folder inside LAB_HOME: give LAB_HOME itself (settings.lab_home)."
        )
    if given != expected:
        return fail(
            f"{given} is not where this lab writes: look at the lab_home property of "
            "get_settings() (set by LAB_HOME)."
        )
    return ok(f"the lab writes under {expected}: raw/, warehouse/, catalog.db and runs/.")


@exercise("00.2", "Find the Iceberg jar Spark loads")
def iceberg_jar(answer: str | os.PathLike[str] | None) -> _Verdict:
    """The learner names the Iceberg Spark runtime jar that Spark will load."""
    choice = jars.iceberg_jar(get_settings())
    if choice.path is None:
        return fail(
            f"no Iceberg jar was found ({choice.source}): run `lab doctor` and apply its fix first."
        )
    if answer is None or not os.fspath(answer).strip():
        return fail("set iceberg_jar to the path in the 'Iceberg Spark runtime' row of the table.")
    given = Path(uri_path(answer))
    if given == choice.path.resolve().parent:
        return fail(f"{given} is the folder: give the path of the jar file itself (the "
                    "'Iceberg Spark runtime' row's detail).")
    if given != choice.path.resolve():
        return fail(
            f"{given.name} is not the jar Spark loads: read the detail of the doctor's "
            "'Iceberg Spark runtime' check."
        )
    size_mb = choice.path.stat().st_size / 1e6
    return ok(f"Spark loads {choice.path.name} ({size_mb:.0f} MB) from {choice.source}.")


@exercise("01.1", "One namespace per layer")
def namespaces(create: Callable[[], object] | None = None) -> _Verdict:
    """bronze, silver and gold exist in the catalog, and creating them again is harmless.

    ``create`` runs the learner's statements once more (the notebook promises the cell is safe
    to run twice); in a notebook the check finds the learner's CREATE NAMESPACE cell itself.
    """
    found = {ns[0] for ns in get_catalog().list_namespaces()}
    missing = [name for name in NAMESPACES if name not in found]
    if missing:
        return fail(
            f"namespace {missing[0]} does not exist yet: "
            f"spark.sql('CREATE NAMESPACE IF NOT EXISTS {missing[0]}')."
        )
    if create is None:
        create = _learner_create()
    if create is not None:
        try:
            create()
        except NotImplementedError:
            raise  # the stub is still there: "not written yet"
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:160]
            return fail(
                f"your cell is not safe to run twice: run again, it raised {type(exc).__name__}"
                f" ({first}). Create each namespace with CREATE NAMESPACE IF NOT EXISTS."
            )
    return ok(f"{', '.join(NAMESPACES)} exist in catalog {get_settings().catalog_name!r}.")


def _learner_create() -> Callable[[], object] | None:
    """Re-running the learner's CREATE NAMESPACE cell, when this runs in a notebook."""
    source = learner_cell("CREATE NAMESPACE")
    if source is None:
        return None
    namespace = kernel_namespace()
    return lambda: replay(source, dict(namespace))


@exercise("01.2", "Spark wrote silver.hello_assets")
def hello_assets(expected_rows: int) -> _Verdict:
    """The table has the schema, one row per asset, and Spark committed it."""
    table = _load(HELLO_ASSETS)
    if table is None:
        return fail(f"{HELLO_ASSETS} does not exist yet: df.writeTo('{HELLO_ASSETS}')"
                    ".createOrReplace().")
    columns = {field.name: str(field.field_type) for field in table.schema().fields}
    for name, kind in HELLO_SCHEMA.items():
        if name not in columns:
            return fail(f"column {name!r} is missing: build the DataFrame with "
                        f"schema={HELLO_DDL!r}.")
        if columns[name] != kind:
            return fail(f"column {name!r} is {columns[name]}, not {kind}: build the DataFrame "
                        f"with schema={HELLO_DDL!r}.")
    extra = sorted(set(columns) - set(HELLO_SCHEMA))
    if extra:
        return fail(f"unexpected column {extra[0]!r}: keep exactly {', '.join(HELLO_SCHEMA)}.")
    engine = _engine(table)
    if not engine:
        return fail(f"{HELLO_ASSETS} has no rows yet: write the DataFrame into it.")
    if engine != "spark":
        return fail(f"the last write to {HELLO_ASSETS} came from {engine}, not Spark: "
                    "write it with df.writeTo(...).")
    ids = table.scan(selected_fields=("asset_id",)).to_arrow().column("asset_id").to_pylist()
    if len(ids) != expected_rows:
        return fail(f"{len(ids)} rows, expected {expected_rows} (one per asset): "
                    "createOrReplace() replaces the rows, append() adds to them.")
    if None in ids or len(set(ids)) != len(ids):
        return fail("asset_id is empty or repeats: the grain is one row per asset.")
    return ok(f"{len(ids)} rows, one per asset, committed by Spark.")


@exercise("01.3", "DuckDB ranks the most expensive assets")
def top_assets(answer: Any) -> _Verdict:
    """The learner's DuckDB result is the top-3 of silver.hello_assets by price."""
    if answer is None:
        return fail("set top to the result of your DuckDB query (.to_arrow_table()).")
    verdict = _compare_top(_as_arrow(answer), "your result")
    if verdict is not None:
        return verdict
    return ok(f"{TOP_N} rows, highest price first, straight from the Iceberg files.")


@exercise("01.4", "pyiceberg wrote gold.hello_top_assets")
def hello_top_assets() -> _Verdict:
    """The gold table holds the top-3 and pyiceberg, not Spark, committed it."""
    table = _load(HELLO_TOP)
    if table is None:
        return fail(f"{HELLO_TOP} does not exist yet: catalog.create_table('{HELLO_TOP}', "
                    "schema=top.schema).")
    engine = _engine(table)
    if not engine:
        return fail(f"{HELLO_TOP} has no rows yet: append `top` to it.")
    if engine == "spark":
        return fail(f"Spark wrote the last snapshot of {HELLO_TOP}: write it with pyiceberg "
                    "(table.append(top)).")
    verdict = _compare_top(table.scan().to_arrow(), HELLO_TOP)
    if verdict is not None:
        return verdict
    return ok(f"{HELLO_TOP} holds the top {TOP_N}, committed by pyiceberg.")


@exercise("01.5", "Find the current metadata file")
def current_metadata(answer: str | os.PathLike[str] | None) -> _Verdict:
    """The learner picks the metadata JSON that the catalog points at."""
    table = _load(HELLO_ASSETS)
    if table is None:
        return fail(f"{HELLO_ASSETS} does not exist: do exercise 01.2 first.")
    if answer is None or not os.fspath(answer).strip():
        return fail("set current_metadata to one of the *.metadata.json files listed above.")
    given = PurePosixPath(uri_path(answer))
    expected = PurePosixPath(uri_path(table.metadata_location))
    if given == expected:
        version = int(expected.name.split("-", 1)[0])
        return ok(f"the catalog points at version {version} of the table's metadata.")
    if not given.name.endswith(".metadata.json"):
        return fail(f"{given.name} is not a table metadata file: pick a *.metadata.json file.")
    if given.parent != expected.parent:
        return fail(f"{given} is not in {HELLO_ASSETS}'s metadata/ folder ({expected.parent}).")
    return fail(f"{given.name} is an older version: the current one has the highest number at "
                "the start of its name.")
