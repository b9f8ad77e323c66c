"""The 00.x and 01.x checks: each fails on a wrong answer with its hint, passes on the right one.

They run against the real catalog of the test session (Spark and pyiceberg on one SQLite
catalog), writing the same tables the notebooks write.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from lab_env.config import Settings, get_settings
from lab_env.course.checks import foundation
from lab_env.lake import jars
from tests.mistakes import mistake

ASSETS = [
    ("bitcoin", "BTC", 1, 97_250.50),
    ("ethereum", "ETH", 2, 3_412.75),
    ("tether", "USDT", 3, 1.00),
    ("xrp", "XRP", 4, 2.31),
    ("solana", "SOL", 5, 189.40),
]
TOP_QUERY = (
    "SELECT row_number() OVER (ORDER BY price_usd DESC) AS price_rank, symbol, price_usd "
    "FROM hello_assets ORDER BY price_usd DESC LIMIT 3"
)


def _drop(catalog, name: str) -> None:  # type: ignore[no-untyped-def]
    if catalog.table_exists(name):
        catalog.drop_table(name)


def _write_assets(spark, rows: list[tuple[object, ...]], ddl: str = foundation.HELLO_DDL) -> None:  # type: ignore[no-untyped-def]
    spark.createDataFrame(rows, schema=ddl).writeTo(foundation.HELLO_ASSETS).createOrReplace()


@pytest.fixture
def hello_assets(spark, catalog):  # type: ignore[no-untyped-def]
    """silver.hello_assets as the solution writes it (by Spark, one row per asset)."""
    _write_assets(spark, ASSETS)
    return catalog.load_table(foundation.HELLO_ASSETS)


def _top(catalog, query: str = TOP_QUERY) -> pa.Table:  # type: ignore[no-untyped-def]
    duck = catalog.load_table(foundation.HELLO_ASSETS).scan().to_duckdb("hello_assets")
    return duck.sql(query).to_arrow_table()


# ----- 00.1 and 00.2: the settings and the doctor, no Spark -----


def test_lab_home_passes_on_the_settings_folder_and_fails_elsewhere(tmp_path: Path) -> None:
    home = get_settings().lab_home
    right = foundation.lab_home(home)
    assert right.passed and str(home) in right.message
    assert foundation.lab_home(str(home)).passed
    wrong = foundation.lab_home(tmp_path)
    assert not wrong.passed and "get_settings()" in wrong.message
    empty = foundation.lab_home(None)
    assert not empty.passed and "set my_lab_home" in empty.message


def test_iceberg_jar_passes_on_the_jar_spark_loads() -> None:
    path = jars.iceberg_jar(get_settings()).path
    assert path is not None, "the Iceberg jar is missing: run make setup"
    right = foundation.iceberg_jar(str(path))
    assert right.passed and jars.ICEBERG_JAR_NAME in right.message
    wrong = foundation.iceberg_jar("/opt/spark/jars/iceberg-spark-runtime.jar")
    assert not wrong.passed and "not the jar Spark loads" in wrong.message


@pytest.fixture
def no_iceberg_jar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    missing = tmp_path / "missing.jar"
    monkeypatch.setenv("LAB_ICEBERG_JAR", str(missing))
    get_settings.cache_clear()
    yield missing
    monkeypatch.undo()
    get_settings.cache_clear()


def test_iceberg_jar_fails_with_the_doctor_hint_when_no_jar_is_found(no_iceberg_jar: Path) -> None:
    result = foundation.iceberg_jar(no_iceberg_jar)
    assert not result.passed and "lab doctor" in result.message


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        pytest.param(lambda home: Path.cwd() / "lakehouse", "not where this lab writes",
                     marks=mistake("00.1", "repo-default-folder"), id="./lakehouse"),
        pytest.param(lambda home: home / "warehouse", "a folder inside LAB_HOME",
                     marks=mistake("00.1", "subfolder"), id="warehouse"),
        pytest.param(lambda home: None, "set my_lab_home",
                     marks=mistake("00.1", "left-unset"), id="None"),
        pytest.param(lambda home: f"{home.name}", "not where this lab writes",
                     marks=mistake("00.1", "relative-name"), id="relative"),
    ],
)
def test_lab_home_mistakes(answer, hint: str) -> None:  # type: ignore[no-untyped-def]
    result = foundation.lab_home(answer(get_settings().lab_home))
    assert not result.passed and hint in result.message, result.message


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        pytest.param(lambda jar: jar.parent, "is the folder",
                     marks=mistake("00.2", "folder-not-file"), id="folder"),
        pytest.param(lambda jar: "/opt/spark/jars/iceberg-spark-runtime.jar",
                     "not the jar Spark loads", marks=mistake("00.2", "guessed-path"),
                     id="guessed"),
        pytest.param(lambda jar: jar.name, "not the jar Spark loads",
                     marks=mistake("00.2", "file-name-only"), id="name-only"),
        pytest.param(lambda jar: "", "set iceberg_jar",
                     marks=mistake("00.2", "left-unset"), id="empty"),
    ],
)
def test_iceberg_jar_mistakes(answer, hint: str) -> None:  # type: ignore[no-untyped-def]
    path = jars.iceberg_jar(get_settings()).path
    assert path is not None, "the Iceberg jar is missing: run make setup"
    result = foundation.iceberg_jar(answer(path))
    assert not result.passed and hint in result.message, result.message


# ----- 01.1: namespaces, on a catalog of its own -----


@mistake("01.1", "forgot-a-layer")
def test_namespaces_fail_until_every_layer_exists(fresh_settings: Settings) -> None:
    from lab_env.lake.catalog import get_catalog

    first = foundation.namespaces()
    assert not first.passed and "CREATE NAMESPACE IF NOT EXISTS bronze" in first.message
    catalog = get_catalog(fresh_settings)
    catalog.create_namespace("bronze")
    catalog.create_namespace("silver")
    second = foundation.namespaces()
    assert not second.passed and "gold" in second.message
    catalog.create_namespace("gold")
    assert foundation.namespaces().passed


@mistake("01.1", "misspelt-layer")
def test_namespaces_fail_on_a_misspelt_layer(fresh_settings: Settings) -> None:
    from lab_env.lake.catalog import get_catalog

    catalog = get_catalog(fresh_settings)
    for name in ("bronze", "silver", "golden"):
        catalog.create_namespace(name)
    result = foundation.namespaces()
    assert not result.passed and "namespace gold does not exist" in result.message


LAYERS = ("bronze", "silver", "gold")


@pytest.mark.spark
@mistake("01.1", "no-if-not-exists")
def test_namespaces_run_the_learners_statement_again(spark, catalog) -> None:  # type: ignore[no-untyped-def]
    """The cell promises to be safe to run twice: the check runs the learner's code again."""

    def without_if_not_exists() -> None:
        for layer in LAYERS:
            spark.sql(f"CREATE NAMESPACE {layer}")

    result = foundation.namespaces(without_if_not_exists)
    assert not result.passed, result.message
    assert "not safe to run twice" in result.message and "IF NOT EXISTS" in result.message

    def right() -> None:
        for layer in LAYERS:
            spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {layer}")

    assert foundation.namespaces(right).passed

    def stub() -> None:
        raise NotImplementedError("replace this stub")

    assert "not written yet" in foundation.namespaces(stub).message


