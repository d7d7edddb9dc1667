"""P2's Dagster comparator: the same per-item call done the Dagster way, one step per item.

A job `split -> call.map() -> collect`: `split` yields one `DynamicOutput` per item, each
mapped `call` op fetches `/items/{item}/records?delay_ms=D` from `bench.page_server`
(one keep-alive `httpx.Client` shared by all steps, so only Dagster's cost is added), and
`collect` counts the records. Run with `execute_in_process` on an ephemeral instance:
the cheapest way Dagster runs mapped steps (one at a time, in memory; a persistent
instance or the multiprocess executor costs more, see the Dagster notes).

`python -m bench.dynamic_out case --base-url URL --items N --delay-ms D` prints one
RESULT line with the run's wall time per item.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import dagster as dg
import httpx
import orjson

from bench.common import emit_result, peak_rss_mb

_CLIENT: dict[str, httpx.Client] = {}


def build_job(base_url: str, items: int, delay_ms: int) -> dg.JobDefinition:
    @dg.op(out=dg.DynamicOut(int))
    def split():
        for item in range(items):
            yield dg.DynamicOutput(item, mapping_key=f"i{item}")

    @dg.op
    def call(item: int) -> int:
        client = _CLIENT.setdefault("client", httpx.Client(timeout=30))
        response = client.get(f"{base_url}/items/{item}/records", params={"delay_ms": delay_ms})
        response.raise_for_status()
        return len(orjson.loads(response.content)["data"])

    @dg.op
    def collect(counts: list[int]) -> int:
        return sum(counts)

    @dg.job(name="dynamic_out_bench", executor_def=dg.in_process_executor)
    def dynamic_out_bench() -> None:
        collect(split().map(call).collect())

    return dynamic_out_bench


def case(base_url: str, items: int, delay_ms: int) -> dict[str, Any]:
    job = build_job(base_url, items, delay_ms)
    with dg.DagsterInstance.ephemeral() as instance:
        started = time.perf_counter()
        result = job.execute_in_process(
            instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        )
        seconds = time.perf_counter() - started
    records = result.output_for_node("collect")
    return {
        "items": items,
        "delay_ms": delay_ms,
        "records": records,
        "seconds": round(seconds, 3),
        "ms_per_item": round(seconds * 1000 / items, 3),
        "items_per_s": round(items / seconds, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench.dynamic_out case")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--delay-ms", type=int, default=20)
    args = parser.parse_args(argv[1:] if argv[:1] == ["case"] else argv)
    emit_result(case(args.base_url, args.items, args.delay_ms))


if __name__ == "__main__":
    main()
