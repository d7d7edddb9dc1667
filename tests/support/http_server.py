"""A small real HTTP server on 127.0.0.1 for the service client's tests.

`LocalHTTPServer` is a stdlib `ThreadingHTTPServer` on a free port, run in a thread; use
it as a context manager (`with LocalHTTPServer() as server: server.url`). It serves a
fixed list of records (`{"id": i, "name": "r<i>"}`) through one route per pagination
style, plus routes that misbehave, and records what it saw (every request, the most
requests in flight at once, POST bodies).

Routes (GET unless said; the auth and responseActions routes are in
`tests.support.http_auth_routes`):
    /cursor?cursor=&limit=           {"items", "next": {"cursor"}}; cursor null at the end
    /cursor-has-more?starting_after=&limit=
                                     {"data", "has_more", "last_id"} (Stripe style)
    /pages?page=&per_page=           {"results"}; empty past the end
    /offset?offset=&limit=           {"rows"}; empty past the end
    /link?page=&per_page=&split=     a bare array; `Link` with prev/next/last (relative
                                     URLs, quoted rels); `split=1` sends one header per link
    /next-url?page=&per_page=&absolute=
                                     {"records", "paging": {"next"}}; relative by default
    /flaky?id=&fail=&status=         `status` (500) for the first `fail` calls of `id`
    /ratelimited?id=&retry_after=    429 with Retry-After on the first call of `id`
    /slow?delay=                     sleeps `delay` seconds
    /concurrent?delay=&n=            sleeps, then {"n"}: for the in-flight counter
    /bad-json                        200 with a body that is not JSON
    /cursor-loop                     the same cursor forever
    /foreign-next                    a next URL on another host
    /status/<code>                   that status, a JSON body
    /leaky?status=&pad=              `status` (403) echoing the Authorization header it
                                     received after `pad` characters of padding
    /trickle?bytes=&seconds=&in=     a JSON body of `bytes` bytes sent one byte at a time over
                                     `seconds`; `in=headers` trickles the header block instead
    /huge?bytes=&length=             a JSON body of `bytes` bytes in 64 KiB pieces, never held
                                     whole; Content-Length unless `length=0` (then chunked)
    /redirect                        302 to /echo/redirected
    /me                              the user of a bearer token in `user_tokens`, else 401
    /protected                       401 unless `required_headers` all match
    /echo/<anything>                 {"method", "path", "query", "body"}; `path` and the
                                     request log keep the raw (still percent-encoded) path
    POST /messages                   records the JSON body; {"id": <n>}
    /fragile-pages?page=&per_page=&id=&fail_from=&failures=&status=&stall_at=&stall_s=&item=
                                     `/pages` with faults: from page `fail_from` on, the first
                                     `failures` requests of `id` get `status` (500); the first
                                     request of page `stall_at` waits `stall_s` seconds (a
                                     page in flight when a test kills the client); records
                                     carry `item` when given (a forEach of paginated calls)
    POST /charges                    {"invoice", "amount"}: records a charge, 201 with it; an
                                     `Idempotency-Key` seen before gets the same charge back,
                                     nothing new; `server.charges.misbehave(invoice, ...)` makes
                                     the first charge of an invoice stall, fail or drop the
                                     connection *after* it was applied
    GET /charges?invoice=            {"charges": [...]} of that invoice (all without it)
    GET /jobs/status?id=&done_after=&done_after_s=
                                     an asynchronous job: {"job": {"id", "status", "calls"},
                                     "items": [{"id", "status"}]}; status "pending" until the
                                     `done_after`-th call of `id` (default 3), or until
                                     `done_after_s` seconds after its first call; then "done"
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from tests.support.http_auth_routes import AUTH_ROUTES, AuthBook
from tests.support.http_streams import Streamed, huge, send_streamed, trickle

JsonReply = tuple[int, Any, dict[str, str] | list[tuple[str, str]]]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    # When the server read it (wall clock): the witness of rate limits across processes.
    at: float = field(default_factory=time.time)


@dataclass
class ServerState:
    """What the server saw; all access under `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[RecordedRequest] = field(default_factory=list)
    hits: dict[str, int] = field(default_factory=dict)
    posted: list[Any] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0


class LocalHTTPServer:
    """The test server. `url` is its origin, `state` what it saw.

    Args:
        total_records: how many records the pagination routes serve.
        user_tokens: bearer token -> user id, for `/me`.
        required_headers: header -> exact value, for `/protected`.
    """

    def __init__(
        self,
        total_records: int = 23,
        user_tokens: Mapping[str, str] | None = None,
        required_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.records = [{"id": i, "name": f"r{i}"} for i in range(total_records)]
        self.user_tokens = dict(user_tokens or {})
        self.required_headers = {k.lower(): v for k, v in (required_headers or {}).items()}
        self.state = ServerState()
        # Set by a test to make chosen requests fail with 400 (a failure that is not
        # retried), e.g. one page of a pagination, until it is set back to None.
        self.fail_when: Callable[[RecordedRequest, dict[str, str]], bool] | None = None
        self.charges = ChargeBook()
        self.auth = AuthBook()  # credentials of the auth routes (http_auth_routes)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.app = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> LocalHTTPServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self.state.lock:
            return [r for r in self.state.requests if r.path == path]

    def hit(self, key: str) -> int:
        """Count one call for `key` and return the count so far (1 for the first)."""
        with self.state.lock:
            self.state.hits[key] = self.state.hits.get(key, 0) + 1
            return self.state.hits[key]

    def page(self, start: int, size: int) -> list[dict[str, Any]]:
        return self.records[max(start, 0) : max(start, 0) + size]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs do
    timeout = 10  # an idle keep-alive connection's thread ends after this
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet test output

    @property
    def app(self) -> LocalHTTPServer:
        return self.server.app  # type: ignore[attr-defined]

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        recorded = RecordedRequest(
            self.command,
            parts.path,
            parse_qs(parts.query),
            {k.lower(): v for k, v in self.headers.items()},
            body,
        )
        state = self.app.state
        with state.lock:
            state.requests.append(recorded)
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            reply = _route(self.app, recorded, query)
        finally:
            # Before the reply leaves: a client that has its response sees the count
            # without this request (after the write, a test could read it first).
            with state.lock:
                state.in_flight -= 1
        self._reply(*reply)

    def _reply(self, status: int, payload: Any, headers: Any) -> None:
        if payload is DROP:
            self.close_connection = True  # hang up without a word, as a crashing proxy does
            return
        if isinstance(payload, Streamed):
            self.close_connection = True  # the client may stop reading half-way
            send_streamed(self.wfile, status, payload)
            return
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items() if isinstance(headers, dict) else headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a timeout test)


Route = Callable[[LocalHTTPServer, RecordedRequest, dict[str, str]], JsonReply]


def _route(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    if app.fail_when is not None and app.fail_when(req, q):
        return 400, {"error": "failing on purpose", "path": req.path, "query": q}, {}
    if req.path.startswith("/echo/"):
        return _echo(app, req, q)
    if req.path.startswith("/status/"):
        code = int(req.path.rsplit("/", 1)[1])
        return code, {"error": f"status {code}", "path": req.path}, {}
    handler = _ROUTES.get((req.method, req.path))
    if handler is None:
        return 404, {"error": "no such route", "path": req.path}, {}
    return handler(app, req, q)


def _int(q: dict[str, str], name: str, default: int) -> int:
    return int(q.get(name, default))


def _cursor(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    start, size = int(q.get("cursor") or 0), _int(q, "limit", 5)
    end = start + size
    following = str(end) if end < len(app.records) else None
    return 200, {"items": app.page(start, size), "next": {"cursor": following}}, {}


def _cursor_has_more(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    after, size = q.get("starting_after"), _int(q, "limit", 5)
    start = int(after) + 1 if after is not None else 0
    records = app.page(start, size)
    last_id = records[-1]["id"] if records else None
    has_more = start + size < len(app.records)
    return 200, {"data": records, "has_more": has_more, "last_id": last_id}, {}


def _pages(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    page, size = _int(q, "page", 1), _int(q, "per_page", 5)
    return 200, {"results": app.page((page - 1) * size, size)}, {}


def _offset(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    return 200, {"rows": app.page(_int(q, "offset", 0), _int(q, "limit", 5))}, {}


def _link(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    page, size = _int(q, "page", 1), _int(q, "per_page", 5)
    last = max(1, -(-len(app.records) // size))
    links = []
    if page > 1:
        # A title quoting `rel="next"` (and a comma) trips parsers that search for the text.
        prev = f"link?page={page - 1}&per_page={size}"
        links.append(f'<{prev}>; title="not rel=\\"next\\", really"; rel="prev"')
    if page < last:
        links.append(f'</link?page={page + 1}&per_page={size}>; rel="next"')
    links.append(f"<{app.url}/link?page={last}&per_page={size}>; rel=last")
    split = q.get("split") == "1"
    headers = [("Link", v) for v in links] if split else [("Link", ", ".join(links))]
    return 200, app.page((page - 1) * size, size), headers


def _next_url(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    page, size = _int(q, "page", 1), _int(q, "per_page", 5)
    following = None
    if page * size < len(app.records):
        origin = app.url if q.get("absolute") == "1" else ""
        following = f"{origin}/next-url?page={page + 1}&per_page={size}"
        following += f"&absolute={q.get('absolute', '0')}"
    body = {"records": app.page((page - 1) * size, size), "paging": {"next": following}}
    return 200, body, {}


def _flaky(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    calls = app.hit(f"flaky:{q.get('id')}")
    if calls <= _int(q, "fail", 1):
        return _int(q, "status", 500), {"error": "try again", "call": calls}, {}
    return 200, {"id": q.get("id"), "calls": calls}, {}


def _ratelimited(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    calls = app.hit(f"ratelimited:{q.get('id')}")
    if calls == 1:
        return 429, {"error": "slow down"}, {"Retry-After": q.get("retry_after", "1")}
    return 200, {"id": q.get("id"), "calls": calls}, {}


def _slow(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    time.sleep(float(q.get("delay", "1")))
    return 200, {"ok": True}, {}


def _concurrent(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    time.sleep(float(q.get("delay", "0.05")))
    return 200, {"n": q.get("n")}, {}


def _bad_json(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    return 200, b'{"items": [1, 2,, oops', {}


def _cursor_loop(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    return 200, {"items": [{"id": 1}], "next": {"cursor": "same"}}, {}


def _foreign_next(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    body = {"records": [{"id": 1}], "paging": {"next": "http://elsewhere.invalid/steal"}}
    return 200, body, {}


def _leaky(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    pad = "x" * _int(q, "pad", 0)
    error = f"{pad}bad credentials: {req.headers.get('authorization')}"
    return _int(q, "status", 403), {"error": error}, {}


def _redirect(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    return 302, {"moved": True}, {"Location": f"{app.url}/echo/redirected"}


def _me(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    auth = req.headers.get("authorization", "")
    user = app.user_tokens.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
    if user is None:
        return 401, {"error": "unknown token"}, {}
    return 200, {"user": user, "item": q.get("item")}, {}


def _protected(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    if any(req.headers.get(k) != v for k, v in app.required_headers.items()):
        return 401, {"error": "missing or wrong credentials"}, {}
    return 200, {"ok": True}, {}


def _messages(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    payload = orjson.loads(req.body) if req.body else None
    with app.state.lock:
        app.state.posted.append(payload)
        number = len(app.state.posted)
    return 201, {"id": number}, {}


def _echo(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    body = orjson.loads(req.body) if req.body else None
    return 200, {"method": req.method, "path": req.path, "query": req.query, "body": body}, {}


_ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/cursor"): _cursor,
    ("GET", "/cursor-has-more"): _cursor_has_more,
    ("GET", "/pages"): _pages,
    ("GET", "/offset"): _offset,
    ("GET", "/link"): _link,
    ("GET", "/next-url"): _next_url,
    ("GET", "/flaky"): _flaky,
    ("GET", "/ratelimited"): _ratelimited,
    ("GET", "/slow"): _slow,
    ("GET", "/concurrent"): _concurrent,
    ("GET", "/bad-json"): _bad_json,
    ("GET", "/cursor-loop"): _cursor_loop,
    ("GET", "/foreign-next"): _foreign_next,
    ("GET", "/leaky"): _leaky,
    ("GET", "/trickle"): trickle,
    ("GET", "/huge"): huge,
    ("GET", "/redirect"): _redirect,
    ("GET", "/me"): _me,
    ("GET", "/protected"): _protected,
    ("POST", "/messages"): _messages,
}


# --- checkpoint faults (page checkpoints and step retries) ------------------------------


def _fragile_pages(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    page, size, key = _int(q, "page", 1), _int(q, "per_page", 5), q.get("id", "")
    if page >= _int(q, "fail_from", 0) > 0:
        failed = app.hit(f"fragile-fail:{key}")
        if failed <= _int(q, "failures", 1):
            return _int(q, "status", 500), {"error": "failing page", "page": page}, {}
    if page == _int(q, "stall_at", 0) and app.hit(f"fragile-stall:{key}") == 1:
        time.sleep(float(q.get("stall_s", "30")))
    records = app.page((page - 1) * size, size)
    if "item" in q:
        records = [{**record, "item": q["item"]} for record in records]
    return 200, {"results": records, "page": page}, {}


_ROUTES[("GET", "/fragile-pages")] = _fragile_pages


# --- charges: a mutation API for exactly-once tests (SPEC 5.5) --------------------------

DROP = object()  # a reply that closes the connection without sending anything


@dataclass(frozen=True)
class Fault:
    """What the first charge of an invoice does after it was applied."""

    stall_s: float = 0.0
    status: int | None = None
    drop: bool = False


@dataclass
class ChargeBook:
    """The charges the server applied, per invoice, and the Idempotency-Keys it has seen."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    charges: list[dict[str, Any]] = field(default_factory=list)
    by_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: dict[str, Fault] = field(default_factory=dict)

    def misbehave(
        self, invoice: str, *, stall_s: float = 0.0, status: int | None = None, drop: bool = False
    ) -> None:
        """The next charge of `invoice` is applied, then stalls `stall_s` seconds, then
        answers `status` (default 201) or, with `drop`, closes the connection unanswered."""
        with self.lock:
            self.faults[invoice] = Fault(stall_s, status, drop)

    def of(self, invoice: str) -> list[dict[str, Any]]:
        with self.lock:
            return [c for c in self.charges if c["invoice"] == invoice]

    def per_invoice(self) -> dict[str, int]:
        with self.lock:
            counts: dict[str, int] = {}
            for charge in self.charges:
                counts[charge["invoice"]] = counts.get(charge["invoice"], 0) + 1
            return counts

    def apply(self, body: dict[str, Any], key: str | None) -> tuple[dict[str, Any], Fault | None]:
        """The charge for `body` (the earlier one for a known key) and its fault, if any."""
        with self.lock:
            if key is not None and key in self.by_key:
                return self.by_key[key], None
            invoice = str(body.get("invoice"))
            charge = {"id": len(self.charges) + 1, "invoice": invoice, "amount": body.get("amount")}
            self.charges.append(charge)
            if key is not None:
                self.by_key[key] = charge
            return charge, self.faults.pop(invoice, None)


def _post_charge(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    body = orjson.loads(req.body) if req.body else {}
    charge, fault = app.charges.apply(body, req.headers.get("idempotency-key"))
    if fault is None:
        return 201, charge, {}
    time.sleep(fault.stall_s)  # the charge is applied already: the client may give up now
    if fault.drop:
        return 0, DROP, {}
    return fault.status or 201, charge if fault.status is None else {"error": "oops"}, {}


def _list_charges(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    invoice = q.get("invoice")
    with app.charges.lock:
        listed = [c for c in app.charges.charges if invoice is None or c["invoice"] == invoice]
    return 200, {"charges": listed}, {}


_ROUTES[("POST", "/charges")] = _post_charge
_ROUTES[("GET", "/charges")] = _list_charges


# --- an asynchronous job whose status flips (polling waits, wait.poll) -----------------


def _job_status(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    key = q.get("id", "")
    calls = app.hit(f"job:{key}")
    with app.state.lock:
        first = app.state.hits.setdefault(f"job-first:{key}", int(time.time() * 1000))
    if "done_after_s" in q:
        done = time.time() * 1000 - first >= float(q["done_after_s"]) * 1000
    else:
        done = calls >= _int(q, "done_after", 3)
    status = "done" if done else "pending"
    return 200, {"job": {"id": key, "status": status, "calls": calls},
                 "items": [{"id": key, "status": status}]}, {}  # fmt: skip


_ROUTES[("GET", "/jobs/status")] = _job_status
_ROUTES.update(AUTH_ROUTES)  # tests.support.http_auth_routes