@pytest.fixture
def ipython(spark):  # type: ignore[no-untyped-def]
    """An IPython shell in this process, as a notebook's kernel runs cells (history kept)."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.user_ns.update(spark=spark, checks=__import__("lab_env.course.checks").checks)
    yield shell
    InteractiveShell.clear_instance()


@pytest.mark.spark
@mistake("01.1", "no-if-not-exists-in-notebook")
def test_namespaces_rerun_the_learners_cell_in_a_notebook(ipython, catalog) -> None:  # type: ignore[no-untyped-def]
    """In a kernel the check finds the learner's CREATE NAMESPACE cell and runs it once more."""
    wrong = ('for layer in ("bronze", "silver", "gold"):\n'
             '    spark.sql(f"CREATE NAMESPACE {layer}")\n'
             'spark.sql("SHOW NAMESPACES").show()')
    ipython.run_cell(wrong, store_history=True)  # fails at once here: the namespaces exist
    check = ipython.run_cell("result = checks.foundation.namespaces()", store_history=True)
    result = ipython.user_ns["result"]
    assert check.success and not result.passed, result.message
    assert "not safe to run twice" in result.message and "CREATE NAMESPACE IF NOT EXISTS" in (
        result.message)
    ipython.run_cell(wrong.replace("NAMESPACE {", "NAMESPACE IF NOT EXISTS {"), store_history=True)
    ipython.run_cell("result = checks.foundation.namespaces()", store_history=True)
    assert ipython.user_ns["result"].passed, ipython.user_ns["result"].message


