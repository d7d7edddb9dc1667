"""Routes of the test HTTP server that stretch the client's limits (slow or huge bodies).

Their replies are `Streamed` bodies, which `send_streamed` writes piece by piece on the
handler's socket, so the server never holds a whole huge body and can trickle one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

PIECE = 64 * 1024


@dataclass(frozen=True)
class Streamed:
    """A body sent in pieces.

    `chunks` go out with `pause_s` after each: with a Content-Length of `length`, or
    chunked when `length` is None. `trickle_headers_s` > 0 sends the header block one
    byte at a time over that many seconds instead of at once.
    """

    chunks: Iterable[bytes]
    length: int | None = None
    pause_s: float = 0.0
    trickle_headers_s: float = 0.0


def send_streamed(wfile: BinaryIO, status: int, body: Streamed) -> None:
    """Write the status line, headers and `body`; a client that hangs up ends it quietly."""
    framing = (
        f"Content-Length: {body.length}"
        if body.length is not None
        else "Transfer-Encoding: chunked"
    )
    head = f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    try:
        _write_head(wfile, head.encode(), body.trickle_headers_s)
        for chunk in body.chunks:
            if body.length is None:
                chunk = b"%x\r\n%s\r\n" % (len(chunk), chunk)
            wfile.write(chunk)
            if body.pause_s:
                time.sleep(body.pause_s)
        if body.length is None:
            wfile.write(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up, as the limit tests expect


def _write_head(wfile: BinaryIO, head: bytes, trickle_s: float) -> None:
    if trickle_s <= 0:
        wfile.write(head)
        return
    for i in range(len(head)):
        wfile.write(head[i : i + 1])
        time.sleep(trickle_s / len(head))


def trickle(app: Any, req: Any, q: dict[str, str]) -> tuple[int, Streamed, dict[str, str]]:
    """`/trickle?bytes=&seconds=&in=`: a small JSON body spread over `seconds`."""
    size, seconds = int(q.get("bytes", 66)), float(q.get("seconds", "1"))
    data = padded_json(size)
    if q.get("in") == "headers":
        return 200, Streamed([data], size, trickle_headers_s=seconds), {}
    pieces = [data[i : i + 1] for i in range(size)]
    return 200, Streamed(pieces, size, pause_s=seconds / size), {}


def huge(app: Any, req: Any, q: dict[str, str]) -> tuple[int, Streamed, dict[str, str]]:
    """`/huge?bytes=&length=`: a JSON body of `bytes` bytes, chunked when `length=0`."""
    size = int(q.get("bytes", 50 * 2**20))
    return 200, Streamed(_huge_pieces(size), size if q.get("length") != "0" else None), {}


def _huge_pieces(size: int) -> Iterator[bytes]:
    filler = b"x" * PIECE  # one buffer sent again and again: the server holds no body
    yield b'{"pad": "'
    left = size - len(b'{"pad": ""}')
    while left > 0:
        yield filler[: min(PIECE, left)]
        left -= PIECE
    yield b'"}'


def padded_json(size: int) -> bytes:
    """`{"pad": "xxx..."}` of exactly `size` bytes (at least 11)."""
    return b'{"pad": "' + b"x" * (size - 11) + b'"}'
