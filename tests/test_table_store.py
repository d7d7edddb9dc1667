"""The table store: typed Parquet writes, casting errors, atomic files, reading back."""

from __future__ import annotations

import datetime as dt
import pickle
import uuid
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resources.table_store import (
    CastError,
    SqlError,
    TableHandle,
    TableStoreError,
    TableStoreResource,
    describe_query,
    normalize_type,
)
from resources.table_store_sql import find_parameters, open_sandbox

UTC = dt.UTC
TSTZ = "TIMESTAMP WITH TIME ZONE"


@pytest.fixture
def store(tmp_path: Path) -> TableStoreResource:
    return TableStoreResource(root=str(tmp_path / "tables"))


def write(
    store: TableStoreResource,
    records: Iterable[dict[str, Any]],
    schema: dict[str, str] | None,
    step: str = "step_a",
) -> TableHandle:
    with store.open_writer("run-1", step, step, schema) as writer:
        writer.write_records(records)
    assert writer.handle is not None
    return writer.handle


def duck_types(path: str) -> dict[str, str]:
    rows = duckdb.execute("DESCRIBE SELECT * FROM read_parquet(?)", [path]).fetchall()
    return {r[0]: r[1] for r in rows}


CASTS = [
    ("VARCHAR", "x", "x"),
    ("VARCHAR", 42, "42"),
    ("VARCHAR", 1.5, "1.5"),
    ("VARCHAR", True, "true"),
    ("VARCHAR", {"a": [1, "b"]}, '{"a":[1,"b"]}'),
    ("TEXT", [1, 2], "[1,2]"),
    ("INTEGER", 42, 42),
    ("INTEGER", "42", 42),
    ("INT", " -7 ", -7),
    ("INTEGER", 3.0, 3),
    ("BIGINT", 2**40, 2**40),
    ("BIGINT", "9000000000", 9_000_000_000),
    ("SMALLINT", "-5", -5),
    ("TINYINT", 127, 127),
    ("UBIGINT", 2**64 - 1, 2**64 - 1),
    ("DOUBLE", "1.5", 1.5),
    ("DOUBLE", 2, 2.0),
    ("FLOAT", 1.5, 1.5),
    ("REAL", "0.25", 0.25),
    ("BOOLEAN", True, True),
    ("BOOLEAN", "true", True),
    ("BOOL", "FALSE", False),
    ("BOOLEAN", 0, False),
    ("DATE", "2024-01-15", dt.date(2024, 1, 15)),
    ("DATE", "2024-01-15T00:00:00Z", dt.date(2024, 1, 15)),
    ("DATE", dt.date(2024, 2, 29), dt.date(2024, 2, 29)),
    ("TIMESTAMP", "2024-01-15T10:00:00Z", dt.datetime(2024, 1, 15, 10)),
    ("TIMESTAMP", "2024-01-15T12:00:00+02:00", dt.datetime(2024, 1, 15, 10)),
    ("TIMESTAMP", "2024-01-15 10:00:00.5", dt.datetime(2024, 1, 15, 10, 0, 0, 500000)),
    ("TIMESTAMP", "2024-01-15", dt.datetime(2024, 1, 15)),
    ("TIMESTAMPTZ", "2024-01-15T12:00:00+02:00", dt.datetime(2024, 1, 15, 10, tzinfo=UTC)),
    ("TIMESTAMPTZ", "2024-01-15T10:00:00", dt.datetime(2024, 1, 15, 10, tzinfo=UTC)),
    ("TIME", "10:30:15", dt.time(10, 30, 15)),
    ("DECIMAL(10,2)", "12.34", Decimal("12.34")),
    ("DECIMAL(10,2)", 12.5, Decimal("12.50")),
    ("NUMERIC(10, 2)", 3, Decimal("3.00")),
    ("DECIMAL", "1.125", Decimal("1.125")),
    ("JSON", {"a": [1, None]}, '{"a":[1,null]}'),
    ("JSON", '{"kept": "as text"}', '{"kept": "as text"}'),
    ("JSON", 5, "5"),
    ("UUID", "12345678-1234-5678-1234-567812345678", uuid.UUID("12345678123456781234567812345678")),
    ("BLOB", b"\x00\xff", b"\x00\xff"),
]  # fmt: skip