# ----- 01.2: silver.hello_assets, written by Spark -----


@pytest.mark.spark
def test_hello_assets_fails_while_the_table_is_missing(catalog) -> None:  # type: ignore[no-untyped-def]
    _drop(catalog, foundation.HELLO_ASSETS)
    result = foundation.hello_assets(len(ASSETS))
    assert not result.passed and "does not exist yet" in result.message


@pytest.mark.spark
def test_hello_assets_passes_when_spark_wrote_one_row_per_asset(hello_assets) -> None:  # type: ignore[no-untyped-def]
    result = foundation.hello_assets(len(ASSETS))
    assert result.passed and "committed by Spark" in result.message
    wrong_count = foundation.hello_assets(len(ASSETS) + 1)
    assert not wrong_count.passed and f"expected {len(ASSETS) + 1}" in wrong_count.message


@pytest.mark.spark
@pytest.mark.parametrize(
    ("rows", "ddl", "expected", "hint"),
    [
        pytest.param(ASSETS, "asset_id STRING, symbol STRING, rank BIGINT, price_usd DOUBLE",
                     len(ASSETS), "'rank' is long, not int",
                     marks=mistake("01.2", "inferred-long-rank"), id="wrong-type"),
        pytest.param([row[:3] for row in ASSETS], "asset_id STRING, symbol STRING, rank INT",
                     len(ASSETS), "'price_usd' is missing",
                     marks=mistake("01.2", "column-left-out"), id="missing-column"),
        pytest.param([*ASSETS, ASSETS[0]], foundation.HELLO_DDL, len(ASSETS) + 1,
                     "one row per asset", marks=mistake("01.2", "asset-twice"),
                     id="an-asset-repeats"),
    ],
)
def test_hello_assets_fails_on_a_wrong_table(  # type: ignore[no-untyped-def]
    spark, rows: list[tuple[object, ...]], ddl: str, expected: int, hint: str
) -> None:
    """The table written from ``rows`` with columns ``ddl``, checked for ``expected`` rows."""
    _write_assets(spark, rows, ddl)
    result = foundation.hello_assets(expected)
    assert not result.passed and hint in result.message, result.message


@pytest.mark.spark
@mistake("01.2", "append-instead-of-replace")
def test_hello_assets_fails_when_the_cell_appends_on_a_rerun(spark) -> None:  # type: ignore[no-untyped-def]
    _write_assets(spark, ASSETS)
    spark.createDataFrame(ASSETS, schema=foundation.HELLO_DDL).writeTo(
        foundation.HELLO_ASSETS).append()  # the cell run a second time, with append()
    result = foundation.hello_assets(len(ASSETS))
    assert not result.passed and "append() adds to them" in result.message


@pytest.mark.spark
@mistake("01.2", "written-by-pyiceberg")
def test_hello_assets_fails_when_pyiceberg_wrote_it(spark, catalog) -> None:  # type: ignore[no-untyped-def]
    _drop(catalog, foundation.HELLO_ASSETS)
    data = pa.table(
        {
            "asset_id": [r[0] for r in ASSETS],
            "symbol": [r[1] for r in ASSETS],
            "rank": pa.array([r[2] for r in ASSETS], pa.int32()),
            "price_usd": [r[3] for r in ASSETS],
        }
    )
    catalog.create_table(foundation.HELLO_ASSETS, schema=data.schema).append(data)
    result = foundation.hello_assets(len(ASSETS))
    assert not result.passed and "not Spark" in result.message


# ----- 01.3: the DuckDB question -----


@pytest.mark.spark
def test_top_assets_passes_on_the_duckdb_answer_in_any_frame(hello_assets, spark, catalog) -> None:  # type: ignore[no-untyped-def]
    top = _top(catalog)
    assert top.column("symbol").to_pylist() == ["BTC", "ETH", "SOL"]
    assert foundation.top_assets(top).passed
    assert foundation.top_assets(top.to_pandas()).passed
    assert foundation.top_assets(spark.createDataFrame(top.to_pandas())).passed


