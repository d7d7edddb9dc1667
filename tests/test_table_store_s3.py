"""The table store on S3-compatible object storage (issue 10, SPEC 5.6): with
`TABLE_STORE_ROOT=s3://bucket/prefix` a workflow's tables and checkpoints are objects in
the bucket (a real moto server process on 127.0.0.1), its SQL reads them through Arrow
(no DuckDB extension), and a re-execution from failure resumes from the checkpoint there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest

from resources.checkpoints import StepCheckpoint
from resources.object_store import ObjectStoreError, s3_filesystem
from resources.secrets import redact
from resources.table_store import SqlError, TableStoreResource
from tests.support.app_tables import execute, rows
from tests.support.http_server import LocalHTTPServer
from tests.support.local_service import (
    FRAGILE_PAGES,
    local_service,
    one_at_a_time,
    pages_asked,
    serving,
    write_service_defs,
)
from tests.support.s3 import SECRET_KEY, S3Store
from translators.housekeeping import OBJECT_STORAGE_SKIP, housekeeping_sensor
from translators.job_builder import TABLE_STORE_KEY
from translators.run_creation import reconstructable
from translators.schedules import run_config_for

pytestmark = [pytest.mark.integration, pytest.mark.scaleout]

SCHEMA = {"id": "INTEGER", "name": "VARCHAR"}
PAGES = {
    "id": "pages",
    "service": "local",
    "operation": "fragile",
    "params": {"per_page": 5, "id": "s3"},
    "paginate": {"type": "pageNumber", "pageParam": "page"},
    "dataPath": "results",
    "outputTable": "records",
    "outputSchema": SCHEMA,
}
EVENS = {
    "sql": "SELECT id, upper(name) AS name FROM records WHERE id % 2 = 0",
    "outputTable": "evens",
}
PERSIST = {
    "id": "persist",
    "persistToDatabase": {
        "appId": "app",
        "tableName": "evens",
        "sourceTable": "evens",
        "mode": "append",
        "fieldMapping": {"id": "id", "name": "name"},
    },
}


LOCAL = local_service({"fragile": {"path": FRAGILE_PAGES}})


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHTTPServer]:
    with serving(monkeypatch, total_records=23) as srv:
        yield srv


@pytest.fixture
def defs_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    def build(stem: str, *steps: dict) -> Path:
        workflows = {stem: one_at_a_time(*steps)}
        return write_service_defs(tmp_path / "defs", workflows, LOCAL, monkeypatch=monkeypatch)

    return build


def recon(stem: str) -> dg.ReconstructableJob:
    return reconstructable(f"app__{stem}")


def table_ids(result: dg.ExecutionResult, step: str) -> list[int]:
    handle = result.output_for_node(step)
    assert handle.path.startswith("s3://"), handle.path
    return [row["id"] for row in TableStoreResource().iter_rows(handle)]


def test_a_workflow_keeps_its_tables_in_the_bucket(
    defs_with,
    server: LocalHTTPServer,
    s3_store: S3Store,
    sqlite_app_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("APP_DB_URL", sqlite_app_url)
    execute(sqlite_app_url, "CREATE TABLE evens (id INTEGER, name TEXT)")
    defs_with("tobucket", PAGES, EVENS, PERSIST)
    with dg.instance_for_test() as instance:
        config = run_config_for({}, None, "UTC")
        with dg.execute_job(recon("tobucket"), instance, run_config=config) as result:
            assert result.success
            run_id = result.run_id
            assert table_ids(result, "pages") == list(range(23))
            assert table_ids(result, "evens") == list(range(0, 23, 2))
    keys = s3_store.keys(f"{run_id}/")
    assert keys == [f"tables/{run_id}/evens.parquet", f"tables/{run_id}/pages.parquet"], (
        "the tables are objects; the finished step's checkpoint was removed"
    )
    outputs = [k.split("/")[3] for k in s3_store.keys(f"storage/{run_id}/")]
    assert outputs == ["evens", "pages", "persist", "resolve_variables"], "step outputs too"
    persisted = rows(sqlite_app_url, "SELECT id, name FROM evens ORDER BY id")
    assert [tuple(r) for r in persisted] == [(i, f"R{i}") for i in range(0, 23, 2)]
    assert not (tmp_path / "data" / "tables").exists(), "nothing in the local default folder"


def test_a_reexecution_resumes_from_the_checkpoint_in_the_bucket(
    defs_with, server: LocalHTTPServer, s3_store: S3Store, tmp_path: Path
) -> None:
    defs_with("resumes3", PAGES)
    with dg.instance_for_test() as instance:
        server.fail_when = lambda req, q: q.get("page") == "4"  # a 400: no step retry
        first = dg.execute_job(
            recon("resumes3"), instance, run_config=run_config_for({}, None, "UTC")
        )
        assert not first.success
        journal = s3_store.keys(f"{first.run_id}/checkpoints/pages/")
        assert len(journal) == 3, f"one journal object per finished page: {journal}"
        assert not (tmp_path / "data" / "tables").exists(), "the checkpoint is only in the bucket"
        before = len(server.state.requests)
        server.fail_when = None
        options = dg.ReexecutionOptions.from_failure(first.run_id, instance)
        with dg.execute_job(recon("resumes3"), instance, reexecution_options=options) as retry:
            assert retry.success
            ids = table_ids(retry, "pages")
    assert pages_asked(server.state.requests[:before]) == {1: 1, 2: 1, 3: 1, 4: 1}
    assert pages_asked(server.state.requests[before:]) == {4: 1, 5: 1, 6: 1}, (
        "pages 1-3 came from the bucket's checkpoint"
    )
    assert ids == list(range(23))
    assert not s3_store.keys(f"{first.run_id}/checkpoints/"), "removed once the step succeeded"


def test_checkpoint_parts_and_journal_in_the_bucket(s3_store: S3Store) -> None:
    place = TableStoreResource().place().child("lineage", "checkpoints", "s")
    checkpoint = StepCheckpoint(place, {"id": "INTEGER"}, step_name="s", part_rows=4)
    for page in range(5):
        checkpoint.add_page([{"id": 2 * page}, {"id": 2 * page + 1}], {"page": page + 2})
    names = [key.rsplit("/", 1)[1] for key in s3_store.keys("lineage/checkpoints/s/")]
    assert names == [
        "journal-000000000005.json",
        "part-000001.json",
        "part-000001.parquet",
        "part-000002.json",
        "part-000002.parquet",
    ]
    resumed = StepCheckpoint(place, {"id": "INTEGER"}, step_name="s", part_rows=4)
    assert (resumed.resume.records, resumed.resume.state, resumed.resume.pages) == (
        10,
        {"page": 6},
        5,
    )
    store = TableStoreResource()
    with store.open_writer("run-1", "s", "t", {"id": "INTEGER"}) as writer:
        resumed.write_into(writer)
    assert writer.handle is not None
    assert [r["id"] for r in store.iter_rows(writer.handle)] == list(range(10))
    resumed.remove()
    assert not s3_store.keys("lineage/")


def test_for_each_items_resume_from_the_bucket(s3_store: S3Store) -> None:
    place = TableStoreResource().place().child("lineage", "checkpoints", "each")
    first = StepCheckpoint(place, {"n": "INTEGER"}, step_name="each", part_rows=100)
    for key in (3, "b"):
        first.add_item(key, [{"n": 1}], pages=2)
    first.close()  # the step failed here; another process resumes
    again = StepCheckpoint(place, {"n": "INTEGER"}, step_name="each", part_rows=100)
    assert again.resume.done_keys == {"3", '"b"'}
    assert (again.resume.records, again.resume.pages) == (2, 4)


def test_step_sql_reads_bucket_tables_and_nothing_else(s3_store: S3Store) -> None:
    store = TableStoreResource()
    with store.open_writer("run-1", "a", "a", {"n": "BIGINT", "doc": "JSON"}) as writer:
        writer.write_records([{"n": n, "doc": {"n": n}} for n in range(5)])
    handle = writer.handle
    assert handle is not None and handle.path == f"{s3_store.root}/run-1/a.parquet"
    with store.query(
        "SELECT sum(n) AS total, any_value(doc) AS doc FROM a", None, {"a": handle}
    ) as r:
        result = r.read_all()
    assert result.column("total").to_pylist() == [10]
    assert str(result.schema.field("doc").type) == "extension<arrow.json>"
    for sql in (
        f"SELECT * FROM read_parquet('{handle.path}')",
        "SELECT * FROM read_csv('/etc/passwd')",
    ):
        with (
            pytest.raises(Exception, match="disabled by configuration"),
            store.query(sql, None, {"a": handle}) as r,
        ):
            r.read_all()
    with pytest.raises(SqlError), store.query("DROP TABLE a", None, {"a": handle}):
        pass


def test_a_failed_write_leaves_no_object(s3_store: S3Store) -> None:
    store = TableStoreResource()
    with pytest.raises(ValueError, match="boom"), store.open_writer("run-1", "s", "s", SCHEMA) as w:
        w.write_records([{"id": i, "name": str(i)} for i in range(30_000)])  # some row groups
        raise ValueError("boom")
    assert s3_store.keys() == []


def test_settings_errors_name_the_variable_and_mask_the_secret(
    s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_filesystem()
    assert SECRET_KEY not in redact(f"signing with {SECRET_KEY} failed")
    monkeypatch.setenv("TABLE_STORE_ENDPOINT_URL", "127.0.0.1:9000")
    with pytest.raises(ObjectStoreError, match=r"TABLE_STORE_ENDPOINT_URL.*http://host:port"):
        s3_filesystem()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    with pytest.raises(ObjectStoreError, match="both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        s3_filesystem()


def test_a_missing_bucket_is_named_without_the_secret(
    s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TABLE_STORE_ROOT", "s3://no-such-bucket-here/tables")
    with (
        pytest.raises(OSError) as caught,
        TableStoreResource().open_writer("run-1", "s", "s", SCHEMA) as w,
    ):
        w.write_records([{"id": 1, "name": "x"}])
    assert "no-such-bucket-here" in str(caught.value)
    assert SECRET_KEY not in str(caught.value)


def test_housekeeping_leaves_a_bucket_to_its_lifecycle_rules(s3_store: S3Store) -> None:
    store = TableStoreResource()
    with store.open_writer("old-run", "s", "s", SCHEMA) as writer:
        writer.write_records([{"id": 1, "name": "x"}])
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={TABLE_STORE_KEY: store})
        tick = housekeeping_sensor.evaluate_tick(context)
    assert tick.skip_message == OBJECT_STORAGE_SKIP
    assert s3_store.keys() == ["tables/old-run/s.parquet"]
