"""AppDatabaseResource on real databases: SQLite files and a throwaway PostgreSQL.

The database fixtures (`sqlite_app_url`, `pg_app_url`) come from tests/support/fixtures_db.py,
which tests/conftest.py registers as a plugin.
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from resources.app_database import (
    AppDatabaseError,
    AppDatabaseResource,
    PersistRequest,
    PersistResult,
)
from tests.support.app_tables import execute, rows

PRODUCTS = (
    "CREATE TABLE products (sku VARCHAR(20) PRIMARY KEY, name TEXT NOT NULL, qty INTEGER,"
    " price NUMERIC(10,2), org TEXT)"
)
EVENTS = "CREATE TABLE events (id INTEGER, org TEXT, note TEXT)"
COUNTS = {  # SQLite rejects a wrongly typed value only in a STRICT table
    "sqlite": "CREATE TABLE counts (id INTEGER PRIMARY KEY, n INTEGER NOT NULL) STRICT",
    "postgresql": "CREATE TABLE counts (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
}
APP = "shop"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def app_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The app `shop`'s database (through APP_DB_URL) with the tables above."""
    kind = request.param
    url = request.getfixturevalue("sqlite_app_url" if kind == "sqlite" else "pg_app_url")
    monkeypatch.setenv("APP_DB_URL", url)
    execute(url, PRODUCTS, EVENTS, COUNTS[kind])
    return url


@pytest.fixture
def db() -> AppDatabaseResource:
    return AppDatabaseResource()


def batch(records: list[dict[str, Any]], schema: pa.Schema | None = None) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(records, schema=schema)


def product(sku: str, name: str | None = "n", qty: int = 1, org: str = "x") -> dict[str, Any]:
    return {"sku": sku, "name": name, "qty": qty, "org": org}


def persist(
    db: AppDatabaseResource, request: PersistRequest, *batches: pa.RecordBatch, lineage: str = "r1"
) -> PersistResult:
    return db.persist(APP, request, list(batches), lineage=lineage, step="persist_products")


UPSERT = PersistRequest("products", "upsert", upsert_key=["sku"])


# --- URLs -------------------------------------------------------------------------------


def test_url_from_the_apps_own_variable_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DB_URL", "postgresql://u@db/{app_id}")
    monkeypatch.setenv("APP_DB_URL__MY_APP", "postgresql://u@other/special")
    db = AppDatabaseResource()
    assert db.url_for("my-app") == "postgresql://u@other/special"
    assert db.url_for("shop") == "postgresql://u@db/shop"


def test_url_defaults_to_an_sqlite_file_in_the_data_folder(tmp_path: Path) -> None:
    db = AppDatabaseResource(data_dir=str(tmp_path / "d"))
    assert db.url_for("shop") == f"sqlite:///{tmp_path}/d/apps/shop.sqlite"
    assert (tmp_path / "d" / "apps").is_dir()
    default = AppDatabaseResource().url_for("shop")  # $WORKFLOWS_DATA_DIR, set by conftest
    assert default.startswith("sqlite:///") and default.endswith("/apps/shop.sqlite")


@pytest.mark.parametrize("app_id", ["", "-shop", "_shop", "a/b", "a b", "../x", "shop;drop"])
def test_invalid_app_ids_are_refused(app_id: str) -> None:
    with pytest.raises(AppDatabaseError, match="invalid appId"):
        AppDatabaseResource().url_for(app_id)


def test_errors_never_show_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DB_URL", "postgresql://bob:s3cret-pw@127.0.0.1:1/{app_id}")
    db = AppDatabaseResource()
    assert "s3cret" not in db.describe(APP) and "***" in db.describe(APP)
    # A refused connection stays an OperationalError (the step retries those), with a note.
    with pytest.raises(sa.exc.OperationalError) as caught:
        db.table_columns(APP, "products")
    shown = "".join(traceback.format_exception(caught.value))
    assert "s3cret" not in shown
    assert "while connecting to app 'shop' (postgresql://bob:***@127.0.0.1:1/shop)" in shown
    monkeypatch.setenv("APP_DB_URL__BAD", "::pw-in-garbage::")
    with pytest.raises(AppDatabaseError, match="not a database URL") as bad:
        db.table_columns("bad", "t")
    assert "pw-in-garbage" not in str(bad.value)


# --- reading ----------------------------------------------------------------------------


def test_table_columns_are_duckdb_types(app_url: str, db: AppDatabaseResource) -> None:
    columns = db.table_columns(APP, "products")
    assert list(columns) == ["sku", "name", "qty", "price", "org"]
    integer = "BIGINT" if app_url.startswith("sqlite") else "INTEGER"
    assert columns == {
        "sku": "VARCHAR",
        "name": "VARCHAR",
        "qty": integer,
        "price": "DECIMAL(10,2)",
        "org": "VARCHAR",
    }