@pytest.mark.parametrize(("type_name", "value", "expected"), CASTS)
def test_each_type_casts_and_reads_back(
    store: TableStoreResource, type_name: str, value: Any, expected: Any
) -> None:
    handle = write(store, [{"v": value}], {"v": type_name})
    (row,) = list(store.iter_rows(handle))
    got = row["v"]
    if isinstance(expected, dt.datetime) and expected.tzinfo is not None:
        assert got.astimezone(UTC) == expected
    else:
        assert got == expected
        assert type(got) is type(expected)
    # DuckDB sees exactly the declared (normalized) type
    assert duck_types(handle.path) == {"v": normalize_type(type_name)} == handle.columns


CAST_ERRORS = [
    ("INTEGER", 1.5, "fractional part"),
    ("INTEGER", True, "a boolean is not an integer"),
    ("INTEGER", "abc", "not an integer"),
    ("INTEGER", "4_2", "not an integer"),
    ("INTEGER", "", "not an integer"),
    ("INTEGER", 2**31, "out of range"),
    ("UTINYINT", -1, "out of range"),
    ("DOUBLE", False, "a boolean is not a number"),
    ("DOUBLE", "one", "could not convert"),
    ("BOOLEAN", "maybe", "not a boolean"),
    ("BOOLEAN", 2, "not a boolean"),
    ("DATE", "2024-01-15T10:00:00", "time of day"),
    ("DATE", "15/01/2024", "Invalid isoformat"),
    ("TIMESTAMP", 1700000000, "not an ISO-8601 timestamp"),
    ("DECIMAL(10,2)", "1.005", "more than 2 decimal places"),
    ("DECIMAL(4,2)", 123.4, "more than 2 digits before the point"),
    ("DECIMAL(10,2)", "NaN", "not a finite number"),
    ("JSON", "not json", "JSONDecodeError"),
    ("UUID", "nope", "badly formed"),
    ("VARCHAR", object(), "is not text"),
]


@pytest.mark.parametrize(("type_name", "value", "reason"), CAST_ERRORS)
def test_cast_errors_name_step_row_column_value_and_type(
    store: TableStoreResource, type_name: str, value: Any, reason: str
) -> None:
    records = [{"v": None}, {"v": None}, {"v": value}]
    with pytest.raises(CastError) as info:
        write(store, records, {"id": "INTEGER", "v": type_name}, step="load_orders")
    error = info.value
    assert (error.step, error.row, error.column) == ("load_orders", 3, "v")
    message = str(error)
    assert "step 'load_orders'" in message and "row 3" in message and "column 'v'" in message
    assert normalize_type(type_name) in message
    assert reason in message
    assert repr(value)[:20] in message
    assert not any((store.root_path() / "run-1").iterdir()), "no partial or temp file"


def test_cast_error_row_counts_across_chunks_and_row_groups(tmp_path: Path) -> None:
    store = TableStoreResource(root=str(tmp_path), batch_rows=100)
    with (
        pytest.raises(CastError, match=r"row 251, column 'n': cannot cast 'x'"),
        store.open_writer("run-1", "s", "s", {"n": "BIGINT"}) as writer,
    ):
        for start in range(0, 300, 50):
            writer.write_records({"n": "x" if i == 250 else i} for i in range(start, start + 50))
    assert not (tmp_path / "run-1" / "s.parquet").exists()


def test_long_values_are_truncated_in_the_message(store: TableStoreResource) -> None:
    with pytest.raises(CastError) as info:
        write(store, [{"v": "y" * 5000}], {"v": "INTEGER"})
    assert "..." in str(info.value)
    assert len(str(info.value)) < 300


def test_missing_fields_are_null_and_extra_fields_dropped(store: TableStoreResource) -> None:
    records: list[dict[str, Any]] = [{"a": 1, "b": "x", "extra": 9}, {"a": 2}, {}]
    handle = write(store, records, {"a": "INTEGER", "b": "VARCHAR"})
    assert list(store.iter_rows(handle)) == [
        {"a": 1, "b": "x"},
        {"a": 2, "b": None},
        {"a": None, "b": None},
    ]
    assert handle.columns == {"a": "INTEGER", "b": "VARCHAR"}


def test_objects_in_varchar_become_json_text_sql_can_read(store: TableStoreResource) -> None:
    handle = write(store, [{"meta": {"tags": ["a", "b"], "n": 1}}], {"meta": "VARCHAR"})
    with store.query("SELECT meta->>'$.tags[1]' AS tag FROM t", None, {"t": handle}) as reader:
        assert reader.read_all().to_pylist() == [{"tag": "b"}]