@pytest.mark.spark
@pytest.mark.parametrize(
    ("query", "hint"),
    [
        pytest.param(TOP_QUERY.replace("DESC", "ASC"), "take the most expensive",
                     marks=mistake("01.3", "ascending-order")),
        pytest.param(TOP_QUERY.replace("DESC) AS", "ASC) AS"), "number the rows",
                     marks=mistake("01.3", "rank-numbered-ascending")),
        (
            "SELECT 4 - row_number() OVER (ORDER BY price_usd DESC) AS price_rank, symbol, "
            "price_usd FROM hello_assets ORDER BY price_usd DESC LIMIT 3",
            "rank 1 is the highest price",
        ),
        pytest.param(TOP_QUERY.replace("LIMIT 3", "LIMIT 4"), "has 4 rows",
                     marks=mistake("01.3", "off-by-one-limit")),
        (TOP_QUERY.replace("price_rank", "position"), "no column 'price_rank'"),
        pytest.param(
            "SELECT rank AS price_rank, symbol, price_usd FROM hello_assets ORDER BY rank LIMIT 3",
            "take the most expensive", marks=mistake("01.3", "market-rank-not-price"),
        ),
        pytest.param(TOP_QUERY.replace(", price_usd FROM", ", round(price_usd) AS price_usd FROM"),
                     "prices", marks=mistake("01.3", "rounded-prices")),
    ],
)
def test_top_assets_fails_with_a_hint(hello_assets, catalog, query: str, hint: str) -> None:  # type: ignore[no-untyped-def]
    result = foundation.top_assets(_top(catalog, query))
    assert not result.passed and hint in result.message


# ----- 01.4: gold.hello_top_assets, written by pyiceberg -----


@pytest.mark.spark
@mistake("01.4", "written-by-spark")
@mistake("01.4", "created-not-appended")
@mistake("01.4", "appended-a-shorter-top")
def test_hello_top_assets_passes_only_when_pyiceberg_wrote_the_top_three(  # type: ignore[no-untyped-def]
    hello_assets, spark, catalog
) -> None:
    _drop(catalog, foundation.HELLO_TOP)
    missing = foundation.hello_top_assets()
    assert not missing.passed and "does not exist yet" in missing.message

    top = _top(catalog)
    spark.createDataFrame(top.to_pandas()).writeTo(foundation.HELLO_TOP).createOrReplace()
    by_spark = foundation.hello_top_assets()
    assert not by_spark.passed and "with pyiceberg" in by_spark.message

    _drop(catalog, foundation.HELLO_TOP)
    table = catalog.create_table(foundation.HELLO_TOP, schema=top.schema)
    empty = foundation.hello_top_assets()
    assert not empty.passed and "no rows yet" in empty.message
    table.append(_top(catalog, TOP_QUERY.replace("LIMIT 3", "LIMIT 2")))
    too_few = foundation.hello_top_assets()
    assert not too_few.passed and "has 2 rows" in too_few.message

    table.overwrite(top)
    right = foundation.hello_top_assets()
    assert right.passed and "committed by pyiceberg" in right.message


# ----- 01.5: the current metadata file -----


@pytest.mark.spark
def test_current_metadata_passes_on_the_file_the_catalog_points_at(hello_assets, catalog) -> None:  # type: ignore[no-untyped-def]
    location = catalog.load_table(foundation.HELLO_ASSETS).metadata_location
    assert foundation.current_metadata(location).passed
    assert foundation.current_metadata(foundation.uri_path(location)).passed


@pytest.mark.spark
@mistake("01.5", "first-file-not-newest")
@mistake("01.5", "data-file")
@mistake("01.5", "another-tables-folder")
def test_current_metadata_fails_on_an_older_version_or_another_file(  # type: ignore[no-untyped-def]
    hello_assets, spark, catalog
) -> None:
    before = catalog.load_table(foundation.HELLO_ASSETS).metadata_location
    spark.sql(f"UPDATE {foundation.HELLO_ASSETS} SET price_usd = 1.5 WHERE asset_id = 'tether'")
    table = catalog.load_table(foundation.HELLO_ASSETS)
    assert table.metadata_location != before

    older = foundation.current_metadata(before)
    assert not older.passed and "older version" in older.message

    data_file = table.inspect.files().column("file_path")[0].as_py()
    not_metadata = foundation.current_metadata(data_file)
    assert not not_metadata.passed and "not a table metadata file" in not_metadata.message

    current = Path(foundation.uri_path(table.metadata_location))
    other = foundation.current_metadata(current.parent.parent / "elsewhere" / current.name)
    assert not other.passed and "not in" in other.message

    assert not foundation.current_metadata("").passed
