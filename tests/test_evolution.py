"""Schema evolution in two engines, read by three: after every step, Spark, pyiceberg and DuckDB
return the expected rows, and the files written before the step are read as they are. Last, a
new field from the source flows from the replay server through bronze into silver.

One table goes through the steps in order (create, add, rename, widen, nested, reorder, drop and
re-add). Each step changes the schema with Spark SQL or pyiceberg's ``update_schema``, writes one
more row, and reads the whole table with the three readers below: they were written once, before
any change, and never name a column.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import nbformat
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.types import DecimalType, DoubleType, StringType

pytestmark = pytest.mark.spark

NAME = "sandbox.m7_evolve"
Rows = list[dict[str, Any]]


def read_spark(spark: Any, catalog: Catalog) -> tuple[list[str], Rows]:
    frame = spark.table(NAME).orderBy("id")
    return frame.columns, [row.asDict(recursive=True) for row in frame.collect()]


def read_pyiceberg(spark: Any, catalog: Catalog) -> tuple[list[str], Rows]:
    rows = catalog.load_table(NAME).scan().to_arrow().sort_by("id")
    return rows.column_names, rows.to_pylist()


def read_duckdb(spark: Any, catalog: Catalog) -> tuple[list[str], Rows]:
    con = catalog.load_table(NAME).scan().to_duckdb("evolving")
    relation = con.sql("SELECT * FROM evolving ORDER BY id")
    return relation.columns, [dict(zip(relation.columns, r, strict=True))
                              for r in relation.fetchall()]


READERS: dict[str, Callable[[Any, Catalog], tuple[list[str], Rows]]] = {
    "spark": read_spark, "pyiceberg": read_pyiceberg, "duckdb": read_duckdb,
}


@dataclass
class Step:
    name: str
    expected_columns: list[str]
    expected_rows: Rows
    read: dict[str, tuple[list[str], Rows]]
    old_files_kept: bool


def data_files(catalog: Catalog) -> set[str]:
    return set(catalog.load_table(NAME).inspect.files().column("file_path").to_pylist())


def evolve(spark: Any, catalog: Catalog) -> list[Step]:
    """Run every step; return what each reader saw after each."""
    catalog.create_namespace_if_not_exists("sandbox")
    spark.sql(f"DROP TABLE IF EXISTS {NAME} PURGE")
    steps: list[Step] = []
    expected: Rows = []

    def record(step: str, before: set[str]) -> None:
        after = data_files(catalog)
        read = {reader: fn(spark, catalog) for reader, fn in READERS.items()}
        columns = list(expected[0]) if expected else []
        rows = sorted((dict(r) for r in expected), key=lambda r: r["id"])
        steps.append(Step(step, columns, rows, read, before <= after))

    # 0. the table as first designed
    spark.sql(f"""CREATE TABLE {NAME} (id INT, name STRING, price FLOAT, amount DECIMAL(10,2),
                  info STRUCT<source: STRING>) USING iceberg""")
    spark.sql(f"""INSERT INTO {NAME} VALUES
                  (1, 'BTC', 1.5, 10.25, named_struct('source', 'api')),
                  (2, 'ETH', 2.25, 3.50, named_struct('source', 'api'))""")
    expected += [
        {"id": 1, "name": "BTC", "price": 1.5, "amount": Decimal("10.25"),
         "info": {"source": "api"}},
        {"id": 2, "name": "ETH", "price": 2.25, "amount": Decimal("3.50"),
         "info": {"source": "api"}},
    ]
    record("create", set())

    # 1. add a column (Spark): old rows read it as null
    before = data_files(catalog)
    spark.sql(f"ALTER TABLE {NAME} ADD COLUMN venue STRING COMMENT 'where the price was seen'")
    spark.sql(f"INSERT INTO {NAME} VALUES "
              "(3, 'SOL', 4.5, 7.00, named_struct('source', 'api'), 'dex')")
    for row in expected:
        row["venue"] = None
    expected.append({"id": 3, "name": "SOL", "price": 4.5, "amount": Decimal("7.00"),
                     "info": {"source": "api"}, "venue": "dex"})
    record("add column", before)

    # 2. rename a column (pyiceberg): old files keep field id 2, now called symbol
    before = data_files(catalog)
    with catalog.load_table(NAME).update_schema() as update:
        update.rename_column("name", "symbol")
    spark.sql(f"INSERT INTO {NAME} (id, symbol, price, amount, info, venue) "
              "VALUES (4, 'ADA', 0.5, 1.00, named_struct('source', 'api'), 'cex')")
    expected = [{("symbol" if k == "name" else k): v for k, v in r.items()} for r in expected]
    expected.append({"id": 4, "symbol": "ADA", "price": 0.5, "amount": Decimal("1.00"),
                     "info": {"source": "api"}, "venue": "cex"})
    record("rename column", before)

    # 3. widen types: int -> long (Spark), float -> double and decimal(10,2) -> (20,2) (pyiceberg)
    before = data_files(catalog)
    spark.sql(f"ALTER TABLE {NAME} ALTER COLUMN id TYPE BIGINT")
    with catalog.load_table(NAME).update_schema() as update:
        update.update_column("price", DoubleType())
        update.update_column("amount", DecimalType(20, 2))
    spark.sql(f"INSERT INTO {NAME} (id, symbol, price, amount, info, venue) VALUES "
              "(5000000000, 'BIG', 0.1, 123456789012345.67, named_struct('source', 'api'), 'cex')")
    expected.append({"id": 5_000_000_000, "symbol": "BIG", "price": 0.1,
                     "amount": Decimal("123456789012345.67"), "info": {"source": "api"},
                     "venue": "cex"})
    record("widen types", before)

    # 4. nested fields: add info.region (pyiceberg), rename info.source (Spark)
    before = data_files(catalog)
    with catalog.load_table(NAME).update_schema() as update:
        update.add_column(("info", "region"), StringType())
    spark.sql(f"ALTER TABLE {NAME} RENAME COLUMN info.source TO origin")
    spark.sql(f"INSERT INTO {NAME} (id, symbol, price, amount, info, venue) VALUES "
              "(6, 'DOT', 6.0, 6.00, named_struct('origin', 'replay', 'region', 'eu'), 'cex')")
    for row in expected:
        row["info"] = {"origin": row["info"]["source"], "region": None}
    expected.append({"id": 6, "symbol": "DOT", "price": 6.0, "amount": Decimal("6.00"),
                     "info": {"origin": "replay", "region": "eu"}, "venue": "cex"})
    record("nested fields", before)

    # 5. reorder (Spark puts symbol first, pyiceberg moves venue after it): no file rewritten
    before = data_files(catalog)
    spark.sql(f"ALTER TABLE {NAME} ALTER COLUMN symbol FIRST")
    with catalog.load_table(NAME).update_schema() as update:
        update.move_after("venue", "symbol")
    spark.sql(f"INSERT INTO {NAME} (id, symbol, price, amount, info, venue) VALUES "
              "(7, 'XRP', 7.0, 7.00, named_struct('origin', 'api', 'region', 'us'), 'dex')")
    order = ["symbol", "venue", "id", "price", "amount", "info"]
    expected = [{k: r[k] for k in order} for r in expected]
    expected.append({"symbol": "XRP", "venue": "dex", "id": 7, "price": 7.0,
                     "amount": Decimal("7.00"), "info": {"origin": "api", "region": "us"}})
    record("reorder columns", before)

    # 6. drop a column (pyiceberg) and add one with the same name (Spark): a new field id,
    #    so the dropped values do not come back
    before = data_files(catalog)
    with catalog.load_table(NAME).update_schema() as update:
        update.delete_column("venue")
    spark.sql(f"ALTER TABLE {NAME} ADD COLUMN venue STRING")
    spark.sql(f"INSERT INTO {NAME} (symbol, id, price, amount, info, venue) VALUES "
              "('LTC', 8, 8.0, 8.00, named_struct('origin', 'api', 'region', 'us'), 'new')")
    order = ["symbol", "id", "price", "amount", "info", "venue"]
    expected = [{k: (None if k == "venue" else r[k]) for k in order} for r in expected]
    expected.append({"symbol": "LTC", "id": 8, "price": 8.0, "amount": Decimal("8.00"),
                     "info": {"origin": "api", "region": "us"}, "venue": "new"})
    record("drop and re-add column", before)
    return steps


STEPS = ["create", "add column", "rename column", "widen types", "nested fields",
         "reorder columns", "drop and re-add column"]


@pytest.fixture(scope="module")
def evolved(spark, catalog) -> dict[str, Step]:  # type: ignore[no-untyped-def]
    steps = evolve(spark, catalog)
    assert [s.name for s in steps] == STEPS
    return {s.name: s for s in steps}


def same(value: Any, expected: Any) -> bool:
    """Equal, with floats compared as Spark writes them (0.1 stays 0.1 only as a double)."""
    if isinstance(expected, float) and isinstance(value, float):
        return abs(value - expected) <= 1e-12 * max(1.0, abs(expected))
    if isinstance(expected, dict) and isinstance(value, dict):
        return expected.keys() == value.keys() and all(
            same(value[k], expected[k]) for k in expected)
    return bool(value == expected)


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("step", STEPS)
def test_every_reader_returns_the_expected_rows(evolved: dict[str, Step], step: str,
                                                reader: str) -> None:
    result = evolved[step]
    columns, rows = result.read[reader]
    assert columns == result.expected_columns
    assert len(rows) == len(result.expected_rows)
    for got, want in zip(rows, result.expected_rows, strict=True):
        assert same(got, want), f"{reader} after {step}: {got} != {want}"


@pytest.mark.parametrize("step", STEPS[1:])
def test_no_step_rewrites_the_files_written_before_it(evolved: dict[str, Step], step: str) -> None:
    assert evolved[step].old_files_kept


def test_field_ids_survive_rename_and_a_re_added_column_gets_a_new_one(
    evolved: dict[str, Step], catalog: Catalog
) -> None:
    schema = catalog.load_table(NAME).schema()
    assert schema.find_field("symbol").field_id == 2  # was `name`
    assert schema.find_field("info.origin").field_id == 6  # was `info.source`
    assert schema.find_field("venue").field_id > 7  # not the dropped venue's id
    assert str(schema.find_field("id").field_type) == "long"
    assert str(schema.find_field("amount").field_type) == "decimal(20, 2)"


# ----- a new source field, from the replay server through bronze into silver -----

REPO = Path(__file__).resolve().parents[1]
DAY = "2025-03-31"
NEW_FIELD, NEW_COLUMN, VALUE = "exchangeCount", "exchange_count", "7"


def executed_stdout(nb: nbformat.NotebookNode) -> str:
    return "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                   for out in cell.get("outputs", []) if out.output_type == "stream")


@pytest.mark.notebook
def test_a_new_source_field_reaches_silver_with_the_rule_on_and_is_kept_in_bronze_with_it_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bronze and silver (rule off) with the replay server adding a field to every history
    record: silver keeps its columns, says what it skipped, bronze holds the field. Silver again
    with the rule on: the field is a new column, filled for the rows stored by the first run."""
    from lab_env.config import get_settings
    from lab_env.jobs.runner import Kernel, execute_notebook, kernel_env
    from lab_env.lake.catalog import get_catalog
    from lab_env.lake.storage import get_store
    from lab_env.source.replay import replay_server

    monkeypatch.setenv("LAB_HOME", str(tmp_path / "lakehouse"))
    params: dict[str, Any] = {"start_date": DAY, "end_date": DAY}
    with replay_server(extra_field=f"{NEW_FIELD}={VALUE}", route="history") as url:
        monkeypatch.setenv("LAB_COINCAP_URL", url)
        get_settings.cache_clear()
        try:
            with kernel_env(get_settings()) as env, Kernel(env=env) as kernel:
                execute_notebook(REPO / "solutions" / "02_bronze.ipynb", tmp_path / "02.ipynb",
                                 params | {"run_id": "bronze"}, kernel=kernel)
                off = execute_notebook(REPO / "solutions" / "03_silver.ipynb",
                                       tmp_path / "03-off.ipynb",
                                       params | {"run_id": "rule-off", "evolve_schema": False},
                                       kernel=kernel)
                prices = get_catalog().load_table("silver.asset_prices")
                off_columns = prices.schema().column_names
                off_rows = prices.scan().to_arrow().num_rows
                history = [key for key in get_store().list("bronze/coincap/asset_history")
                           if key.endswith(".json") and not key.endswith(".meta.json")]
                bronze_values = {record.get(NEW_FIELD) for key in history
                                 for record in json.loads(get_store().get(key))["data"]}
                on = execute_notebook(REPO / "solutions" / "03_silver.ipynb",
                                      tmp_path / "03-on.ipynb",
                                      params | {"run_id": "rule-on", "evolve_schema": True},
                                      kernel=kernel)
                prices = get_catalog().load_table("silver.asset_prices")
                on_rows = prices.scan().to_arrow()
        finally:
            get_settings.cache_clear()

    for run in (off, on):
        assert " FAIL " not in executed_stdout(run), "silver's own checks must pass"
    # rule off: the run does not break, silver's columns stay, the skip is reported, bronze keeps it
    assert NEW_COLUMN not in off_columns and off_rows > 0
    assert f"bronze has fields silver does not keep: ['{NEW_FIELD}']" in executed_stdout(off)
    assert history and bronze_values == {VALUE}
    # rule on: a new optional string column, filled for every row, the old ones included
    field = prices.schema().find_field(NEW_COLUMN)
    assert str(field.field_type) == "string" and not field.required
    assert prices.properties[f"lab.source-field.{NEW_COLUMN}"] == NEW_FIELD
    assert f"bronze field '{NEW_FIELD}' -> new column" in executed_stdout(on)
    assert on_rows.num_rows == off_rows
    assert set(on_rows.column(NEW_COLUMN).to_pylist()) == {VALUE}
    run_ids = set(on_rows.column("silver_run_id").to_pylist())
    assert run_ids == {"rule-off"}, "filling a column must not replace the stored rows"
