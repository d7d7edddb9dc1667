"""serviceCall throughput and memory: cursor pages and forEach, through the translated job.

Cases (each in a fresh process, see `bench.common.run_case`):
- `pages`: one serviceCall step with cursor `paginate`, `dataPath` and a 6-column
  `outputSchema` (text, integers, float, boolean, timestamp) over N records, 100 per
  page, from `bench.page_server`. Records/s of the step and peak RSS, per N: memory
  must not grow with N.
- `for-each`: an SQL step makes the items, a forEach serviceCall calls one small page
  per item with `parallel` calls in flight (optionally the server waits `delay_ms`, or
  the operation is declared a `mutation`, whose forEach checkpoints every item).
- `bare`: the reference loop of performance-limits.md (one keep-alive `httpx.Client`,
  orjson or stdlib json, no project code) against the same server; `bare-async`: the
  forEach reference, one `httpx.AsyncClient` with `parallel` tasks, one page per item;
  `bare-aiohttp`: the same with aiohttp, forEach's transport (`--delay-ms` too).
- `layers`: where the time goes, without Dagster: the bare loop, then the project's page
  loop (`ServiceResource.iter_pages`), then + `RecordShaper`, then + `TableWriter`.

`python -m bench.service_call_streaming [--repeats 3] [--quick]` runs the suite and
writes `bench/results/service_call_streaming.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    RssSampler,
    Series,
    emit_result,
    log,
    machine_facts,
    page_server,
    peak_rss_mb,
    run_case,
    write_results,
)

MODULE = "bench.service_call_streaming"
SERVICE = "benchsvc"
PAGE_SIZE = 100
RECORD_SCHEMA = {
    "id": "VARCHAR",
    "seq": "BIGINT",
    "amount_cents": "BIGINT",  # `amountCents` in the records: matched by name folding
    "price": "DOUBLE",
    "active": "BOOLEAN",
    "created_at": "TIMESTAMPTZ",
}
CURSOR = {"type": "cursor", "cursorField": "meta.nextCursor", "cursorParam": "cursor"}


# --- the definitions --------------------------------------------------------------------


def catalog(base_url: str) -> dict[str, Any]:
    return {
        "name": SERVICE,
        "description": "bench.page_server on 127.0.0.1",
        "baseUrl": base_url,
        "operations": {
            "listRecords": {"method": "GET", "path": "/records"},
            "listItemRecords": {"method": "GET", "path": "/items/{itemId}/records"},
            # The same call declared a mutation: its forEach checkpoints every item.
            "markItemRecords": {
                "method": "GET",
                "path": "/items/{itemId}/records",
                "mutation": True,
            },
        },
    }


def pages_workflow(records: int) -> dict[str, Any]:
    return {
        "name": "Cursor pages benchmark",
        "settings": {"maxParallelSteps": 1},
        "steps": [
            {
                "id": "fetch",
                "service": SERVICE,
                "operation": "listRecords",
                "params": {"total": records, "limit": PAGE_SIZE},
                # The default maxPages (10,000) is exactly 1M records of 100.
                "paginate": {**CURSOR, "maxPages": 100_000},
                "dataPath": "data",
                "outputTable": "records",
                "outputSchema": RECORD_SCHEMA,
            }
        ],
    }


def for_each_workflow(
    items: int, parallel: int, delay_ms: int, mutation: bool = False
) -> dict[str, Any]:
    params: dict[str, Any] = {"itemId": "{{item.item_id}}"}
    if delay_ms:
        params["delay_ms"] = delay_ms
    return {
        "name": "forEach benchmark",
        "settings": {"maxParallelSteps": 1},
        "steps": [
            {"sql": f"SELECT range AS item_id FROM range({items})", "outputTable": "items"},
            {
                "id": "fetch",
                "service": SERVICE,
                "operation": "markItemRecords" if mutation else "listItemRecords",
                "params": params,
                "forEach": {"source": "items", "itemKey": "item_id", "parallel": parallel},
                "paginate": CURSOR,
                "dataPath": "data",
                "fieldMapping": {"item_id": "{{item.item_id}}"},
                "outputTable": "records",
                "outputSchema": {"item_id": "BIGINT", **RECORD_SCHEMA},
            },
        ],
    }


# --- cases (run in a fresh process each) ------------------------------------------------


def _run_job_case(base_url: str, workflow: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Write the folder, run the job with RSS sampling; the fetch step's figures."""
    from bench.jobs import run_workflow, step_summary, write_defs  # imports Dagster

    with tempfile.TemporaryDirectory(prefix="bench-scs-") as tmp:
        root = Path(tmp)
        os.environ["WORKFLOWS_DATA_DIR"] = str(root / "data")
        defs = write_defs(root / "defs", {SERVICE: catalog(base_url)}, {"wf": workflow})
        cpu_started = time.process_time()
        with RssSampler() as sampler:
            run = run_workflow(defs, "wf", root / "instance")
        job_cpu_s = time.process_time() - cpu_started
        summary = step_summary(run, "fetch", sampler)
        # Every thread of the process: near the wall time means one core's worth (the GIL).
        summary["job_cpu_s"] = round(job_cpu_s, 3)
        handle = run.result.output_for_node("fetch")
        summary["parquet_mb"] = round(Path(handle.path).stat().st_size / 2**20, 2)
        summary["rows"] = handle.row_count
        summary["peak_rss_mb"] = round(peak_rss_mb(), 1)
        return summary, run.step("fetch").metadata


