"""Persist safety on real databases (issue 6, points 7 and 9).

- A target table named like the internal staging table gets its rows, and a retry of the
  same step does not write twice; the marker table is refused as a target.
- Upsert rows with a NULL key are row errors (`fail` rolls back, `skip` skips them).
- An SQLite app database deleted (or replaced) during a persist ends in an error.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from resources.app_database import AppDatabaseError, AppDatabaseResource, PersistRequest
from resources.persist_markers import MARKER_TABLE, stage_table_name
from tests.support.app_tables import execute, rows
from tests.support.jobs import load, run_job, write_defs

APP = "safe"
ITEMS = "CREATE TABLE {name} (sku VARCHAR(20) PRIMARY KEY, qty INTEGER)"
# A nullable unique key: NULL never conflicts, so each run would insert the row again.
LOOSE = "CREATE TABLE loose (code VARCHAR(20), part INTEGER, qty INTEGER, UNIQUE (code, part))"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def app_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    url = request.getfixturevalue("sqlite_app_url" if request.param == "sqlite" else "pg_app_url")
    monkeypatch.setenv("APP_DB_URL", url)
    return url


@pytest.fixture
def db() -> AppDatabaseResource:
    return AppDatabaseResource()


def items(*pairs: tuple[Any, Any]) -> pa.RecordBatch:
    schema = pa.schema([("sku", pa.string()), ("qty", pa.int64())])
    return pa.RecordBatch.from_pylist([{"sku": s, "qty": q} for s, q in pairs], schema=schema)


# --- 7: internal names ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["append", "upsert", "replaceAll"])
@pytest.mark.parametrize("table", ["_wf_stage", "stage_of_this_step"])
def test_a_table_named_like_the_staging_table_gets_its_rows(
    app_url: str, db: AppDatabaseResource, mode: str, table: str
) -> None:
    if table == "stage_of_this_step":  # exactly the name this run and step stage into
        table = stage_table_name("run-1", "persist")
    execute(app_url, ITEMS.format(name=f'"{table}"'))
    request = PersistRequest(
        table,
        mode,  # type: ignore[arg-type]
        upsert_key=["sku"] if mode == "upsert" else None,
        match_columns=["sku"] if mode == "replaceAll" else None,
    )
    source = items(("a", 1), ("b", 2))
    first = db.persist(APP, request, [source], lineage="run-1", step="persist")
    assert first.rows_written == 2
    assert rows(app_url, f'SELECT sku, qty FROM "{table}" ORDER BY sku') == [("a", 1), ("b", 2)]

    retry = db.persist(APP, request, [source], lineage="run-1", step="persist")
    assert retry.already_done and retry.rows_written == 0
    assert rows(app_url, f'SELECT count(*) FROM "{table}"') == [(2,)]


def test_stage_names_differ_per_run_and_step() -> None:
    names = {stage_table_name(r, s) for r in ("r1", "r2") for s in ("a", "b")}
    assert len(names) == 4
    assert all(n.startswith("_wf_stage_") and len(n) < 64 for n in names)


def test_the_marker_table_is_refused_as_a_target(app_url: str, db: AppDatabaseResource) -> None:
    execute(app_url, ITEMS.format(name="items"))
    db.persist(APP, PersistRequest("items", "append"), [items(("a", 1))], lineage="r", step="s")
    with pytest.raises(AppDatabaseError, match=f"{MARKER_TABLE}.*reserved"):
        PersistRequest(MARKER_TABLE, "append")
    assert rows(app_url, f"SELECT count(*) FROM {MARKER_TABLE}") == [(1,)]


# --- 9: NULL upsert keys ----------------------------------------------------------------


def loose_rows(*records: tuple[Any, Any, Any]) -> pa.RecordBatch:
    schema = pa.schema([("code", pa.string()), ("part", pa.int64()), ("qty", pa.int64())])
    keys = ("code", "part", "qty")
    return pa.RecordBatch.from_pylist([dict(zip(keys, r, strict=True)) for r in records], schema)


LOOSE_UPSERT = PersistRequest("loose", "upsert", upsert_key=["code", "part"])


def test_a_null_upsert_key_fails_the_write(app_url: str, db: AppDatabaseResource) -> None:
    execute(app_url, LOOSE)
    source = loose_rows(("a", 1, 1), ("b", None, 2), ("c", 3, 3))
    with pytest.raises(AppDatabaseError) as caught:
        db.persist(APP, LOOSE_UPSERT, [source], lineage="r1", step="s")
    message = str(caught.value)
    assert "row 2" in message and "'part'" in message and "NULL" in message
    assert "nothing was written" in message
    assert rows(app_url, "SELECT count(*) FROM loose") == [(0,)]


def test_null_upsert_keys_are_skipped_and_reported(app_url: str, db: AppDatabaseResource) -> None:
    execute(app_url, LOOSE)
    request = PersistRequest("loose", "upsert", upsert_key=["code", "part"], on_row_error="skip")
    source = loose_rows(("a", 1, 1), (None, 2, 2), ("c", 3, 3), (None, None, 4))
    for lineage in ("r1", "r2"):  # a second run must not add the NULL-key rows again
        result = db.persist(APP, request, [source], lineage=lineage, step="s")
        assert (result.rows_written, result.rows_skipped) == (2, 2)
        assert result.errors[0].startswith("row 2: upsertKey column 'code' is NULL")
        assert result.errors[1].startswith("row 4: upsertKey column")
    assert rows(app_url, "SELECT code, part, qty FROM loose ORDER BY code") == [
        ("a", 1, 1),
        ("c", 3, 3),
    ]


# --- 9: a deleted SQLite file -----------------------------------------------------------


@pytest.fixture
def sqlite_items(sqlite_app_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("APP_DB_URL", sqlite_app_url)
    execute(sqlite_app_url, ITEMS.format(name="items"))
    path = make_url(sqlite_app_url).database
    assert path
    return Path(path)


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@pytest.mark.parametrize("replace", [False, True], ids=["deleted", "replaced"])
def test_sqlite_file_deleted_during_a_persist_is_an_error(
    sqlite_items: Path, db: AppDatabaseResource, replace: bool
) -> None:
    def batches() -> Iterator[pa.RecordBatch]:
        yield items(("a", 1))
        remove_database(sqlite_items)  # while the write transaction is open
        if replace:
            execute(f"sqlite:///{sqlite_items}", ITEMS.format(name="items"))
        yield items(("b", 2))

    request = PersistRequest("items", "append")
    with pytest.raises(AppDatabaseError, match="deleted or replaced"):
        db.persist(APP, request, batches(), lineage="r1", step="s")
    if replace:
        assert rows(f"sqlite:///{sqlite_items}", "SELECT count(*) FROM items") == [(0,)]


def test_sqlite_file_deleted_just_before_the_commit_is_an_error(
    sqlite_items: Path, db: AppDatabaseResource
) -> None:
    armed = threading.Event()

    def batches() -> Iterator[pa.RecordBatch]:
        yield items(("a", 1))
        armed.set()  # the next commit is the write's own

    def delete_at_commit(_conn: Any) -> None:
        # SQLAlchemy's commit event runs after our last check and before sqlite3 commits.
        if armed.is_set():
            armed.clear()
            remove_database(sqlite_items)

    sa.event.listen(sa.engine.Engine, "commit", delete_at_commit)
    try:
        with pytest.raises(AppDatabaseError, match=r"deleted or replaced.*1 row.*old file"):
            db.persist(APP, PersistRequest("items", "append"), batches(), lineage="r", step="s")
    finally:
        sa.event.remove(sa.engine.Engine, "commit", delete_at_commit)
    assert not sqlite_items.exists()


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path, db: AppDatabaseResource) -> None:
    path = tmp_path / "data" / "apps" / f"{APP}.sqlite"
    with pytest.raises(AppDatabaseError, match="does not exist"):
        db.persist(APP, PersistRequest("items", "append"), [items(("a", 1))], lineage="r", step="s")
    with pytest.raises(AppDatabaseError, match="does not exist"):
        db.table_info(APP, "items")
    assert not path.exists()


# --- end to end through Dagster ---------------------------------------------------------


def persist_step(table: str, source: str, **extra: Any) -> dict:
    return {
        "id": f"to_{table.strip('_')}",
        "persistToDatabase": {
            "appId": APP,
            "tableName": table,
            "sourceTable": source,
            "fieldMapping": {"sku": "sku", "qty": "qty"},
            **extra,
        },
    }


SOURCE_SQL = (
    "SELECT CASE WHEN range = 2 THEN NULL ELSE 'k' || range END AS sku,"
    " CAST(range AS INTEGER) AS qty FROM range({{var.n}})"
)
WORKFLOW = {
    "variables": {"n": {"type": "param", "default": 5}},
    "settings": {"maxParallelSteps": 1},
    "steps": [
        {"sql": SOURCE_SQL, "outputTable": "source"},
        persist_step("_wf_stage", "source", mode="append", onRowError="skip"),
        persist_step("keyed", "source", mode="upsert", upsertKey=["sku"], onRowError="skip"),
    ],
}
KEYED = "CREATE TABLE keyed (sku VARCHAR(20), qty INTEGER, UNIQUE (sku))"


def step_metadata(result: Any, step: str) -> dict[str, Any]:
    output = next(
        e for e in result.all_events if e.event_type_value == "STEP_OUTPUT" and e.step_key == step
    )
    return {k: v.value for k, v in output.step_output_data.metadata.items()}


def test_dagster_job_writes_the_stage_named_table_and_skips_null_keys(
    tmp_path: Path, app_url: str
) -> None:
    execute(app_url, 'CREATE TABLE "_wf_stage" (sku VARCHAR(20), qty INTEGER)', KEYED)
    defs = load(write_defs(tmp_path / "defs", APP, {"sync": WORKFLOW}))[1]
    for run in (1, 2):
        result = run_job(defs, f"{APP}__sync")
        assert result.success
        assert step_metadata(result, "to_wf_stage")["rows written"] == 5
        keyed = step_metadata(result, "to_keyed")
        assert (keyed["rows written"], keyed["rows skipped"]) == (4, 1)
        assert keyed["row errors"][0].startswith("row 3: upsertKey column 'sku' is NULL")
        assert rows(app_url, 'SELECT count(*) FROM "_wf_stage"') == [(5 * run,)]
    assert rows(app_url, "SELECT count(*), count(sku) FROM keyed") == [(4, 4)]


def test_dagster_job_fails_when_the_sqlite_file_is_deleted_mid_persist(
    tmp_path: Path, sqlite_app_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_DB_URL", sqlite_app_url)
    execute(sqlite_app_url, 'CREATE TABLE "_wf_stage" (sku VARCHAR(20), qty INTEGER)', KEYED)
    path = Path(make_url(sqlite_app_url).database or "")
    workflow = {**WORKFLOW, "steps": WORKFLOW["steps"][:2]}
    defs = load(write_defs(tmp_path / "defs", APP, {"sync": workflow}))[1]
    deleted = threading.Event()
    stop = threading.Event()

    def delete_once_the_persist_has_begun() -> None:
        # The persist creates its marker table first (own transaction), then writes.
        while not stop.is_set():
            try:
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as probe:
                    found = probe.execute(
                        "SELECT 1 FROM sqlite_master WHERE name = ?", (MARKER_TABLE,)
                    ).fetchone()
                probe.close()
            except sqlite3.Error:
                found = None
            if found:
                remove_database(path)
                deleted.set()
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=delete_once_the_persist_has_begun, daemon=True)
    watcher.start()
    try:
        result = run_job(defs, f"{APP}__sync", {"n": 200_000}, raise_on_error=False)
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert deleted.is_set()
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "deleted or replaced" in str(failure.step_failure_data.error)
    assert not os.path.exists(path), "a deleted database is not silently recreated"
