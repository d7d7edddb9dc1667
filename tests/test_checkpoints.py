"""Checkpoints (SPEC 5.5): a re-executed paginated step resumes after its last finished
page, a forEach skips its finished items, and a side-effect call is not repeated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import orjson
import pyarrow.parquet as pq
import pytest

from resources.checkpoints import StepCheckpoint
from resources.table_store import TableStoreResource, TableWriter
from resources.table_store_types import CastError
from tests.support.http_server import LocalHTTPServer, RecordedRequest
from tests.support.local_service import (
    local_service,
    one_at_a_time,
    serving,
    write_service_defs,
)
from translators.run_creation import reconstructable
from translators.schedules import run_config_for

# Parts of 5 rows: with pages of 5 records, every page is its own part.
RUN_CONFIG = {
    **run_config_for({}, None, "UTC"),
    "resources": {"table_store": {"config": {"batch_rows": 5}}},
}
PAGES = {
    "id": "pages",
    "service": "local",
    "operation": "cursor",
    "params": {"limit": 5},
    "paginate": {"type": "cursor", "cursorField": "next.cursor", "cursorParam": "cursor"},
    "dataPath": "items",
    "outputTable": "records",
    "outputSchema": {"id": "INTEGER", "name": "VARCHAR"},
}
NUMBERS = {"sql": "SELECT range AS n FROM range(10)", "outputTable": "numbers"}
ECHO_EACH = {
    "id": "each",
    "service": "local",
    "operation": "echo",
    "params": {"what": "{{item.n}}"},
    "forEach": {"source": "numbers"},
    "fieldMapping": {"n": "{{item.n}}", "path": "path"},
    "outputTable": "echoes",
    "outputSchema": {"n": "INTEGER", "path": "VARCHAR"},
}
POST_EACH = {
    "id": "post",
    "service": "local",
    "operation": "post",
    "params": {"n": "{{item.n}}"},
    "forEach": {"source": "numbers", "itemKey": "n"},
}


LOCAL = local_service(
    {
        "cursor": {"path": "/cursor"},
        "echo": {"path": "/echo/{what}"},
        "post": {"method": "POST", "path": "/messages", "mutation": True},
    }
)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHTTPServer]:
    with serving(monkeypatch) as srv:
        yield srv


@pytest.fixture
def job_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def build(stem: str, *steps: dict) -> dg.ReconstructableJob:
        # A job name per test: Dagster caches reconstructed jobs by name within a process.
        workflows = {stem: one_at_a_time(*steps)}
        write_service_defs(tmp_path / "defs", workflows, LOCAL, monkeypatch=monkeypatch)
        return reconstructable(f"app__{stem}")

    return build


def first_then_resume(recon: dg.ReconstructableJob, server: LocalHTTPServer, fail) -> tuple:
    """Run with `fail` making requests fail, then re-execute from failure without it."""
    with dg.instance_for_test() as instance:
        server.fail_when = fail
        first = dg.execute_job(recon, instance, run_config=RUN_CONFIG)
        assert not first.success
        seen_before = len(server.state.requests)
        server.fail_when = None
        options = dg.ReexecutionOptions.from_failure(first.run_id, instance)
        with dg.execute_job(recon, instance, reexecution_options=options) as retry:
            assert retry.success
            handles = {
                step: retry.output_for_node(step)
                for step in ("pages", "each")
                if step in retry.job_def.graph.node_dict
            }
        return server.state.requests[seen_before:], handles


def cursor_of(request: RecordedRequest) -> str:
    return request.query.get("cursor", ["0"])[-1]


def test_a_paginated_step_resumes_after_its_last_finished_page(job_with, server) -> None:
    recon = job_with("pages", PAGES)
    resumed, handles = first_then_resume(recon, server, lambda req, q: q.get("cursor") == "15")
    assert [cursor_of(r) for r in resumed] == ["15", "20"], "pages 1-3 are not fetched again"
    rows = pq.read_table(handles["pages"].path).to_pylist()
    assert [r["id"] for r in rows] == list(range(23))


def test_a_for_each_step_skips_its_finished_items(job_with, server) -> None:
    recon = job_with("each", NUMBERS, ECHO_EACH)
    resumed, handles = first_then_resume(recon, server, lambda req, q: req.path == "/echo/6")
    asked = sorted(int(r.path.rsplit("/", 1)[1]) for r in resumed)
    assert asked[0] >= 5 and 6 in asked, f"items 0-4 were checkpointed, asked again: {asked}"
    rows = pq.read_table(handles["each"].path).to_pylist()
    assert sorted(r["n"] for r in rows) == list(range(10))
    assert all(r["path"] == f"/echo/{r['n']}" for r in rows)


def test_a_side_effect_for_each_posts_each_item_once(job_with, server) -> None:
    recon = job_with("post", NUMBERS, POST_EACH)
    first_then_resume(recon, server, lambda req, q: req.method == "POST" and b'"n":7' in req.body)
    posted = sorted(body["n"] for body in server.state.posted)
    assert posted == list(range(10)), "every item posted exactly once across both runs"


def test_a_successful_step_leaves_no_checkpoint(job_with, server, tmp_path: Path) -> None:
    recon = job_with("clean", PAGES)
    with dg.instance_for_test() as instance:
        assert dg.execute_job(recon, instance, run_config=RUN_CONFIG).success
    tables = TableStoreResource().root_path()
    assert not list(tables.glob("*/checkpoints/*/part-*")), "checkpoint parts removed"


def test_an_orphan_part_without_its_record_is_ignored(tmp_path: Path) -> None:
    checkpoint = StepCheckpoint(tmp_path / "cp", {"id": "INTEGER"}, step_name="s", part_rows=2)
    checkpoint.add_page([{"id": 1}, {"id": 2}], {"page": 2})
    checkpoint.add_page([{"id": 3}], {"page": 3})  # journalled, not yet a part
    (tmp_path / "cp" / "part-000002.parquet").write_bytes(b"half written")
    resumed = StepCheckpoint(tmp_path / "cp", {"id": "INTEGER"}, step_name="s", part_rows=2)
    resume = resumed.resume
    assert (resume.parts, resume.state, resume.records, resume.pages) == (1, {"page": 3}, 3, 2)
    resumed.add_page([{"id": 4}], None)
    assert table_rows(resumed) == [1, 2, 3, 4], "the orphan was overwritten by the next part"


def test_a_mutation_for_each_keeps_its_rows_across_a_resume(job_with, server) -> None:
    post_rows = {
        **POST_EACH,
        "id": "each",
        "outputTable": "posted",
        "fieldMapping": {"n": "{{item.n}}", "message_id": "id"},
        "outputSchema": {"n": "INTEGER", "message_id": "BIGINT"},
    }
    recon = job_with("postrows", NUMBERS, post_rows)
    _, handles = first_then_resume(
        recon, server, lambda req, q: req.method == "POST" and b'"n":4' in req.body
    )
    rows = pq.read_table(handles["each"].path).to_pylist()
    assert sorted(r["n"] for r in rows) == list(range(10))
    assert sorted(body["n"] for body in server.state.posted) == list(range(10))
    assert len({r["message_id"] for r in rows}) == 10


def table_rows(checkpoint: StepCheckpoint, column: str = "id") -> list:
    path = checkpoint.folder.parent / "table.parquet"
    with TableWriter(path, "s", "t", checkpoint.schema, 100) as writer:
        checkpoint.write_into(writer)
    return [row[column] for row in pq.read_table(path).to_pylist()]


def test_a_torn_journal_line_is_cut_off(tmp_path: Path) -> None:
    folder = tmp_path / "cp"
    first = StepCheckpoint(folder, {"n": "INTEGER"}, step_name="s", part_rows=100)
    first.add_item(1, [{"n": 1}], pages=1)
    first.add_item(2, [{"n": 2}], pages=1)
    first.close()
    with (folder / "journal.jsonl").open("ab") as journal:
        journal.write(b'{"seq": 3, "key": "3", "rows": [{"n"')  # a crash in the middle of a line
    again = StepCheckpoint(folder, {"n": "INTEGER"}, step_name="s", part_rows=100)
    assert again.resume.done_keys == {"1", "2"} and again.resume.records == 2
    again.add_item(3, [{"n": 3}], pages=1)
    assert table_rows(again, "n") == [1, 2, 3]


SCHEMA = {"id": "INTEGER"}


def test_every_page_is_on_disk_before_the_next_request(tmp_path: Path) -> None:
    folder = tmp_path / "cp"
    live = StepCheckpoint(folder, SCHEMA, step_name="s", part_rows=10_000)
    for page in range(1, 4):
        live.add_page([{"id": page}], {"page": page + 1})
        # What a process started now (the old one killed) would resume from.
        seen = StepCheckpoint(folder, SCHEMA, step_name="s", part_rows=10_000).resume
        assert (seen.pages, seen.state, seen.records) == (page, {"page": page + 1}, page)
    assert not list(folder.glob("part-*")), "far below part_rows: the journal alone"


def test_the_journal_is_compacted_into_parts(tmp_path: Path) -> None:
    folder = tmp_path / "cp"
    checkpoint = StepCheckpoint(folder, SCHEMA, step_name="s", part_rows=4)
    for page in range(5):
        checkpoint.add_page([{"id": 2 * page}, {"id": 2 * page + 1}], {"page": page + 2})
    assert len(list(folder.glob("part-*.json"))) == 2, "a part after 4 and after 8 rows"
    assert len((folder / "journal.jsonl").read_bytes().splitlines()) == 1, "the last page"
    resumed = StepCheckpoint(folder, SCHEMA, step_name="s", part_rows=4)
    assert (resumed.resume.records, resumed.resume.state) == (10, {"page": 6})
    resumed.add_page([], None)
    assert table_rows(resumed) == list(range(10))


def test_a_crash_between_a_part_and_the_journal_reset_keeps_each_row_once(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "cp"
    checkpoint = StepCheckpoint(folder, SCHEMA, step_name="s", part_rows=3)
    checkpoint.add_page([{"id": 1}, {"id": 2}], {"page": 2})
    journal = (folder / "journal.jsonl").read_bytes()
    checkpoint.add_page([{"id": 3}], {"page": 3})  # part 1, then the journal is emptied
    line = orjson.dumps({"seq": 2, "state": {"page": 3}, "rows": [{"id": 3}]}) + b"\n"
    (folder / "journal.jsonl").write_bytes(journal + line)  # as if it never was
    resumed = StepCheckpoint(folder, SCHEMA, step_name="s", part_rows=3)
    assert (resumed.resume.records, resumed.resume.pages) == (3, 2)
    resumed.add_page([{"id": 4}], None)
    assert table_rows(resumed) == [1, 2, 3, 4]


def test_a_step_without_a_table_journals_no_rows(tmp_path: Path) -> None:
    checkpoint = StepCheckpoint(tmp_path / "cp", None, step_name="s", part_rows=10)
    checkpoint.add_page([{"id": 1}, {"id": 2}], {"page": 2})
    line = orjson.loads((tmp_path / "cp" / "journal.jsonl").read_bytes())
    assert line["rows"] == [] and checkpoint.records == 2


def test_deferred_pages_are_cast_by_catch_up_and_name_the_row_in_the_table(
    tmp_path: Path,
) -> None:
    """add_page(defer=True) journals at once and leaves the casting to catch_up (run while
    the next request is on its way); a bad value is named by its row in the whole table."""
    schema = {"id": "INTEGER"}
    checkpoint = StepCheckpoint(tmp_path / "cp", schema, step_name="s", part_rows=4)
    checkpoint.add_page([{"id": 1}, {"id": 2}, {"id": 3}], {"page": 2}, defer=True)
    assert not list((tmp_path / "cp").glob("part-*")), "nothing compacted before catch_up"
    checkpoint.catch_up()
    checkpoint.add_page([{"id": 4}, {"id": 5}], {"page": 3}, defer=True)
    checkpoint.catch_up()  # 5 rows >= part_rows: one part
    assert len(list((tmp_path / "cp").glob("part-*.json"))) == 1
    checkpoint.add_page([{"id": 6}, {"id": "seven"}], {"page": 4}, defer=True)
    with pytest.raises(CastError, match="row 7, column 'id'"):
        checkpoint.catch_up()
    # What was journalled is there for the next attempt, cast error and all.
    resumed = StepCheckpoint(tmp_path / "cp", schema, step_name="s", part_rows=4)
    assert (resumed.resume.records, resumed.resume.state) == (7, {"page": 4})
