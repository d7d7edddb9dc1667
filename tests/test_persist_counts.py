"""Exact inserted / updated / deleted / skipped counts of a persist (issue 9, scope 1).

On SQLite and the real PostgreSQL: every mode, half-update upserts, replaceAll with
deletions, skipped bad rows, keys repeated inside and across merge groups (PostgreSQL),
the counts kept on the exactly-once marker and reported again as `recorded`, and a marker
table of an older version that gains the count columns.
"""

from __future__ import annotations

import uuid
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy.engine import make_url

import resources.persist_sql as persist_sql
from resources.app_database import (
    AppDatabaseError,
    AppDatabaseResource,
    PersistRequest,
    PersistResult,
)
from resources.persist_markers import MARKER_TABLE
from resources.persist_request import PersistCounts
from tests.support.app_tables import execute, rows

APP = "counts"
ITEMS = "CREATE TABLE items (sku VARCHAR(20) PRIMARY KEY, qty INTEGER NOT NULL, note TEXT)"
EVENTS = "CREATE TABLE events (id INTEGER, org TEXT, note TEXT)"
UPSERT = PersistRequest("items", "upsert", upsert_key=["sku"])
SCHEMA = pa.schema([("sku", pa.string()), ("qty", pa.int64())])


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def app_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    url = request.getfixturevalue("sqlite_app_url" if request.param == "sqlite" else "pg_app_url")
    monkeypatch.setenv("APP_DB_URL", url)
    execute(url, ITEMS, EVENTS)
    return url