def test_empty_result_is_a_valid_table_with_the_schema(store: TableStoreResource) -> None:
    handle = write(store, [], {"id": "BIGINT", "at": "TIMESTAMPTZ"})
    assert handle.row_count == 0
    assert duck_types(handle.path) == {"id": "BIGINT", "at": "TIMESTAMP WITH TIME ZONE"}
    assert list(store.iter_rows(handle)) == []


def test_streaming_writer_writes_bounded_row_groups(store: TableStoreResource) -> None:
    def pages() -> Iterator[list[dict[str, Any]]]:
        for page in range(2000):
            yield [{"id": page * 100 + i, "name": f"n{i}"} for i in range(100)]

    with store.open_writer("run-1", "big", "big", {"id": "BIGINT", "name": "VARCHAR"}) as w:
        for page in pages():
            w.write_records(page)
    assert w.handle is not None and w.handle.row_count == 200_000
    metadata = pq.ParquetFile(w.handle.path).metadata
    assert metadata.num_row_groups == 20
    assert max(metadata.row_group(i).num_rows for i in range(20)) == 10_000
    total = sum(b.num_rows for b in store.read_batches(w.handle, columns=["id"]))
    assert total == 200_000


def test_failed_step_leaves_no_file_and_keeps_an_older_table(store: TableStoreResource) -> None:
    old = write(store, [{"a": 1}], {"a": "INTEGER"}, step="s")
    with (
        pytest.raises(RuntimeError, match="boom"),
        store.open_writer("run-1", "s", "s", {"a": "INTEGER"}) as writer,
    ):
        writer.write_records({"a": i} for i in range(25_000))
        raise RuntimeError("boom")
    assert writer.handle is None
    assert sorted(p.name for p in Path(old.path).parent.iterdir()) == ["s.parquet"]
    assert [r["a"] for r in store.iter_rows(old)] == [1]


def test_inferred_schema_without_output_schema(store: TableStoreResource) -> None:
    records = [
        {"id": 1, "price": 1, "name": "a", "ok": True, "tags": ["x"], "at": None},
        {"id": 2, "price": 2.5, "name": "b", "ok": False, "tags": {"k": 1}, "mixed": 1},
        {"id": 3, "mixed": "two", "day": dt.date(2024, 1, 1), "cost": Decimal("1.25")},
    ]
    handle = write(store, records, None)
    assert handle.columns == {
        "id": "BIGINT", "price": "DOUBLE", "name": "VARCHAR", "ok": "BOOLEAN", "tags": "JSON",
        "at": "VARCHAR", "mixed": "VARCHAR", "day": "DATE", "cost": "DECIMAL(38,2)",
    }  # fmt: skip
    assert duck_types(handle.path) == handle.columns
    assert [r["mixed"] for r in store.iter_rows(handle)] == [None, "1", "two"]


def test_inferred_schema_refuses_a_field_first_seen_later(tmp_path: Path) -> None:
    store = TableStoreResource(root=str(tmp_path), batch_rows=10)
    with (
        pytest.raises(TableStoreError, match=r"row 15 has field\(s\) \['late'\]"),
        store.open_writer("run-1", "s", "s", None) as writer,
    ):
        writer.write_records([{"a": i} for i in range(14)] + [{"a": 1, "late": 2}])


def test_no_rows_and_no_schema_is_an_error(store: TableStoreResource) -> None:
    with pytest.raises(TableStoreError, match="declare an outputSchema"):
        write(store, [], None)


def test_non_object_record_is_an_error(store: TableStoreResource) -> None:
    with pytest.raises(TableStoreError, match="row 2 is a list, not an object"):
        write(store, [{"a": 1}, [1, 2]], {"a": "INTEGER"})  # type: ignore[list-item]


def test_handle_pickles_and_hashes(store: TableStoreResource) -> None:
    handle = write(store, [{"a": 1}], {"a": "INTEGER"})
    assert pickle.loads(pickle.dumps(handle)) == handle
    assert isinstance(hash(handle), int)
    assert handle.path == str(store.root_path() / "run-1" / "step_a.parquet")


@pytest.mark.parametrize(("run_id", "step"), [("../x", "s"), ("run", "a/b"), ("", "s")])
def test_unsafe_names_are_refused(store: TableStoreResource, run_id: str, step: str) -> None:
    with pytest.raises(TableStoreError, match="not a safe file name"):
        store.open_writer(run_id, step, "t", None)


