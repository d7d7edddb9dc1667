"""What the benchmark servers can serve, so the results show they are not the bound.

- `pages`: `bench.page_server`'s cursor pages of 100 records, fetched one after the other
  by the cheapest client there is (`http.client` + orjson, one keep-alive connection):
  pages/s and records/s. The P1 loops (the step, bare httpx) must stay well below it.
- `latency`: the forEach route with the server's delay (`/items/{i}/records?delay_ms=D`)
  at `parallel` calls in flight, by a bare aiohttp loop (a raw asyncio client when aiohttp
  is not installed): calls/s against the ideal `parallel / delay`.

`python -m bench.capacity case pages --base-url URL --pages N` prints one RESULT line.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import orjson

from bench.common import emit_result, peak_rss_mb

PAGE_SIZE = 100


def page_capacity(base_url: str, pages: int) -> dict[str, Any]:
    """Sequential cursor pages over one keep-alive `http.client` connection."""
    url = urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port)
    total = pages * PAGE_SIZE
    records = 0
    started = time.perf_counter()
    for page in range(pages):
        conn.request("GET", f"/records?total={total}&limit={PAGE_SIZE}&cursor={page}")
        records += len(orjson.loads(conn.getresponse().read())["data"])
    seconds = time.perf_counter() - started
    conn.close()
    if records != total:
        raise AssertionError(f"expected {total} records, got {records}")
    return {
        "client": "http.client + orjson",
        "pages": pages,
        "records": records,
        "seconds": round(seconds, 3),
        "pages_per_s": round(pages / seconds),
        "records_per_s": round(records / seconds),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


async def _aiohttp_calls(base_url: str, calls: int, parallel: int, delay_ms: int) -> int:
    import aiohttp

    pending = iter(range(calls))
    done = 0
    connector = aiohttp.TCPConnector(limit=parallel)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal done
            for item in pending:
                url = f"{base_url}/items/{item}/records?delay_ms={delay_ms}"
                async with session.get(url) as response:
                    done += len(orjson.loads(await response.read())["data"]) > 0

        await asyncio.gather(*(worker() for _ in range(parallel)))
    return done


async def _raw_calls(base_url: str, calls: int, parallel: int, delay_ms: int) -> int:
    """The same loop on asyncio streams: one keep-alive connection per task."""
    url = urlsplit(base_url)
    pending = iter(range(calls))
    done = 0

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        for item in pending:
            target = f"/items/{item}/records?delay_ms={delay_ms}"
            writer.write(f"GET {target} HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            done += len(orjson.loads(await reader.readexactly(length))["data"]) > 0
        writer.close()

    await asyncio.gather(*(worker() for _ in range(parallel)))
    return done


def latency_capacity(base_url: str, calls: int, parallel: int, delay_ms: int) -> dict[str, Any]:
    try:
        import aiohttp  # noqa: F401

        client, run = "aiohttp", _aiohttp_calls
    except ImportError:
        client, run = "asyncio streams (aiohttp not installed)", _raw_calls
    started = time.perf_counter()
    done = asyncio.run(run(base_url, calls, parallel, delay_ms))
    seconds = time.perf_counter() - started
    if done != calls:
        raise AssertionError(f"expected {calls} calls, got {done}")
    ideal_s = calls * delay_ms / 1000 / parallel
    return {
        "client": client,
        "calls": calls,
        "parallel": parallel,
        "delay_ms": delay_ms,
        "seconds": round(seconds, 3),
        "calls_per_s": round(calls / seconds, 1),
        "ideal_s": round(ideal_s, 3),
        "ratio_to_ideal": round(seconds / ideal_s, 3) if ideal_s else None,
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench.capacity case")
    parser.add_argument("kind", choices=["pages", "latency"])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--pages", type=int, default=2_000)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--parallel", type=int, default=50)
    parser.add_argument("--delay-ms", type=int, default=20)
    args = parser.parse_args(argv[1:] if argv[:1] == ["case"] else argv)
    if args.kind == "pages":
        emit_result(page_capacity(args.base_url, args.pages))
    else:
        emit_result(latency_capacity(args.base_url, args.calls, args.parallel, args.delay_ms))


if __name__ == "__main__":
    main()
