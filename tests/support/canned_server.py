"""A real HTTP server on 127.0.0.1 that answers each path with a canned raw response.

For the hostile-input tests: each case states the exact status, headers and body bytes a
misbehaving service sends, and what the client must make of it. Unknown paths get 404.
Every request is recorded (method and raw path) so a test can see what went over the wire.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Canned:
    """One raw response: status, headers and body bytes (or text)."""

    status: int = 200
    body: bytes | str = b"[]"
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})

    def payload(self) -> bytes:
        return self.body.encode() if isinstance(self.body, str) else self.body


class CannedServer:
    """`with CannedServer({"/x": Canned(...)}) as server: server.url + "/x"`."""

    def __init__(self, responses: dict[str, Canned]) -> None:
        self.responses = dict(responses)
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"canned": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> CannedServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))


class _Handler(BaseHTTPRequestHandler):
    canned: CannedServer
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.canned.record(self.command, self.path)
        reply = self.canned.responses.get(self.path.split("?", 1)[0]) or Canned(404, b"{}")
        body = reply.payload()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass
