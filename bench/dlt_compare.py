"""P5's peer: dlt's `rest_api` source over the same cursor pages, in a fresh process.

dlt (the `bench` extra: `pip install -e .[bench]`) fetches `/records` of
`bench.page_server` with its cursor paginator and `data_selector`, normalises into
Parquet loader files and loads them into a `filesystem` destination in a temporary
folder: all offline, no telemetry. Reported: records/s of the whole `pipeline.run` and
the process's peak RSS. Without dlt the case reports `{"installed": false}`.

`python -m bench.dlt_compare case --base-url URL --records N` prints one RESULT line.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

from bench.common import emit_result, peak_rss_mb

PAGE_SIZE = 100


def installed() -> bool:
    try:
        import dlt  # noqa: F401
    except ImportError:
        return False
    return True


def source_config(base_url: str, records: int) -> dict[str, Any]:
    cursor = {"type": "cursor", "cursor_path": "meta.nextCursor", "cursor_param": "cursor"}
    return {
        "client": {"base_url": base_url, "paginator": cursor},
        "resources": [
            {
                "name": "records",
                "endpoint": {
                    "path": "records",
                    "params": {"total": records, "limit": PAGE_SIZE},
                    "data_selector": "data",
                },
            }
        ],
    }


def case(base_url: str, records: int) -> dict[str, Any]:
    if not installed():
        return {"installed": False, "records": records}
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    import dlt
    from dlt.sources.rest_api import rest_api_source

    with tempfile.TemporaryDirectory(prefix="bench-dlt-") as tmp:
        os.environ["DLT_DATA_DIR"] = f"{tmp}/data"
        os.environ["DLT_PROJECT_DIR"] = tmp
        pipeline = dlt.pipeline(
            pipeline_name="bench_rest_api",
            destination=dlt.destinations.filesystem(bucket_url=f"file://{tmp}/out"),
            dataset_name="bench",
            pipelines_dir=f"{tmp}/pipelines",
        )
        started = time.perf_counter()
        source = rest_api_source(source_config(base_url, records))  # type: ignore[arg-type]
        pipeline.run(source, loader_file_format="parquet")
        seconds = time.perf_counter() - started
        trace = pipeline.last_trace
        normalized = trace.last_normalize_info if trace else None
        counts = normalized.row_counts if normalized else {}
    if counts.get("records") != records:
        raise AssertionError(f"dlt loaded {counts.get('records')} records, expected {records}")
    return {
        "installed": True,
        "loader_file_format": "parquet",
        "records": records,
        "seconds": round(seconds, 3),
        "records_per_s": round(records / seconds),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench.dlt_compare case")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args(argv[1:] if argv[:1] == ["case"] else argv)
    emit_result(case(args.base_url, args.records))


if __name__ == "__main__":
    main()