def case_pages(base_url: str, records: int) -> dict[str, Any]:
    summary, metadata = _run_job_case(base_url, pages_workflow(records))
    if summary["rows"] != records:
        raise AssertionError(f"expected {records} rows, the table has {summary['rows']}")
    return {
        "records": records,
        "pages": metadata.get("pages"),
        "records_per_s": round(records / summary["step_s"]),
        "job_records_per_s": round(records / summary["job_wall_s"]),
        **summary,
    }


def case_for_each(
    base_url: str, items: int, parallel: int, delay_ms: int, mutation: bool
) -> dict[str, Any]:
    workflow = for_each_workflow(items, parallel, delay_ms, mutation)
    summary, metadata = _run_job_case(base_url, workflow)
    if metadata.get("items done") != items:
        raise AssertionError(f"expected {items} items done, got {metadata.get('items done')}")
    return {
        "items": items,
        "parallel": parallel,
        "delay_ms": delay_ms,
        "mutation": mutation,
        "records": summary["rows"],
        "items_per_s": round(items / summary["step_s"], 1),
        **summary,
    }


def bare_loop(base_url: str, records: int, decoder: str) -> int:
    """The loop of performance-limits.md: one keep-alive httpx.Client, cursor pages."""
    import httpx

    loads: Callable[[bytes], Any]
    if decoder == "orjson":
        import orjson

        loads = orjson.loads
    else:
        loads = json.loads
    count, cursor = 0, None
    with httpx.Client(timeout=30) as client:
        while True:
            params: dict[str, Any] = {"total": records, "limit": PAGE_SIZE}
            if cursor is not None:
                params["cursor"] = cursor
            body = loads(client.get(f"{base_url}/records", params=params).content)
            count += len(body["data"])
            cursor = body["meta"]["nextCursor"]
            if cursor is None:
                return count


def bare_async_loop(base_url: str, items: int, parallel: int) -> int:
    """forEach's reference: one httpx.AsyncClient, `parallel` tasks, one page per item."""
    import asyncio

    import httpx
    import orjson

    async def main() -> int:
        limits = httpx.Limits(max_connections=parallel, max_keepalive_connections=parallel)
        pending = iter(range(items))
        count = 0
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:

            async def worker() -> None:
                nonlocal count
                for item in pending:
                    response = await client.get(f"{base_url}/items/{item}/records")
                    count += len(orjson.loads(response.content)["data"])

            await asyncio.gather(*(worker() for _ in range(parallel)))
        return count

    return asyncio.run(main())


def bare_aiohttp_loop(base_url: str, items: int, parallel: int, delay_ms: int = 0) -> int:
    """forEach's transport alone (P2): one aiohttp ClientSession, `parallel` tasks, one
    page per item, the server answering after `delay_ms`. The loop of
    performance-limits.md that reaches ~1.09x the ideal time at parallel 50."""
    import asyncio

    import aiohttp
    import orjson

    query = f"?delay_ms={delay_ms}" if delay_ms else ""

    async def main() -> int:
        pending = iter(range(items))
        count = 0
        connector = aiohttp.TCPConnector(limit=parallel)
        async with aiohttp.ClientSession(connector=connector) as client:

            async def worker() -> None:
                nonlocal count
                for item in pending:
                    async with client.get(f"{base_url}/items/{item}/records{query}") as response:
                        count += len(orjson.loads(await response.read())["data"])

            await asyncio.gather(*(worker() for _ in range(parallel)))
        return count

    return asyncio.run(main())


