"""Sending the requests of a service call: retries, a total deadline and a body size cap.

Internal to `resources.service`. Both drivers send through `send`: the forEach loop
awaits it on its own event loop (`resources.service_foreach`), and `BlockingSender` runs
it for `iter_pages` on a private event loop (`BlockingSender`). The blocking path
uses asyncio too because a client's own timeouts bound each connect, write and read on its
own: a server trickling one byte a second never trips them. `asyncio.timeout` bounds the
whole attempt (connect, send, headers and the whole body), and one code path keeps both
drivers' rules equal.

The client is aiohttp's: httpx's async connection pool costs several times more CPU per
request, and degrades sharply with many connections in flight (at 50 it was 11x slower
than aiohttp on 2 cores; ../shared/notes/performance-limits.md). Its failures are
turned into the matching httpx exceptions (`_as_httpx`), so the messages, the retry
rules and `surely_not_taken` speak one vocabulary (`ConnectError`, `ReadError`, ...).
Cookies are not kept between requests, and proxy variables are not read.

The event loops are uvloop's when it is installed (it is a dependency on Linux and
macOS): its sockets and transports are written in C, which takes about a quarter off the
CPU of each request (bench/, issue 8 P2). A paginated call on the main thread is the
exception (`BlockingSender`). `WORKFLOWS_EVENT_LOOP=asyncio` keeps the standard loop.

Limits of one attempt (documented in docs/security.md):
- `timeoutSeconds` is its total deadline. An overrun is a timeout, retryable as SPEC 5.5
  says of timeouts.
- `maxResponseBytes` caps the (decoded) body of a successful response: Content-Length is
  checked up front and the body is read in pieces with a running count, so at most the
  cap is held. Passing it fails at once, without a retry: the same request would return
  the same body. Error responses are read only up to `ERROR_BODY_BYTES`, for the excerpt.

Mutations (SPEC 5.5): `surely_not_taken` says which failed attempts the server surely did
not act on; any other failure of a mutation is retried only when guarded (an idempotency
key, or the preExecute `check`, which `send` asks again before the retry).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import itertools
import os
import ssl
import threading
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import aiohttp
import httpx
import yarl

if TYPE_CHECKING:
    from resources.service import CallRequest, CallStats
    from resources.service_http import PageLoop, Session

T = TypeVar("T")

ERROR_BODY_BYTES = 64 * 1024
# Answers that say the request was refused before it was acted on (SPEC 5.5); a 401
# is refused credentials, which the OAuth2 auth cures by fetching a new token.
NOT_TAKEN_STATUSES = frozenset({401, 429, 503})
# Failures before a byte of the request left: no connection was made, or none was free.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class Prepared:
    """A request as built by the page loop; `resources.service_auth.Auth.authorize` adds
    the credentials to each attempt."""

    method: str
    url: str  # fully encoded, sent as it is; may hold secrets (show `redact_url(url)`)
    body: bytes | None
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Reply:
    """A response read within the limits: status, headers and the decoded body.

    `truncated`: only the start of an error response's body was read.
    """

    status_code: int
    headers: Mapping[str, str]  # case-insensitive (aiohttp's, or httpx.Headers)
    content: bytes
    encoding: str = "utf-8"
    truncated: bool = False

    @property
    def text(self) -> str:
        return self.content.decode(self.encoding, errors="replace")


@dataclass(frozen=True)
class Found:
    """The call's result came from its preExecute `check`, asked again before a retry:
    the failed attempt had taken effect, so nothing more is sent."""

    records: list[dict[str, Any]]


def surely_not_taken(outcome: Reply | Exception) -> bool:
    """Whether the server surely did not act on a failed attempt, so that a mutation may
    be sent again unguarded: a refused (or never made) connection, a 429 or a 503.

    A timeout, a 500/502/504, or a connection reset after the request was sent may have
    taken effect: the server may have applied it and failed (or stalled) afterwards.
    """
    if isinstance(outcome, Reply):
        return outcome.status_code in NOT_TAKEN_STATUSES
    return isinstance(outcome, (*_NOT_SENT, TokenRequestFailed))


NOT_RETRIED = (
    "not retried: the operation is a mutation and this attempt may have taken effect (only "
    "a refused connection, 429 or 503 surely did not); declare `idempotencyHeader` on the "
    "operation or give the step a `preExecute` check to make its retries safe"
)
# How a retry of a failed attempt is made safe (SPEC 5.5); None: it cannot be.
Guard = Literal["safe", "key", "check"] | None


def retry_guard(request: CallRequest, outcome: Reply | Exception) -> Guard:
    """What makes a retry after `outcome` safe: "safe" (not a mutation, or the attempt
    surely did not take effect), "key" (the idempotency key goes with it), "check"
    (preExecute is asked first), or None: a mutation that may have taken effect."""
    if not request.operation.mutation or surely_not_taken(outcome):
        return "safe"
    if request.operation.idempotency_header and request.idempotency_key:
        return "key"
    return "check" if request.check is not None else None


class DeadlineExceeded(Exception):
    """An attempt did not complete within `timeoutSeconds` (retryable, as a timeout)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            f"no complete response within timeoutSeconds={timeout_s:g} "
            "(the deadline of one request: connect, send and the whole body)"
        )