def items(*pairs: tuple[Any, Any]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([{"sku": s, "qty": q} for s, q in pairs], schema=SCHEMA)


def persist(
    request: PersistRequest, *batches: pa.RecordBatch, lineage: str = "r1", step: str = "s"
) -> PersistResult:
    return AppDatabaseResource().persist(APP, request, list(batches), lineage=lineage, step=step)


def counts(result: PersistResult) -> tuple[int, int, int, int, int]:
    """(inserted, updated, deleted, skipped, written) of one call."""
    return (
        result.rows_inserted,
        result.rows_updated,
        result.rows_deleted,
        result.rows_skipped,
        result.rows_written,
    )


def test_append_counts_every_row_as_inserted(app_url: str) -> None:
    source = pa.RecordBatch.from_pylist([{"id": i, "org": "a", "note": None} for i in range(5)])
    result = persist(PersistRequest("events", "append"), source, source)
    assert counts(result) == (10, 0, 0, 0, 10)


def test_half_update_upsert_splits_inserted_and_updated(app_url: str) -> None:
    execute(app_url, "INSERT INTO items VALUES ('a', 1, 'old'), ('b', 2, 'old'), ('z', 9, 'keep')")
    result = persist(UPSERT, items(("a", 10), ("b", 20)), items(("c", 30), ("d", 40)))
    assert counts(result) == (2, 2, 0, 0, 4)
    again = persist(UPSERT, items(("a", 11), ("e", 50)), lineage="r2")
    assert counts(again) == (1, 1, 0, 0, 2)
    assert rows(app_url, "SELECT count(*) FROM items") == [(6,)]


def test_upsert_of_key_columns_only_counts_new_keys(app_url: str) -> None:
    """Only the key mapped: DO NOTHING, an existing key is neither inserted nor updated."""
    execute(app_url, "CREATE TABLE tags (tag TEXT PRIMARY KEY)", "INSERT INTO tags VALUES ('a')")
    source = pa.RecordBatch.from_pylist([{"tag": "a"}, {"tag": "b"}, {"tag": "c"}])
    result = persist(PersistRequest("tags", "upsert", upsert_key=["tag"]), source)
    assert counts(result) == (2, 0, 0, 0, 2)


def test_replace_all_counts_the_deleted_rows(app_url: str) -> None:
    execute(
        app_url,
        "INSERT INTO events VALUES (1, 'a', 'old'), (2, 'a', 'old'), (3, 'b', 'old'),"
        " (4, 'c', 'keep'), (5, NULL, 'keep')",
    )
    request = PersistRequest("events", "replaceAll", match_columns=["org"])
    source = pa.RecordBatch.from_pylist(
        [{"id": 10 + i, "org": org, "note": "new"} for i, org in enumerate("aabd")]
    )
    result = persist(request, source)
    assert counts(result) == (4, 0, 3, 0, 4)
    assert rows(app_url, "SELECT count(*) FROM events") == [(6,)]


def test_skipped_rows_are_neither_inserted_nor_updated(app_url: str) -> None:
    execute(app_url, "INSERT INTO items VALUES ('a', 1, 'old'), ('b', 2, 'old')")
    request = PersistRequest("items", "upsert", upsert_key=["sku"], on_row_error="skip")
    # Row 2 updates 'b' with a NULL qty (NOT NULL), row 4 has a NULL key, row 5 is new with a
    # NULL qty: three bad rows; 'a' is updated, 'c' and 'd' are inserted.
    source = items(("a", 10), ("b", None), ("c", 30), (None, 1), ("e", None), ("d", 40))
    result = persist(request, source)
    assert counts(result) == (2, 1, 0, 3, 3)
    assert [e.split(":")[0] for e in result.errors] == ["row 2", "row 4", "row 5"]
    append = PersistRequest("items", "append", on_row_error="skip")
    appended = persist(append, items(("a", 1), ("x", 1), ("y", None)), lineage="r2")
    assert counts(appended) == (1, 0, 0, 2, 1)


def test_a_key_repeated_in_the_source_counts_once_per_applied_row(app_url: str) -> None:
    """SQLite applies every row of a repeated key (the first inserts, the next update it);
    PostgreSQL applies only its last row within a merge group."""
    execute(app_url, "INSERT INTO items VALUES ('a', 1, 'old')")
    result = persist(UPSERT, items(("a", 2), ("n", 1), ("a", 3), ("n", 2), ("m", 1)))
    sqlite = app_url.startswith("sqlite")
    assert counts(result) == ((2, 3, 0, 0, 5) if sqlite else (2, 1, 0, 0, 3))
    assert rows(app_url, "SELECT sku, qty FROM items ORDER BY sku") == [
        ("a", 3),
        ("m", 1),
        ("n", 2),
    ]


def test_the_marker_keeps_the_counts_and_a_second_call_reports_them_as_recorded(
    app_url: str,
) -> None:
    execute(app_url, "INSERT INTO items VALUES ('a', 1, 'old')")
    request = PersistRequest("items", "upsert", upsert_key=["sku"], on_row_error="skip")
    first = persist(request, items(("a", 2), ("b", None), ("c", 3)))
    assert counts(first) == (1, 1, 0, 1, 2)
    assert first.recorded == PersistCounts(inserted=1, updated=1, deleted=0, skipped=1)
    again = persist(request, items(("a", 5), ("d", 5)))
    # This call wrote nothing: its own counts are 0; what the first call did is `recorded`.
    assert again.already_done and counts(again) == (0, 0, 0, 0, 0)
    assert again.recorded == first.recorded
    marker = (
        "SELECT rows_written, rows_inserted, rows_updated, rows_deleted, rows_skipped"
        f" FROM {MARKER_TABLE}"
    )
    assert rows(app_url, marker) == [(2, 1, 1, 0, 1)]


def test_an_older_marker_table_gains_the_count_columns(app_url: str) -> None:
    execute(
        app_url,
        f"CREATE TABLE {MARKER_TABLE} (lineage TEXT NOT NULL, step TEXT NOT NULL,"
        " rows_written BIGINT NOT NULL, committed_at TIMESTAMP NOT NULL,"
        " PRIMARY KEY (lineage, step))",
        f"INSERT INTO {MARKER_TABLE} VALUES ('old-run', 's', 7, CURRENT_TIMESTAMP)",
    )
    old = persist(UPSERT, items(("a", 1)), lineage="old-run")
    assert old.already_done and old.recorded is None  # written before counts were kept
    new = persist(UPSERT, items(("a", 1), ("b", 2)), lineage="new-run")
    assert counts(new) == (2, 0, 0, 0, 2)
    query = f"SELECT lineage, rows_inserted, rows_skipped FROM {MARKER_TABLE} ORDER BY lineage"
    assert rows(app_url, query) == [("new-run", 2, 0), ("old-run", None, None)]


# --- PostgreSQL only: merge groups, direct COPY ----------------------------------------


@pytest.mark.postgres
def test_keys_repeated_across_merge_groups_are_updated_by_the_later_group(
    pg_app_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row inserted by an earlier group of the same transaction, updated by a later one,
    and keys repeated inside a group (deduplicated: the last row wins)."""
    monkeypatch.setenv("APP_DB_URL", pg_app_url)
    execute(pg_app_url, ITEMS, "INSERT INTO items VALUES ('k0', 0, 'old'), ('k5', 0, 'old')")
    monkeypatch.setattr(persist_sql, "CHUNK_ROWS", 4)
    monkeypatch.setattr(persist_sql, "MERGE_ROWS", 8)
    # Groups: rows 1-8 and 9-16 (then 17-18). 'k1' is new in group 1 and again in group 2;
    # 'k2' twice in group 2; 'k0' and 'k5' exist.
    skus = ["k0", "k1", "k2", "k3", "k4", "k6", "k7", "k8"]
    skus += ["k1", "k2", "k2", "k5", "k9", "k10", "k11", "k12", "k0", "k13"]
    source = items(*[(s, i) for i, s in enumerate(skus)])
    result = persist(UPSERT, source)
    # group 1: k0 updated, 7 inserted; group 2: k1 and k2 (inserted by group 1) and k5
    # updated, k9..k12 inserted; group 3: k0 updated, k13 inserted.
    assert counts(result) == (12, 5, 0, 0, 17)
    assert rows(pg_app_url, "SELECT count(*) FROM items") == [(14,)]


@pytest.mark.postgres
def test_a_large_half_update_upsert_through_binary_copy(
    pg_app_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_DB_URL", pg_app_url)
    execute(
        pg_app_url,
        ITEMS,
        "INSERT INTO items (sku, qty) SELECT 'k' || lpad(g::text, 6, '0'), 0"
        " FROM generate_series(0, 119999, 2) g",
    )
    n = 120_000  # three merge groups
    skus = pa.array([f"k{i:06}" for i in range(n)])
    source = pa.RecordBatch.from_arrays([skus, pa.array([1] * n, pa.int64())], schema=SCHEMA)
    result = persist(UPSERT, source)
    assert counts(result) == (n // 2, n // 2, 0, 0, n)


@pytest.mark.postgres
def test_direct_copy_append_counts_inserted(
    pg_app_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_DB_URL", pg_app_url)
    execute(pg_app_url, ITEMS)
    monkeypatch.setattr(persist_sql, "CHUNK_ROWS", 3)
    result = persist(PersistRequest("items", "append"), items(*[(f"k{i}", i) for i in range(8)]))
    assert counts(result) == (8, 0, 0, 0, 8)


@pytest.mark.postgres
def test_a_marker_table_the_app_cannot_alter_is_a_clear_error(
    pg_app_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older marker table owned by another role: the app's role cannot add the count
    columns; the error says which and what to run, and nothing is written."""
    role = f"app_{uuid.uuid4().hex[:8]}"
    execute(
        pg_app_url,
        ITEMS,
        f"CREATE ROLE {role} LOGIN",
        f"CREATE TABLE {MARKER_TABLE} (lineage TEXT, step TEXT, rows_written BIGINT NOT NULL,"
        " committed_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (lineage, step))",
        f"GRANT SELECT, INSERT, UPDATE ON {MARKER_TABLE}, items TO {role}",
    )
    try:
        monkeypatch.setenv(
            "APP_DB_URL",
            make_url(pg_app_url).set(username=role).render_as_string(hide_password=False),
        )
        with pytest.raises(AppDatabaseError, match=r"cannot add the column rows_inserted .*owner"):
            persist(UPSERT, items(("a", 1)))
        assert rows(pg_app_url, "SELECT count(*) FROM items") == [(0,)]
    finally:
        execute(pg_app_url, f"DROP OWNED BY {role}", f"DROP ROLE {role}")
