"""The fetch path of a paginated serviceCall, one layer at a time, without Dagster.

Each function fetches all records of `/records` from `bench.page_server` and returns how
many it saw; each adds one layer of the step's work to the one before:

1. `bare`: one keep-alive `httpx.Client` + orjson (the reference loop);
2. `page_loop`: `ServiceResource.iter_pages` (request building, retries, the cursor
   paginator, `dataPath`);
3. `shaped`: + `RecordShaper.shape` per record (what `translators.steps.service_call`
   does to each record);
4. `parquet`: + `TableWriter.write_records` (cast to the outputSchema, Parquet);
5. `checkpointed`: what the step does since checkpoints (SPEC 5.5): each 10,000 rows
   become a checkpoint part (`StepCheckpoint.add_page`), cast while the next page is on
   its way (`catch_up`), assembled into the table at the end (`write_into`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resources.checkpoints import StepCheckpoint
from resources.paginators import CursorPaginator
from resources.records import RecordShaper
from resources.service import CallRequest, Operation, ServiceResource
from resources.table_store import TableStoreResource

# The layer each one adds its work to (`checkpointed` replaces `parquet`).
BUILDS_ON = {
    "page_loop": "bare",
    "shaped": "page_loop",
    "parquet": "shaped",
    "checkpointed": "shaped",
}


def layer_functions(
    base_url: str, records: int, schema: dict[str, str], page_size: int, table_root: str
) -> dict[str, Callable[[], int]]:
    """The layers, in order, as zero-argument functions; tables go to `table_root`."""
    from bench.service_call_streaming import bare_loop

    service = ServiceResource(service_name="bench", base_url=base_url)
    shaper = RecordShaper(list(schema))
    store = TableStoreResource(root=table_root)

    def request() -> CallRequest:
        return CallRequest(
            operation=Operation("listRecords", "GET", "/records"),
            params={"total": records, "limit": page_size},
            data_path="data",
            paginator=CursorPaginator("meta.nextCursor", "cursor", max_pages=100_000),
        )

    def page_loop() -> int:
        return sum(len(page.records) for page in service.iter_pages(request()))

    def shaped() -> int:
        count = 0
        for page in service.iter_pages(request()):
            rows = [shaper.shape(record) for record in page.records]
            count += len(rows)
        return count

    def parquet() -> int:
        count = 0
        run_id = uuid.uuid4().hex
        with store.open_writer(run_id, "fetch", "records", schema) as writer:
            for page in service.iter_pages(request()):
                rows: list[dict[str, Any]] = [shaper.shape(record) for record in page.records]
                count += len(rows)
                writer.write_records(rows)
        return count

    def checkpointed() -> int:
        count = 0
        run_id = uuid.uuid4().hex
        folder = Path(table_root) / run_id / "checkpoints" / "fetch"
        checkpoint = StepCheckpoint(folder, schema, step_name="fetch", part_rows=store.batch_rows)
        with store.open_writer(run_id, "fetch", "records", schema) as writer:
            for page in service.iter_pages(request(), while_waiting=checkpoint.catch_up):
                rows: list[dict[str, Any]] = [shaper.shape(record) for record in page.records]
                count += len(rows)
                checkpoint.add_page(rows, page.checkpoint, defer=True)
            checkpoint.write_into(writer)
        checkpoint.remove()
        return count

    return {
        "bare": lambda: bare_loop(base_url, records, "orjson"),
        "page_loop": page_loop,
        "shaped": shaped,
        "parquet": parquet,
        "checkpointed": checkpointed,
    }