def test_root_from_environment_and_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TABLE_STORE_ROOT", str(tmp_path / "env"))
    assert TableStoreResource().root_path() == tmp_path / "env"
    monkeypatch.delenv("TABLE_STORE_ROOT")
    monkeypatch.setenv("WORKFLOWS_DATA_DIR", str(tmp_path / "data"))
    assert TableStoreResource().root_path() == tmp_path / "data" / "tables"
    with pytest.raises(TableStoreError, match="expected a local folder or s3://bucket/prefix"):
        TableStoreResource(root="gs://bucket/x").root_path()
    with pytest.raises(TableStoreError, match="is object storage, not a folder"):
        TableStoreResource(root="s3://bucket/x").root_path()


def test_write_batches_casts_to_the_declared_schema(store: TableStoreResource) -> None:
    batch = pa.record_batch(
        {"id": pa.array([1, 2], pa.int32()), "n": pa.array(["5", "6"]), "x": pa.array([1, 2])}
    )
    schema = {"id": "BIGINT", "n": "INTEGER", "note": "VARCHAR"}
    with store.open_writer("run-1", "b", "b", schema) as writer:
        writer.write_batches(
            pa.RecordBatchReader.from_batches(
                batch.schema, [batch.append_column("note", pa.array([None, "x"]))]
            )
        )
        writer.write_records([{"id": 3, "n": 7}])
    assert writer.handle is not None
    assert list(store.iter_rows(writer.handle)) == [
        {"id": 1, "n": 5, "note": None},
        {"id": 2, "n": 6, "note": "x"},
        {"id": 3, "n": 7, "note": None},
    ]


def test_a_declared_column_missing_from_a_batch_is_an_error(store: TableStoreResource) -> None:
    batch = pa.record_batch({"id": pa.array([1]), "tier": pa.array(["gold"])})
    schema = {"id": "BIGINT", "tier_name": "VARCHAR"}
    with (
        pytest.raises(TableStoreError, match=r"\['tier_name'\] are not in the result.*'tier'"),
        store.open_writer("run-1", "b", "b", schema) as writer,
    ):
        writer.write_batches([batch])
    assert not store.table_path("run-1", "b").exists()


def test_write_batches_cast_error_names_the_row(store: TableStoreResource) -> None:
    first = pa.record_batch({"flag": pa.array([True, False])})
    second = pa.record_batch({"flag": pa.array([True, None, False])})
    with (
        pytest.raises(CastError, match=r"row 3, column 'flag'.*a boolean is not an integer"),
        store.open_writer("run-1", "b", "b", {"flag": "INTEGER"}) as writer,
    ):
        writer.write_batches([pa.record_batch({"flag": pa.array([None, None])}), second])
    with (
        pytest.raises(CastError, match=r"row 1, column 'flag'"),
        store.open_writer("run-1", "b", "b", {"flag": "INTEGER"}) as writer,
    ):
        writer.write_batches([first])


# --- SQL: the sandboxed query runner and describe --------------------------------------


@pytest.fixture
def orders(store: TableStoreResource) -> TableHandle:
    records = [
        {"id": 1, "customer": "c1", "amount": "10.50", "meta": {"vip": True}},
        {"id": 2, "customer": "c2", "amount": 4, "meta": None},
        {"id": 3, "customer": "c1", "amount": "1.25", "meta": {"vip": False}},
    ]
    schema = {"id": "BIGINT", "customer": "VARCHAR", "amount": "DECIMAL(10,2)", "meta": "JSON"}
    return write(store, records, schema, step="orders")


@pytest.fixture
def customers(store: TableStoreResource) -> TableHandle:
    records = [{"id": "c1", "name": "Ann", "uid": str(uuid.UUID(int=1))}, {"id": "c2"}]
    return write(store, records, {"id": "VARCHAR", "name": "VARCHAR", "uid": "UUID"}, "cust")


def run_query(
    store: TableStoreResource, sql: str, inputs: dict[str, TableHandle], params: Any = None
) -> list[dict[str, Any]]:
    with store.query(sql, params, inputs) as reader:
        return reader.read_all().to_pylist()


def test_query_reads_input_views_by_table_name(
    store: TableStoreResource, orders: TableHandle, customers: TableHandle
) -> None:
    sql = """
        WITH totals AS (SELECT customer, SUM(amount) AS total FROM orders GROUP BY customer)
        SELECT c.name, t.total FROM totals t JOIN customers c ON c.id = t.customer ORDER BY 1
    """
    rows = run_query(store, sql, {"orders": orders, "customers": customers})
    assert rows == [{"name": "Ann", "total": Decimal("11.75")}, {"name": None, "total": 4}]


