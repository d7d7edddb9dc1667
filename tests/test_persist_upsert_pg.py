"""The PostgreSQL upsert path: binary COPY into the stage, merges in groups, read-ahead.

Every value type the binary encoder knows goes in as the CSV path would store it; a value
that does not fit falls back to CSV so that the server names the row; a key repeated
across merge groups still ends with its last row; errors of the reading thread reach the
caller and no reading thread outlives the write.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

import resources.persist_sql as persist_sql
from resources.app_database import AppDatabaseError, AppDatabaseResource, PersistRequest
from tests.support.app_tables import execute, rows

pytestmark = pytest.mark.postgres

APP = "shop"
KINDS = (
    "CREATE TABLE kinds (id VARCHAR(20) PRIMARY KEY, i2 SMALLINT, i4 INTEGER, i8 BIGINT,"
    " f4 REAL, f8 DOUBLE PRECISION, b BOOLEAN, t TEXT, c CHAR(3), ts TIMESTAMP,"
    " tz TIMESTAMPTZ, d DATE)"
)
UTC = dt.UTC
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("i2", pa.int64()),
        ("i4", pa.int32()),
        ("i8", pa.int64()),
        ("f4", pa.float32()),
        ("f8", pa.float64()),
        ("b", pa.bool_()),
        ("t", pa.string()),
        ("c", pa.dictionary(pa.int8(), pa.string())),
        ("ts", pa.timestamp("ns")),
        ("tz", pa.timestamp("us", "UTC")),
        ("d", pa.date32()),
    ]
)
FULL = {
    "id": "a",
    "i2": -7,
    "i4": 2_000_000_000,
    "i8": -(2**62),
    "f4": 1.5,
    "f8": -2.25,
    "b": True,
    "t": 'héllo, "quoted"\n\\ and\ttab',
    "c": "xy",
    "ts": dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
    "tz": dt.datetime(1960, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    "d": dt.date(1900, 3, 1),
}
EMPTY = {"id": "b", **{k: None for k in FULL if k != "id"}, "t": ""}


@pytest.fixture
def pg_app(pg_app_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("APP_DB_URL", pg_app_url)
    execute(pg_app_url, KINDS, "CREATE TABLE nums (id BIGINT PRIMARY KEY, n BIGINT)")
    return pg_app_url


def upsert(table: str, batches: Any, lineage: str = "r1", skip: bool = False) -> Any:
    request = PersistRequest(
        table, "upsert", upsert_key=["id"], on_row_error="skip" if skip else "fail"
    )
    return AppDatabaseResource().persist(APP, request, batches, lineage=lineage, step="s")


def test_every_encoded_type_is_stored_as_given(
    pg_app: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="resources.persist_sql")
    source = pa.RecordBatch.from_pylist([FULL, EMPTY], schema=SCHEMA)
    assert upsert("kinds", [source]).rows_written == 2
    assert "via COPY (2 binary, 0 csv)" in caplog.text
    got = rows(pg_app, "SELECT * FROM kinds ORDER BY id")
    expected_full = {**FULL, "c": "xy ", "tz": FULL["tz"]}
    assert dict(zip(FULL, got[0], strict=True)) == expected_full
    assert got[1] == ("b", *([None] * 6), "", None, None, None, None)


def test_a_value_that_does_not_fit_goes_through_csv_and_names_its_row(
    pg_app: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="resources.persist_sql")
    records = [{**FULL, "id": f"k{i}"} for i in range(5)]
    records[3]["i2"] = 70_000  # an int64 that SMALLINT cannot hold
    source = pa.RecordBatch.from_pylist(records, schema=SCHEMA)
    with pytest.raises(AppDatabaseError, match=r"at source row 4: .*smallint"):
        upsert("kinds", [source])
    assert rows(pg_app, "SELECT count(*) FROM kinds") == [(0,)]
    result = upsert("kinds", [source], lineage="r2", skip=True)
    assert (result.rows_written, result.rows_skipped) == (4, 1)
    assert "binary" in caplog.text and "csv)" in caplog.text


def test_a_key_repeated_in_a_later_merge_group_ends_with_its_last_row(
    pg_app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(persist_sql, "CHUNK_ROWS", 4)
    monkeypatch.setattr(persist_sql, "MERGE_ROWS", 8)
    ids = [1, 2, 3, 1, 4, 5, 6, 7, 2, 8, 9, 2, 10]  # 2 repeats inside a group and across
    source = pa.RecordBatch.from_pydict({"id": ids, "n": list(range(len(ids)))})
    upsert("nums", [source])
    got = dict(rows(pg_app, "SELECT id, n FROM nums"))
    assert got == {1: 3, 2: 11, 3: 2, 4: 4, 5: 5, 6: 6, 7: 7, 8: 9, 9: 10, 10: 12}


def test_a_null_key_in_a_later_group_is_a_row_error(
    pg_app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(persist_sql, "CHUNK_ROWS", 2)
    monkeypatch.setattr(persist_sql, "MERGE_ROWS", 4)
    source = pa.RecordBatch.from_pydict({"id": [1, 2, 3, 4, 5, None, 7], "n": [0] * 7})
    result = upsert("nums", [source], skip=True)
    assert (result.rows_written, result.rows_skipped) == (6, 1)
    assert result.errors[0].startswith("row 6: upsertKey column 'id' is NULL")


def _reading_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "persist-prefetch"]


def test_an_error_while_reading_the_source_reaches_the_caller(pg_app: str) -> None:
    def source() -> Iterator[pa.RecordBatch]:
        yield pa.RecordBatch.from_pydict({"id": [1, 2], "n": [1, 2]})
        raise OSError("the table store file vanished")

    with pytest.raises(OSError, match="vanished"):
        upsert("nums", source())
    assert rows(pg_app, "SELECT count(*) FROM nums") == [(0,)]
    assert _reading_threads() == []


def test_a_failing_write_stops_the_reading_thread(
    pg_app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(persist_sql, "CHUNK_ROWS", 2)
    monkeypatch.setattr(persist_sql, "MERGE_ROWS", 2)
    closed = threading.Event()

    def source() -> Iterator[pa.RecordBatch]:
        try:
            yield pa.RecordBatch.from_pydict({"id": [1, None], "n": [1, 2]})
            for start in range(10, 10_000, 2):  # far more than the read-ahead holds
                yield pa.RecordBatch.from_pydict({"id": [start, start + 1], "n": [0, 0]})
        finally:
            closed.set()

    with pytest.raises(AppDatabaseError, match=r"row 2: upsertKey column 'id' is NULL"):
        upsert("nums", source())
    assert closed.is_set()
    assert _reading_threads() == []
    assert rows(pg_app, "SELECT count(*) FROM nums") == [(0,)]