def case_bare_async(
    base_url: str, items: int, parallel: int, delay_ms: int = 0, client: str = "httpx"
) -> dict[str, Any]:
    started = time.perf_counter()
    if client == "aiohttp":
        records = bare_aiohttp_loop(base_url, items, parallel, delay_ms)
    else:
        records = bare_async_loop(base_url, items, parallel)
    seconds = time.perf_counter() - started
    return {
        "client": client,
        "items": items,
        "parallel": parallel,
        "delay_ms": delay_ms,
        "records": records,
        "seconds": round(seconds, 3),
        "items_per_s": round(items / seconds, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def case_bare(base_url: str, records: int, decoder: str) -> dict[str, Any]:
    started = time.perf_counter()
    count = bare_loop(base_url, records, decoder)
    seconds = time.perf_counter() - started
    if count != records:
        raise AssertionError(f"expected {records} records, got {count}")
    return {
        "records": records,
        "decoder": decoder,
        "seconds": round(seconds, 3),
        "records_per_s": round(records / seconds),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def case_layers(base_url: str, records: int, repeats: int) -> dict[str, Any]:
    """Records/s of each layer of the fetch path, interleaved, median of `repeats`."""
    from bench.layers import BUILDS_ON, layer_functions

    with tempfile.TemporaryDirectory(prefix="bench-layers-") as tables:
        layers = layer_functions(base_url, records, RECORD_SCHEMA, PAGE_SIZE, tables)
        rates: dict[str, list[float]] = {name: [] for name in layers}
        for _ in range(repeats):
            for name, run in layers.items():
                started = time.perf_counter()
                count = run()
                if count != records:
                    raise AssertionError(f"{name}: expected {records} records, got {count}")
                rates[name].append(count / (time.perf_counter() - started))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    result: dict[str, Any] = {"records": records, "repeats_in_process": repeats}
    for name, rate in medians.items():
        result[f"{name}_records_per_s"] = round(rate)
        base = BUILDS_ON.get(name)
        if base is not None:
            extra_us = 1e6 / rate - 1e6 / medians[base]
            result[f"{name}_extra_us_per_record"] = round(extra_us, 2)
    return result


# --- the driver -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    pages: tuple[int, ...]  # records of each paginated run
    # (items, parallel, server delay ms, operation is a mutation)
    for_each: tuple[tuple[int, int, int, bool], ...]
    bare_records: int
    layers_records: int


FULL = Sizes(
    pages=(10_000, 100_000, 1_000_000),
    for_each=(
        (2_000, 10, 0, False),
        (2_000, 1, 0, False),
        (2_000, 10, 20, False),
        (2_000, 10, 0, True),
        (20_000, 10, 0, False),
    ),
    bare_records=200_000,
    layers_records=200_000,
)
QUICK = Sizes(
    pages=(1_000, 5_000),
    for_each=((100, 10, 0, False), (100, 10, 20, False), (100, 10, 0, True)),
    bare_records=5_000,
    layers_records=5_000,
)


def _series(name: str, params: dict[str, Any], args: list[str], repeats: int) -> Series:
    series = Series(name, params)
    for attempt in range(repeats):
        log(f"{name} run {attempt + 1}/{repeats}")
        series.runs.append(run_case(MODULE, args, f"{name}-{attempt + 1}"))
    return series


def run_suite(repeats: int = 3, quick: bool = False) -> dict[str, Any]:
    machine = machine_facts()  # before the load of the runs
    sizes = QUICK if quick else FULL
    series: list[Series] = []
    with page_server() as url:
        base = ["--base-url", url]
        for decoder in ("json", "orjson"):
            n = sizes.bare_records
            args = ["bare", *base, "--records", str(n), "--decoder", decoder]
            series.append(_series(f"bare_httpx_{decoder}", {"records": n}, args, repeats))
        items, parallel, _, _ = sizes.for_each[0]
        args = ["bare-async", *base, "--items", str(items), "--parallel", str(parallel)]
        params = {"items": items, "parallel": parallel}
        series.append(_series("bare_async_httpx_items", params, args, repeats))
        n = sizes.layers_records
        args = ["layers", *base, "--records", str(n), "--repeats", str(repeats)]
        series.append(_series("layers", {"records": n}, args, 1))
        for n in sizes.pages:
            args = ["pages", *base, "--records", str(n)]
            series.append(_series(f"pages_{n}", {"records": n}, args, repeats))
        for items, parallel, delay, mutation in sizes.for_each:
            name = f"for_each_{items}_p{parallel}_d{delay}" + ("_mutation" if mutation else "")
            params = {"items": items, "parallel": parallel, "delay_ms": delay, "mutation": mutation}
            args = ["for-each", *base, "--items", str(items), "--parallel", str(parallel)]
            args += ["--delay-ms", str(delay)] + (["--mutation"] if mutation else [])
            # The 20,000-item run only checks that memory stays flat: one run is enough.
            series.append(_series(name, params, args, 1 if items > 5_000 else repeats))
    return {
        "suite": "service_call_streaming",
        "machine": machine,
        "page_size": PAGE_SIZE,
        "series": [s.as_json() for s in series],
    }


def _case_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE} case")
    kinds = ["pages", "for-each", "bare", "bare-async", "bare-aiohttp", "layers"]
    parser.add_argument("kind", choices=kinds)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--delay-ms", type=int, default=0)
    parser.add_argument("--decoder", choices=["json", "orjson"], default="orjson")
    parser.add_argument("--mutation", action="store_true", help="forEach: a mutation call")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.kind == "pages":
        emit_result(case_pages(args.base_url, args.records))
    elif args.kind == "for-each":
        emit_result(
            case_for_each(args.base_url, args.items, args.parallel, args.delay_ms, args.mutation)
        )
    elif args.kind == "bare":
        emit_result(case_bare(args.base_url, args.records, args.decoder))
    elif args.kind == "bare-async":
        emit_result(case_bare_async(args.base_url, args.items, args.parallel))
    elif args.kind == "bare-aiohttp":
        emit_result(
            case_bare_async(args.base_url, args.items, args.parallel, args.delay_ms, "aiohttp")
        )
    else:
        emit_result(case_layers(args.base_url, args.records, args.repeats))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["case"]:
        _case_main(argv[1:])
        return
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    args = parser.parse_args(argv)
    path = write_results("service_call_streaming", run_suite(args.repeats, args.quick), args.quick)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