def test_query_binds_named_and_positional_params(
    store: TableStoreResource, orders: TableHandle
) -> None:
    inputs = {"orders": orders}
    named = "SELECT id FROM orders WHERE customer = $c AND amount > $min ORDER BY id"
    assert run_query(store, named, inputs, {"c": "c1", "min": 1}) == [{"id": 1}, {"id": 3}]
    positional = "SELECT id FROM orders WHERE customer = ? ORDER BY id"
    assert run_query(store, positional, inputs, ["c2"]) == [{"id": 2}]
    injection = "c1' OR '1'='1"
    assert (
        run_query(store, "SELECT id FROM orders WHERE customer = $c", inputs, {"c": injection})
        == []
    )
    echoed = run_query(store, "SELECT $c AS v", inputs, {"c": injection})
    assert echoed == [{"v": injection}]


FORBIDDEN_SELECTS = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_parquet('{other}')",
    "SELECT * FROM glob('{root}/*')",
]


@pytest.mark.parametrize("sql", FORBIDDEN_SELECTS)
def test_query_cannot_reach_files(store: TableStoreResource, orders: TableHandle, sql: str) -> None:
    other = write(store, [{"secret": 1}], {"secret": "INTEGER"}, step="other")
    text = sql.format(other=other.path, root=store.root_path())
    with pytest.raises(duckdb.PermissionException, match="disabled by configuration"):
        run_query(store, text, {"orders": orders})
    assert run_query(store, "SELECT count(*) AS n FROM orders", {"orders": orders}) == [{"n": 3}]


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH '{tmp}/x.db' AS x",
        "COPY (SELECT 1) TO '{tmp}/out.csv'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "EXPORT DATABASE '{tmp}/exp'",
        "SET enable_external_access = true",
        "SET allowed_paths = ['/']",
        "RESET lock_configuration",
    ],
)
def test_sandbox_blocks_statements_the_select_check_would_also_refuse(
    tmp_path: Path, orders: TableHandle, sql: str
) -> None:
    target = tmp_path / "target"
    target.mkdir()
    con = open_sandbox({"orders": orders.path}, str(tmp_path / "spill"))
    try:
        with pytest.raises((duckdb.PermissionException, duckdb.InvalidInputException)):
            con.execute(sql.format(tmp=target))
        assert con.execute("SELECT count(*) FROM orders").fetchone() == (3,)
    finally:
        con.close()
    assert list(target.iterdir()) == []


@pytest.mark.parametrize(
    "sql", ["ATTACH 'x.db'", "SELECT 1; SELECT 2", "COPY orders TO 'x.csv'", "PRAGMA version"]
)
def test_query_accepts_only_one_select(
    store: TableStoreResource, orders: TableHandle, sql: str
) -> None:
    with pytest.raises(SqlError, match="expected exactly one SELECT"):
        run_query(store, sql, {"orders": orders})


def test_query_result_is_streamed_in_batches(store: TableStoreResource) -> None:
    with store.query("SELECT range AS i FROM range(25000)", None, {}) as reader:
        sizes = [batch.num_rows for batch in reader]
    assert sum(sizes) == 25_000 and max(sizes) <= 10_000 and len(sizes) >= 3


def test_query_into_writer_keeps_json_uuid_and_types(
    store: TableStoreResource, orders: TableHandle, customers: TableHandle
) -> None:
    sql = """SELECT o.id, o.meta, c.uid, SUM(o.amount) OVER () AS total, now() AS at
             FROM orders o LEFT JOIN customers c ON c.id = o.customer ORDER BY o.id"""
    inputs = {"orders": orders, "customers": customers}
    with store.query(sql, None, inputs) as reader, store.open_writer("run-1", "j", "j", None) as w:
        w.write_batches(reader)
    assert w.handle is not None and w.handle.row_count == 3
    expected = store.describe(sql, {"orders": orders.columns, "customers": customers.columns})
    assert w.handle.columns == expected == duck_types(w.handle.path)
    assert expected["meta"] == "JSON" and expected["uid"] == "UUID"
    rows = run_query(store, "SELECT meta->>'vip' AS vip, uid FROM j", {"j": w.handle})
    assert rows[0] == {"vip": "true", "uid": uuid.UUID(int=1)}