class TokenRequestFailed(Exception):
    """The OAuth2 token could not be had, so the request was not sent; `retryable` as
    the token endpoint's failure would be (a timeout, 429, 5xx)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class BodyTooLarge(Exception):
    """A response body passed `maxResponseBytes` (final, never retried)."""

    def __init__(self, cap: int, status: int, seen: str) -> None:
        super().__init__(
            f"the response body is larger than maxResponseBytes={cap} ({cap / 2**20:g} MiB); {seen}"
        )
        self.status = status


def new_client(session: Session, parallel: int = 1) -> aiohttp.ClientSession:
    """The client of one call or forEach: at most `parallel` connections, kept alive.

    The deadline is `attempt_once`'s; aiohttp's own total timeout (5 minutes by default)
    is switched off, and its connect timeout names a slow connect as such."""
    connector = aiohttp.TCPConnector(limit=parallel, limit_per_host=0, ssl=_ssl_context())
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=session.timeout_s),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=True,
        trust_env=False,
    )


def new_event_loop() -> asyncio.AbstractEventLoop:
    """An event loop for service calls: uvloop's when installed (module docstring)."""
    if os.environ.get("WORKFLOWS_EVENT_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """The certificates httpx verified with (certifi's, or SSL_CERT_FILE / SSL_CERT_DIR),
    loaded once per process: reading them takes tens of milliseconds."""
    return httpx.create_ssl_context()


async def send(client: aiohttp.ClientSession, loop: PageLoop, stats: CallStats) -> Reply | Found:
    """Send `loop.pending` with the rate limits, the limits and the retries of SPEC 5.5.

    Before retrying a mutation guarded by its preExecute, the check is asked again (on a
    thread: it makes blocking calls); records it finds end the call as `Found`.
    """
    prepared = loop.pending
    assert prepared is not None
    for attempt in itertools.count(1):
        for limiter in loop.session.limiters:
            await limiter.acquire_async()  # waiting for our own rate limit is not the server's
        stats.requests += 1
        outcome = await loop.authorized_attempt(client, prepared)
        delay = loop.check(outcome, attempt)
        if delay is None:
            assert isinstance(outcome, Reply)
            return outcome
        stats.retries += 1
        await asyncio.sleep(delay)
        check = loop.request.check
        if check is not None and loop.guard(outcome) == "check":
            found = await asyncio.to_thread(check)
            if found:
                return Found(found)
    raise AssertionError("unreachable")


async def attempt_once(
    client: aiohttp.ClientSession, prepared: Prepared, session: Session
) -> Reply | Exception:
    """One attempt within the deadline and the size cap; a failure is returned, not raised."""
    try:
        async with asyncio.timeout(session.timeout_s):
            async with client.request(
                prepared.method,
                # Sent as it is: the path segments are encoded already (`path_segment`).
                yarl.URL(str(prepared.url), encoded=True),
                data=prepared.body,
                headers=prepared.headers,
                allow_redirects=False,
            ) as response:
                return await _read(response, session.max_response_bytes)
    except aiohttp.ClientError as exc:  # before TimeoutError: some of them are timeouts too
        return _as_httpx(exc)
    except TimeoutError:  # asyncio's deadline
        return DeadlineExceeded(session.timeout_s)
    except BodyTooLarge as exc:
        return exc


_PROTOCOL_ERRORS = (
    aiohttp.ClientPayloadError,
    aiohttp.ClientResponseError,
    aiohttp.ServerDisconnectedError,
)


def _as_httpx(exc: aiohttp.ClientError) -> Exception:
    """An aiohttp failure as the httpx exception that means the same (module docstring)."""
    text = str(exc) or type(exc).__name__
    kind: type[Exception]
    if isinstance(exc, aiohttp.ClientConnectorError):
        kind = httpx.ConnectError  # no connection was made: nothing was sent
    elif isinstance(exc, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout
    elif isinstance(exc, aiohttp.ServerTimeoutError):
        kind = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.NonHttpUrlClientError):
        kind = httpx.UnsupportedProtocol
    elif isinstance(exc, aiohttp.InvalidURL):
        kind = httpx.InvalidURL
    elif isinstance(exc, _PROTOCOL_ERRORS):  # a broken or incomplete response
        kind = httpx.RemoteProtocolError
    else:
        kind = httpx.ReadError  # a connection reset or another failure after the send
    converted = kind(text)
    converted.__cause__ = exc
    return converted


async def _read(response: aiohttp.ClientResponse, cap: int) -> Reply:
    status = response.status
    if status >= 300:
        limit = ERROR_BODY_BYTES
    else:
        limit = cap
        declared = response.headers.get("content-length", "")
        # With a Content-Encoding the length is the encoded one: the running count decides.
        encoded = response.headers.get("content-encoding", "identity") != "identity"
        if declared.isdigit() and not encoded:
            if int(declared) > cap:
                raise BodyTooLarge(cap, status, f"Content-Length says {declared}")
            # aiohttp reads exactly Content-Length bytes: within the cap, in one call.
            content = await response.read()
            return Reply(status, response.headers, content, _encoding(response.charset))
    chunks: list[bytes] = []
    size = 0
    truncated = False
    async for chunk in response.content.iter_any():  # decoded: a gzip bomb counts in full
        size += len(chunk)
        if size > limit:
            if status < 300:
                raise BodyTooLarge(cap, status, f"stopped reading after {size} bytes")
            chunks.append(chunk[: len(chunk) - (size - limit)])
            truncated = True
            break
        chunks.append(chunk)
    content = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return Reply(status, response.headers, content, _encoding(response.charset), truncated)


def _encoding(charset: str | None) -> str:
    """The body's text encoding: the declared charset when Python knows it, else UTF-8."""
    if charset:
        try:
            return codecs.lookup(charset).name
        except LookupError:
            pass
    return "utf-8"


class BlockingSender:
    """`send` for a blocking caller (`iter_pages`): a private event loop and client.

    The loop runs on the caller's thread while it sends: handing each page to a thread of
    its own cost two thread switches per page. A caller that is itself inside a running
    event loop (a forEach worker asking something of a service) cannot run a second loop
    on its thread, so for it the loop runs on a thread of its own. Use as a context
    manager; calling it sends `loop.pending` and returns the `Reply`.
    """

    def __init__(self, session: Session) -> None:
        self._service = session.service
        # The loop runs once per page. On the main thread uvloop re-arms its signal
        # handling at every run (a socketpair: 38 us against asyncio's 11 per page).
        on_main = threading.current_thread() is threading.main_thread()
        self._loop = asyncio.new_event_loop() if on_main else new_event_loop()
        self._thread: ThreadPoolExecutor | None = None
        try:
            self._client = self._run(_client_in_loop(session))
        except BaseException:
            self._close_loop()
            raise

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        if self._thread is None and not _loop_running():
            return self._loop.run_until_complete(work)
        if self._thread is None:
            name = f"http-{self._service}"
            self._thread = ThreadPoolExecutor(1, thread_name_prefix=name)
        return self._thread.submit(self._loop.run_until_complete, work).result()

    def __call__(
        self, loop: PageLoop, stats: CallStats, while_waiting: Callable[[], None] | None = None
    ) -> Reply | Found:
        if while_waiting is None:
            return self._run(send(self._client, loop, stats))
        return self._run(_send_meanwhile(send(self._client, loop, stats), while_waiting))

    def close(self) -> None:
        try:
            self._run(self._client.close())
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        try:
            pending = asyncio.all_tasks(self._loop)
            for task in pending:  # left by an interrupted send
                task.cancel()
            if pending:
                self._run(asyncio.wait(pending))
            self._run(self._loop.shutdown_asyncgens())
            self._run(self._loop.shutdown_default_executor())  # of a preExecute check
        finally:
            self._loop.close()
            if self._thread is not None:
                self._thread.shutdown()

    def __enter__(self) -> BlockingSender:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


async def _send_meanwhile(
    sending: Coroutine[Any, Any, Reply | Found], work: Callable[[], None]
) -> Reply | Found:
    """`sending`, with `work` done once the request has left (a task runs until its first
    real wait: on a kept-alive connection, after the request is written)."""
    task = asyncio.ensure_future(sending)
    await asyncio.sleep(0)
    try:
        work()
    except BaseException:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise
    return await task


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _client_in_loop(session: Session) -> aiohttp.ClientSession:
    """A client made inside the loop that will use it."""
    return new_client(session)
