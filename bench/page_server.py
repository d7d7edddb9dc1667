"""A fast HTTP/1.1 server on 127.0.0.1 for the benchmarks: cursor pages of JSON records.

Raw asyncio (on uvloop when it is installed), keep-alive, GET only; bodies are a
pre-rendered record template filled with `bytes %`, so one page costs tens of
microseconds and the server is not what a benchmark measures (see
../shared/notes/performance-limits.md: ~6,400 pages/s for such a server).

Routes:
- `GET /records?total=N&limit=L&cursor=K`: page K (0-based, no cursor = 0) of N records,
  L per page; `{"data": [...], "meta": {"nextCursor": "K+1" | null}}`.
- `GET /items/{item}/records[?delay_ms=D]`: one page of `ITEM_RECORDS` records of that
  item, `nextCursor` null (the forEach benchmark); sent D ms late when asked, to stand in
  for a remote service's latency (the wait costs the server nothing).

Run it as `python -m bench.page_server [--port 0]`: it prints `PORT <n>` once listening
and serves until SIGTERM / SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import cast
from urllib.parse import parse_qsl

ITEM_RECORDS = 5
MAX_LIMIT = 1_000

# One record is ~180 bytes of JSON with strings, integers, a float, a boolean and a
# timestamp; the first %d makes the id unique, the others vary the values.
RECORD = (
    b'{"id":"rec-%09d","seq":%d,"customer":"customer-%04d","amountCents":%d,'
    b'"price":%d.%02d,"active":%s,"createdAt":"2026-01-%02dT10:20:30Z",'
    b'"note":"lorem ipsum dolor sit amet"}'
)
_BOOLS = (b"true", b"false")


def render_record(n: int) -> bytes:
    return RECORD % (
        n,
        n,
        n % 10_000,
        (n * 7919) % 1_000_000,
        n % 500,
        n % 100,
        _BOOLS[n % 3 == 0],
        n % 28 + 1,
    )


def render_page(first: int, count: int, next_cursor: str | None) -> bytes:
    records = b",".join([render_record(n) for n in range(first, first + count)])
    cursor = b"null" if next_cursor is None else b'"' + next_cursor.encode() + b'"'
    return b'{"data":[' + records + b'],"meta":{"nextCursor":' + cursor + b"}}"


def records_page(query: dict[str, str]) -> bytes:
    total = int(query.get("total", "1000"))
    limit = min(int(query.get("limit", "100")), MAX_LIMIT)
    page = int(query.get("cursor") or 0)
    first = page * limit
    count = max(0, min(limit, total - first))
    following = str(page + 1) if first + count < total else None
    return render_page(first, count, following)


def item_page(item: str) -> bytes:
    base = int(item) * ITEM_RECORDS if item.isdigit() else 0
    return render_page(base, ITEM_RECORDS, None)


def respond(target: bytes) -> tuple[bytes, float]:
    """The response to a request target, and how many seconds to hold it back."""
    path, _, raw_query = target.decode("latin-1").partition("?")
    query = dict(parse_qsl(raw_query))
    parts = path.strip("/").split("/")
    try:
        if parts == ["records"]:
            return _response(200, records_page(query)), 0.0
        if len(parts) == 3 and parts[0] == "items" and parts[2] == "records":
            delay_s = int(query.get("delay_ms", "0")) / 1000
            return _response(200, item_page(parts[1])), delay_s
    except ValueError as exc:
        return _response(400, b'{"error":"' + str(exc).encode()[:100] + b'"}'), 0.0
    return _response(404, b'{"error":"not found"}'), 0.0


def _response(status: int, body: bytes) -> bytes:
    reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}[status]
    head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    return head % (status, reason, len(body)) + body


class _Http(asyncio.Protocol):
    """Keep-alive HTTP/1.1 for GET requests without bodies (all our clients send)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            request_line = head.split(b"\r\n", 1)[0].split(b" ")
            if len(request_line) != 3 or request_line[0] != b"GET":
                self.transport.write(_response(400, b'{"error":"GET only"}'))
                self.transport.close()
                return
            response, delay_s = respond(request_line[1])
            if delay_s > 0:
                # Clients send one request at a time per connection, so order holds.
                loop = asyncio.get_running_loop()
                loop.call_later(delay_s, self._write_late, response)
            else:
                self.transport.write(response)

    def _write_late(self, response: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(response)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Http, "127.0.0.1", port, backlog=256)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.page_server")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.port))
    else:
        uvloop.run(serve(args.port))
    sys.exit(0)


if __name__ == "__main__":
    main()