def test_describe_returns_columns_and_types() -> None:
    schemas = {
        "orders": {"id": "BIGINT", "amount": "DECIMAL(10,2)", "at": "TIMESTAMPTZ"},
        "customers": {"id": "BIGINT", "name": "VARCHAR"},
    }
    sql = """SELECT c.name, count(*) AS n, sum(o.id) AS ids, max(o.at) AS last,
                    avg(o.amount) AS mean, $since AS since, $flag AS flag
             FROM orders o JOIN customers c ON c.id = o.id WHERE o.at > $since GROUP BY 1"""
    described = describe_query(sql, schemas, {"since": dt.date(2024, 1, 1)})
    assert described == {
        "name": "VARCHAR", "n": "BIGINT", "ids": "DECIMAL(38,0)",
        "last": "TIMESTAMP WITH TIME ZONE", "mean": "DOUBLE", "since": "DATE", "flag": "NULL",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("sql", "fragments"),
    [
        ("SELECT nme FROM customers", ['column "nme" not found', '"name"']),
        ("SELECT * FROM custmers", ["custmers does not exist", "customers"]),
        ("SELECT * FROM read_csv('/etc/passwd')", ["/etc/passwd", "disabled"]),
        ("SELEC 1", ["syntax error"]),
        ("DELETE FROM customers", ["expected exactly one SELECT"]),
    ],
)
def test_describe_errors_name_the_problem(sql: str, fragments: list[str]) -> None:
    with pytest.raises(SqlError) as info:
        describe_query(sql, {"customers": {"id": "BIGINT", "name": "VARCHAR"}})
    for fragment in fragments:
        assert fragment in str(info.value)


def test_describe_is_fast_and_leaves_no_tables_behind() -> None:
    import time

    schemas = {"t": {"a": "INTEGER", "b": "JSON"}}
    describe_query("SELECT 1", schemas)  # warm the per-thread connection
    start = time.perf_counter()
    for _ in range(50):
        assert describe_query("SELECT a, b FROM t WHERE a > ?", schemas) == {
            "a": "INTEGER",
            "b": "JSON",
        }
    assert (time.perf_counter() - start) / 50 < 0.02
    with pytest.raises(SqlError, match="does not exist"):
        describe_query("SELECT * FROM t", {})


def test_describe_cannot_read_the_default_spill_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SqlError, match="disabled by configuration"):
        describe_query("SELECT * FROM read_csv('.tmp/x.csv')", {})


def test_find_parameters_ignores_string_literals() -> None:
    sql = "SELECT $a, $1, '$not ?', $a FROM t WHERE x = ? AND y = $name"
    assert find_parameters(sql) == (["a", "1", "name"], 1)


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("int", "INTEGER"), ("INT8", "BIGINT"), ("text", "VARCHAR"), ("VARCHAR(20)", "VARCHAR"),
        ("real", "FLOAT"), ("float8", "DOUBLE"), ("bool", "BOOLEAN"), ("timestamptz", TSTZ),
        ("timestamp with time zone", TSTZ), ("datetime", "TIMESTAMP"), ("json", "JSON"),
        ("numeric(12, 4)", "DECIMAL(12,4)"), ("DECIMAL", "DECIMAL(18,3)"),
        ("decimal(5)", "DECIMAL(5,0)"), ("uuid", "UUID"), ("bytea", "BLOB"),
    ],
)  # fmt: skip
def test_normalize_type(given: str, canonical: str) -> None:
    assert normalize_type(given) == canonical


@pytest.mark.parametrize(
    "bad", ["FOOBAR", "INTEGER[]", "STRUCT(a INT)", "DECIMAL(40,2)", "DECIMAL(5,6)", "INT(5)", ""]
)
def test_normalize_type_rejects_unsupported(bad: str) -> None:
    with pytest.raises(ValueError, match="unsupported column type"):
        normalize_type(bad)


def test_write_batches_rescales_decimals_only_when_lossless(store: TableStoreResource) -> None:
    money = pa.array([Decimal("1.5"), Decimal("2.25")], pa.decimal128(10, 2))
    batch = pa.record_batch({"price": money, "ratio": pa.array([0.5, 1.0], pa.float32())})
    schema = {"price": "DECIMAL(12,4)", "ratio": "DOUBLE"}
    with store.open_writer("run-1", "d", "d", schema) as writer:
        writer.write_batches([batch])
    assert writer.handle is not None
    assert [r["price"] for r in store.iter_rows(writer.handle)] == [Decimal("1.5"), Decimal("2.25")]
    with (
        pytest.raises(CastError, match=r"row 2, column 'price'.*more than 1 decimal places"),
        store.open_writer("run-1", "d", "d", {"price": "DECIMAL(10,1)"}) as writer,
    ):
        writer.write_batches([batch])