def test_read_streams_batches_with_filter_and_columns(
    app_url: str, db: AppDatabaseResource
) -> None:
    values = ", ".join(
        f"('s{i:02}', 'n{i}', {i}, {i}.5, '{'x' if i % 2 else 'y'}')" for i in range(26)
    )
    execute(app_url, f"INSERT INTO products VALUES {values}")
    got = list(db.read_batches(APP, "products", ["sku", "qty"], "org", "x", batch_size=4))
    assert [b.num_rows for b in got] == [4, 4, 4, 1]
    assert all(b.schema.names == ["sku", "qty"] for b in got)
    table = pa.Table.from_batches(got)
    assert table.column("qty").to_pylist() == list(range(1, 26, 2))
    # A where value of another type is read as the column's type (template values are text).
    by_qty = pa.Table.from_batches(db.read_batches(APP, "products", None, "qty", "7"))
    assert by_qty.to_pylist() == [
        {"sku": "s07", "name": "n7", "qty": 7, "price": decimal.Decimal("7.50"), "org": "x"}
    ]


@pytest.mark.postgres
def test_postgres_reads_through_a_server_side_cursor(
    pg_app_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_DB_URL", pg_app_url)
    fill = "INSERT INTO events SELECT g, 'a', 'x' FROM generate_series(1, 50) g"
    execute(pg_app_url, EVENTS, fill)
    batches = AppDatabaseResource().read_batches(APP, "events", batch_size=20)
    assert next(batches).num_rows == 20
    activity = "SELECT query FROM pg_stat_activity WHERE query LIKE 'FETCH FORWARD%'"
    assert len(rows(pg_app_url, activity)) == 1  # the rest waits on the server
    assert [b.num_rows for b in batches] == [20, 10]


def test_read_of_no_rows_gives_one_empty_batch_and_null_filter(
    app_url: str, db: AppDatabaseResource
) -> None:
    execute(app_url, "INSERT INTO products (sku, name) VALUES ('a', 'A')")
    empty = list(db.read_batches(APP, "products", ["sku", "price"], "org", "nope"))
    assert [b.num_rows for b in empty] == [0]
    assert empty[0].schema.field("price").type == pa.decimal128(10, 2)
    nulls = list(db.read_batches(APP, "products", ["sku"], "org", None))
    assert nulls[0].to_pylist() == [{"sku": "a"}]


def test_unknown_table_and_column_are_named(app_url: str, db: AppDatabaseResource) -> None:
    with pytest.raises(AppDatabaseError, match=r"table 'prodcts' does not exist.*'products'"):
        list(db.read_batches(APP, "prodcts"))
    with pytest.raises(AppDatabaseError, match=r"has no column 'skus'.*did you mean 'sku'"):
        list(db.read_batches(APP, "products", ["skus"]))
    with pytest.raises(AppDatabaseError, match=r"whereColumn.*'organisation'"):
        list(db.read_batches(APP, "products", None, "organisation", "x"))
    with pytest.raises(AppDatabaseError, match=r"has no column 'colour'"):
        persist(db, UPSERT, batch([{**product("a"), "colour": "red"}]))
    assert rows(app_url, "SELECT count(*) FROM products") == [(0,)]


def test_values_round_trip_with_their_types(app_url: str, db: AppDatabaseResource) -> None:
    execute(
        app_url,
        "CREATE TABLE typed (id INTEGER PRIMARY KEY, at TIMESTAMP, day DATE,"
        " amount NUMERIC(10,2), flag BOOLEAN, note TEXT)",
    )
    source = {
        "id": 1,
        "at": dt.datetime(2024, 3, 1, 12, 30, 5, 250000),
        "day": dt.date(2024, 2, 29),
        "amount": decimal.Decimal("12.34"),
        "flag": True,
        "note": {"tags": ["a"]},
    }
    request = PersistRequest("typed", "append")
    db.persist(APP, request, [batch([source])], lineage="r1", step="typed")
    read = pa.Table.from_batches(db.read_batches(APP, "typed")).to_pylist()
    assert read == [{**source, "note": '{"tags": ["a"]}'}]


# --- persist modes ----------------------------------------------------------------------


def test_upsert_twice_gives_the_same_rows(app_url: str, db: AppDatabaseResource) -> None:
    source = batch([product("a", qty=1), product("b", qty=2)])
    first = persist(db, UPSERT, source, lineage="r1")
    persist(db, UPSERT, source, lineage="r2")
    assert first.rows_written == 2 and not first.already_done
    query = "SELECT sku, name, qty FROM products ORDER BY sku"
    assert rows(app_url, query) == [("a", "n", 1), ("b", "n", 2)]
    persist(db, UPSERT, batch([product("b", name="B", qty=5), product("c")]), lineage="r3")
    assert rows(app_url, query) == [("a", "n", 1), ("b", "B", 5), ("c", "n", 1)]


def test_upsert_last_duplicate_key_wins(app_url: str, db: AppDatabaseResource) -> None:
    persist(db, UPSERT, batch([product("a", qty=1), product("a", qty=2)]))
    assert rows(app_url, "SELECT sku, qty FROM products") == [("a", 2)]


def test_replace_all_touches_only_matching_rows(app_url: str, db: AppDatabaseResource) -> None:
    execute(
        app_url,
        "INSERT INTO events VALUES (1, 'a', 'old'), (2, 'a', 'old'), (3, 'b', 'keep'),"
        " (4, NULL, 'keep')",
    )
    request = PersistRequest("events", "replaceAll", match_columns=["org"])
    source = batch([{"id": i, "org": "a", "note": "new"} for i in (5, 6, 7)])
    result = db.persist(APP, request, [source], lineage="r1", step="replace")
    assert result.rows_written == 3
    assert rows(app_url, "SELECT id, org, note FROM events ORDER BY id") == [
        (3, "b", "keep"),
        (4, None, "keep"),
        (5, "a", "new"),
        (6, "a", "new"),
        (7, "a", "new"),
    ]


def test_append_inserts_every_row(app_url: str, db: AppDatabaseResource) -> None:
    request = PersistRequest("events", "append")
    source = batch([{"id": 1, "org": "a", "note": None}, {"id": 1, "org": "a", "note": None}])
    db.persist(APP, request, [source], lineage="r1", step="append")
    db.persist(APP, request, [source, source], lineage="r2", step="append")
    assert rows(app_url, "SELECT count(*) FROM events") == [(6,)]


# --- bad rows ---------------------------------------------------------------------------


def test_bad_row_under_fail_leaves_the_table_untouched(
    app_url: str, db: AppDatabaseResource
) -> None:
    execute(app_url, "INSERT INTO products (sku, name, qty) VALUES ('a', 'A', 1)")
    before = rows(app_url, "SELECT sku, name, qty FROM products")
    source = batch([product("a", qty=9), product("b"), product("c", name=None), product("d")])
    with pytest.raises(AppDatabaseError, match=r"row 3: .*name.*nothing was written"):
        persist(db, UPSERT, source)
    assert rows(app_url, "SELECT sku, name, qty FROM products") == before
    # No marker was left behind: the same step of the same run can write the fixed rows.
    fixed = persist(db, UPSERT, batch([product("c")]))
    assert fixed.rows_written == 1 and not fixed.already_done


def test_type_error_under_fail_leaves_the_table_untouched(
    app_url: str, db: AppDatabaseResource
) -> None:
    source = batch([{"id": i, "n": n} for i, n in enumerate(["1", "2", "many", "4"], start=1)])
    # PostgreSQL names the value and the column; SQLite the column.
    with pytest.raises(AppDatabaseError, match=r"source row 3: .*(many.*column n|column counts.n)"):
        db.persist(APP, PersistRequest("counts", "append"), [source], lineage="r1", step="c")
    assert rows(app_url, "SELECT count(*) FROM counts") == [(0,)]


def test_skip_reports_bad_rows_and_writes_the_good_ones(
    app_url: str, db: AppDatabaseResource
) -> None:
    values = ["1", None, "3", "x", "5", "6"]
    first = batch([{"id": i, "n": n} for i, n in enumerate(values[:3], start=1)])
    second = batch([{"id": i, "n": n} for i, n in enumerate(values[3:], start=4)])
    request = PersistRequest("counts", "upsert", upsert_key=["id"], on_row_error="skip")
    result = db.persist(APP, request, [first, second], lineage="r1", step="c")
    assert (result.rows_written, result.rows_skipped) == (4, 2)
    assert [e.split(":")[0] for e in result.errors] == ["row 2", "row 4"]
    assert "not null" in result.errors[0].lower().replace("-", " ")
    assert rows(app_url, "SELECT id, n FROM counts ORDER BY id") == [(1, 1), (3, 3), (5, 5), (6, 6)]


def test_skip_reports_the_first_ten_errors(app_url: str, db: AppDatabaseResource) -> None:
    source = batch([{"id": i, "n": None if i <= 25 else i} for i in range(1, 31)])
    request = PersistRequest("counts", "append", on_row_error="skip")
    result = db.persist(APP, request, [source], lineage="r1", step="c")
    assert (result.rows_written, result.rows_skipped) == (5, 25)
    assert [e.split(":")[0] for e in result.errors] == [f"row {i}" for i in range(1, 11)]


# --- exactly once and up-front checks ---------------------------------------------------


def test_same_lineage_and_step_write_once(app_url: str, db: AppDatabaseResource) -> None:
    request = PersistRequest("events", "append")
    source = batch([{"id": 1, "org": "a", "note": "x"}])
    first = db.persist(APP, request, [source], lineage="run-1", step="append")
    again = db.persist(APP, request, [source], lineage="run-1", step="append")
    other = db.persist(APP, request, [source], lineage="run-1", step="append_2")
    assert (first.rows_written, first.already_done) == (1, False)
    assert (again.rows_written, again.already_done) == (0, True)
    assert not other.already_done
    assert rows(app_url, "SELECT count(*) FROM events") == [(2,)]
    markers = "SELECT lineage, step, rows_written FROM _workflow_persist_markers ORDER BY step"
    assert rows(app_url, markers) == [("run-1", "append", 1), ("run-1", "append_2", 1)]


def test_an_empty_source_writes_nothing_but_counts_as_done(
    app_url: str, db: AppDatabaseResource
) -> None:
    execute(app_url, "INSERT INTO events VALUES (1, 'a', 'keep')")
    request = PersistRequest("events", "replaceAll", match_columns=["org"])
    first = db.persist(APP, request, [], lineage="r1", step="replace")
    again = db.persist(APP, request, [], lineage="r1", step="replace")
    assert (first.rows_written, first.already_done, again.already_done) == (0, False, True)
    assert rows(app_url, "SELECT id, org, note FROM events") == [(1, "a", "keep")]


def test_concurrent_writers_of_one_step_write_once(app_url: str, db: AppDatabaseResource) -> None:
    request = PersistRequest("events", "append")
    source = batch([{"id": i, "org": "a", "note": "x"} for i in range(100)])

    def write(_: int) -> PersistResult:
        return db.persist(APP, request, [source], lineage="run-1", step="append")

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(write, range(3)))
    assert sorted(r.already_done for r in results) == [False, True, True]
    assert rows(app_url, "SELECT count(*) FROM events") == [(100,)]


def test_upsert_key_without_unique_constraint_fails_before_writing(
    app_url: str, db: AppDatabaseResource
) -> None:
    request = PersistRequest("events", "upsert", upsert_key=["id"])
    source = batch([{"id": 1, "org": "a", "note": "x"}])
    with pytest.raises(AppDatabaseError, match=r"upsertKey \(id\) of table 'events'.*unique"):
        db.persist(APP, request, [source], lineage="r1", step="s")
    assert rows(app_url, "SELECT count(*) FROM events") == [(0,)]
    with pytest.raises(AppDatabaseError, match=r"NOT NULL column\(s\) .* name"):
        persist(db, UPSERT, batch([{"sku": "a", "qty": 1}]))


@pytest.mark.postgres
def test_large_upsert_goes_through_copy(
    pg_app_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("APP_DB_URL", pg_app_url)
    execute(pg_app_url, PRODUCTS)
    caplog.set_level(logging.DEBUG, logger="resources.persist_sql")
    n = 50_000
    schema = pa.schema([("sku", pa.string()), ("name", pa.string()), ("qty", pa.int64())])
    skus = [f"k{i:06}" for i in range(n)]
    db = AppDatabaseResource()
    for qty, lineage in ((1, "r1"), (2, "r2")):
        source = pa.RecordBatch.from_pydict(
            {"sku": skus, "name": ["n"] * n, "qty": [qty] * n}, schema=schema
        )
        assert persist(db, UPSERT, source, lineage=lineage).rows_written == n
    assert "staged 50000 rows for products via COPY" in caplog.text
    assert rows(pg_app_url, "SELECT count(*), min(qty), max(qty) FROM products") == [(n, 2, 2)]


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE TABLE items (sku VARCHAR(20) UNIQUE NOT NULL, qty INTEGER)",
        'CREATE TABLE items ("sku" TEXT UNIQUE, qty INTEGER)',
        "CREATE TABLE items (sku TEXT, qty INTEGER, UNIQUE (sku))",
    ],
    ids=["inline-unique-not-null", "inline-unique-quoted", "table-unique"],
)
def test_upsert_on_an_inline_unique_column_of_sqlite(
    sqlite_app_url: str, monkeypatch: pytest.MonkeyPatch, db: AppDatabaseResource, ddl: str
) -> None:
    """SQLAlchemy's reflection misses some inline UNIQUE forms; SQLite's index list does not."""
    monkeypatch.setenv("APP_DB_URL", sqlite_app_url)
    execute(sqlite_app_url, ddl)
    request = PersistRequest("items", "upsert", upsert_key=["sku"])
    for lineage, qty in (("r1", 1), ("r2", 2)):
        db.persist(APP, request, [batch([{"sku": "a", "qty": qty}])], lineage=lineage, step="s")
    assert rows(sqlite_app_url, "SELECT sku, qty FROM items") == [("a", 2)]
