"""The HTTP client of one catalog service (SPEC 3.1, 5.1, 5.2, 5.5, 9).

`ServiceResource` is the Dagster resource; it knows nothing of workflow files. Its two
entry points share one page loop (`resources.service_http.PageLoop`, free of I/O):
`iter_pages` runs one call synchronously and streams its pages; `for_each` runs a call
per item with bounded concurrency on an asyncio loop of its own
(`resources.service_foreach`). This module holds the public request model.

Secrets: the resource's config holds only the *names* of environment variables; the
values are read when a call starts, registered with `resources.secrets`, and every
message leaving the client is passed through `redact`.

Choices the spec leaves open:
- Redirects are not followed (a 3xx is an error naming the target): following one to
  another host would hand it the credentials of a header auth.
- `Retry-After` is honoured up to 120 s; the wait is the longer of it and the backoff.
- Retries follow SPEC 5.5, except that a mutation (`Operation.mutation`) is sent again
  only when the failed attempt surely did not take effect (connection refused, 429, 503)
  or when the retry is guarded: the operation's `idempotency_header` carries the same
  `CallRequest.idempotency_key` on every attempt, or `CallRequest.check` (the step's
  preExecute) is asked again first and finds nothing. A timed-out POST is never sent
  blindly twice (`resources.service_transport.surely_not_taken`).
- forEach outcomes arrive in completion order, not input order; `ItemOutcome.key` says
  which item (the `item_key` column, else the item's position).
- An empty response body is no records (a 204 to a POST), not a JSON error.
- `timeout_seconds` is the total deadline of one attempt (connect, send, whole body),
  retried like any timeout; `max_response_bytes` caps a body, failing at once
  (`resources.service_transport`, docs/security.md).
- A path placeholder's value is always exactly one segment: `/`, `?`, `#` are
  percent-encoded and `.` / `..` become `%2E` / `%2E%2E`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from dagster import ConfigurableResource
from pydantic import Field

from resources.paginators import Paginator
from resources.rate_limit import RateLimiter
from resources.secrets import redact, redact_url
from resources.service_errors import ServiceCallError as ServiceCallError  # re-exported
from resources.service_limits import DEFAULT_MAX_RESPONSE_BYTES

if TYPE_CHECKING:
    from resources.service_foreach import ForEachRun


@dataclass(frozen=True)
class ResponseAction:
    """A rule of `responseActions` (SPEC 9, extension): a response with `status` (and,
    when given, `contains` in its body) is ignored (no records), retried or failed."""

    status: int
    action: Literal["ignore", "retry", "fail"]
    contains: str | None = None

    def matches(self, status: int, body: str) -> bool:
        return status == self.status and (self.contains is None or self.contains in body)


@dataclass(frozen=True)
class Operation:
    """One operation of the service catalog."""

    name: str
    method: str
    path: str
    mutation: bool = False
    # The header that carries `CallRequest.idempotency_key` (e.g. "Idempotency-Key").
    idempotency_header: str | None = None
    # Checked in order on every response before the default rules: the step's rules,
    # then the operation's, bound once when the job is built.
    response_actions: tuple[ResponseAction, ...] = ()


@dataclass
class CallRequest:
    """One call of an operation, possibly over many pages.

    `params` fill the `{placeholders}` of the path first; the rest go to the query string
    (GET, DELETE) or the JSON body (POST, PUT, PATCH). `user` switches the credentials to
    that user's token (runAsUser). `resume_from` is the `checkpoint` of a finished page:
    the call starts with the page after it (SPEC 5.5, resuming a paginated step).

    Exactly-once mutations (SPEC 5.5): `idempotency_key` is sent in the operation's
    `idempotency_header` on every attempt of the call. `check` is the step's preExecute:
    `for_each` asks it before each item's call, and both drivers ask it again before
    retrying a mutation whose attempt may have taken effect; records it returns are the
    call's result and nothing more is sent. `iter_pages` leaves the first ask to its
    caller (a step without forEach asks once, for the whole step).
    """

    operation: Operation
    params: dict[str, Any] = field(default_factory=dict)
    data_path: str | None = None
    paginator: Paginator | None = None
    max_retries: int = 3
    retry_delay_ms: int = 1000
    user: str | None = None
    resume_from: Mapping[str, Any] | None = None
    idempotency_key: str | None = None
    check: Callable[[], list[dict[str, Any]]] | None = field(default=None, repr=False)


def idempotency_key(lineage: str, step: str, item_key: Any = None) -> str:
    """The key of one call: the same for every attempt, step retry and re-execution of a
    run lineage, different for every step and item (SPEC 5.5)."""
    triple = json.dumps([lineage, step, item_key], default=str, sort_keys=True)
    return hashlib.sha256(triple.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Page:
    """The records of one response, in order.

    `checkpoint` (JSON-ready; None on the last page) lets a later call resume after this
    page: pass it as `CallRequest.resume_from`. It holds the pagination state and the
    next URL, never credentials.
    """

    number: int
    records: list[dict[str, Any]]
    # The URL as sent, which may hold secrets: show `url_redacted`. Masking it only when
    # asked saves a pass of every secret pattern per page.
    request_url: str = field(repr=False)
    checkpoint: dict[str, Any] | None = None

    @property
    def url_redacted(self) -> str:
        return redact_url(self.request_url)


@dataclass(frozen=True)
class ItemOutcome:
    """What one forEach item produced: its records, or the error that ended it.

    `found`: the records are the item's `check` (preExecute) result; no call was sent.
    """

    item: dict[str, Any]
    records: list[dict[str, Any]] | None
    error: str | None
    pages: int
    key: Any = None
    found: bool = False


@dataclass
class CallStats:
    """Counters of a call or a forEach, readable while it runs and after.

    `on_progress(stats)` is called in the caller's thread at most every
    `progress_interval_s` seconds while the work goes on.

    `note(level, text)` is the one way a line reaches the caller's log (`on_log`) from
    any thread: on the thread that started the work it is passed on at once; from another
    thread (the forEach loop, a preExecute check) it waits for the caller's next `tick`
    or `finish`, since a step's log (Dagster's `context.log`) is not safe to call from
    other threads. Without `on_log` the line goes to the `resources.service` logger.
    """

    pages: int = 0
    requests: int = 0
    retries: int = 0
    records: int = 0
    items: int = 0
    failed_items: int = 0
    duration_s: float = 0.0
    on_progress: Callable[[CallStats], None] | None = field(default=None, repr=False)
    progress_interval_s: float = 5.0
    on_log: Callable[[int, str], None] | None = field(default=None, repr=False)
    # The last page received: where a paginated call is (`Page.url_redacted`).
    last_page: Page | None = field(default=None, repr=False)
    _started: float = field(default=0.0, init=False, repr=False)
    _reported: float = field(default=0.0, init=False, repr=False)
    _owner: int | None = field(default=None, init=False, repr=False)
    _notes: deque[tuple[int, str]] = field(default_factory=deque, init=False, repr=False)

    def start(self) -> None:
        self._started = self._reported = time.monotonic()
        if self._owner is None:  # a second call of the same step keeps the first owner
            self._owner = threading.get_ident()

    def finish(self) -> None:
        """Fix `duration_s` at the end of the work and pass on the waiting lines."""
        self.duration_s = time.monotonic() - self._started
        self.flush()

    def tick(self) -> None:
        """Refresh `duration_s`, pass on the waiting lines, report progress when due."""
        now = time.monotonic()
        self.duration_s = now - self._started
        self.flush()
        if self.on_progress is not None and now - self._reported >= self.progress_interval_s:
            self._reported = now
            self.on_progress(self)

    def note(self, level: int, text: str) -> None:
        """A line for the caller's log, from any thread (see the class docstring)."""
        if self.on_log is None:
            logging.getLogger("resources.service").log(level, "%s", redact(text))
        elif threading.get_ident() == self._owner:
            self.flush()
            self.on_log(level, text)
        else:
            self._notes.append((level, text))  # deque appends are atomic

    def flush(self) -> None:
        """Pass on the lines other threads noted; only on the thread that started the work."""
        if self.on_log is None or threading.get_ident() != self._owner:
            return
        while self._notes:
            self.on_log(*self._notes.popleft())


class ServiceResource(ConfigurableResource):
    """An HTTP service of the catalog: base URL, auth, timeout and rate limit.

    Auth fields hold environment variable *names*; no secret value is ever part of the
    resource's config, so none shows in the Dagster UI.
    """

    service_name: str = Field(description="The catalog name of the service.")
    base_url: str = Field(
        description="Base URL; the variable SERVICE_<NAME>_BASE_URL overrides it at run time."
    )
    timeout_seconds: float = Field(
        default=30,
        description="Total deadline of one request attempt: connect, send and the whole body.",
    )
    max_response_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES,
        description="Largest response body read, in bytes; a larger one fails the call.",
    )
    auth_type: str = Field(
        default="none",
        description="none | bearer | header | basic | apiKeyQuery | oauth2ClientCredentials",
    )
    token_env: str | None = Field(default=None, description="Variable with the bearer token.")
    header_name: str | None = Field(
        default=None, description="Header name (auth `header`) or query parameter (`apiKeyQuery`)."
    )
    value_env: str | None = Field(
        default=None, description="Variable with the header value or the query key."
    )
    username_env: str | None = Field(default=None, description="Variable with the user name.")
    password_env: str | None = Field(default=None, description="Variable with the password.")
    user_tokens_env: str | None = Field(
        default=None, description="Variable with a JSON object user id -> token (runAsUser)."
    )
    token_url: str | None = Field(
        default=None, description="OAuth2 token endpoint: a URL, or a path under the base URL."
    )
    client_id_env: str | None = Field(default=None, description="Variable with the client id.")
    client_secret_env: str | None = Field(
        default=None, description="Variable with the OAuth2 client secret."
    )
    scopes: list[str] = Field(default_factory=list, description="OAuth2 scopes asked for.")
    requests_per_second: float | None = Field(default=None, description="Rate limit.")
    requests_per_minute: float | None = Field(default=None, description="Rate limit.")

    def resolved_base_url(self) -> str:
        """The base URL in force: `SERVICE_<NAME>_BASE_URL` when set, else `base_url`."""
        return (os.environ.get(base_url_variable(self.service_name)) or self.base_url).rstrip("/")

    def iter_pages(
        self, request: CallRequest, *, stats: CallStats | None = None
    ) -> Generator[Page, None, None]:
        """Run one call, yielding each page as it arrives (nothing is accumulated).

        Closing the generator early closes the connection.

        Raises:
            ServiceCallError: a non-retryable status, retries exhausted, bad JSON, no
                value at `data_path`, or a pagination error (loop, maxPages, origin).
        """
        from resources.service_http import PageLoop, Session  # import cycle
        from resources.service_transport import BlockingSender

        stats = stats if stats is not None else CallStats()
        session = Session.open(self)
        stats.start()
        try:
            with BlockingSender(session) as send:
                loop = PageLoop(session, request, item_label=None, stats=stats)
                while loop.pending is not None:
                    page = loop.handle(send(loop, stats))
                    stats.pages += 1
                    stats.records += len(page.records)
                    stats.last_page = page
                    stats.tick()
                    yield page
        finally:
            stats.finish()

    def for_each(
        self,
        items: Iterable[dict[str, Any]],
        build_request: Callable[[dict[str, Any]], CallRequest],
        *,
        parallel: int = 1,
        on_item_error: Literal["fail", "skip"] = "fail",
        item_key: str | None = None,
        rate_limit_per_second: float | None = None,
        stats: CallStats | None = None,
    ) -> Generator[ItemOutcome, None, None]:
        """Call once per item, at most `parallel` calls in flight; outcomes in completion order.

        `items` is consumed lazily (on the worker thread of the forEach loop), and at most
        about `2 * parallel` finished outcomes wait for the caller, so memory stays flat.
        With `on_item_error="fail"` the first failed item cancels the work in flight and
        raises `ServiceCallError`; with `"skip"` its outcome carries the error.

        Args:
            rate_limit_per_second: a limit of this forEach on top of the service's own.
        """
        return self._for_each_run(
            build_request, parallel, on_item_error, item_key, rate_limit_per_second, stats
        ).outcomes(items)

    def for_each_into(
        self,
        items: Iterable[dict[str, Any]],
        build_request: Callable[[dict[str, Any]], CallRequest],
        handle: Callable[[ItemOutcome], None],
        *,
        parallel: int = 1,
        on_item_error: Literal["fail", "skip"] = "fail",
        item_key: str | None = None,
        rate_limit_per_second: float | None = None,
        stats: CallStats | None = None,
    ) -> None:
        """`for_each`, with each outcome passed to `handle` as it finishes; returns when all
        items are done.

        `handle` runs on the thread of the forEach loop (one at a time), so the caller's
        work per item does not compete with the loop for the GIL; an exception it raises
        stops the forEach and is raised here. A failed item under `on_item_error="fail"`
        raises `ServiceCallError` without reaching `handle`.
        """
        run = self._for_each_run(
            build_request, parallel, on_item_error, item_key, rate_limit_per_second, stats
        )
        run.handle = handle
        for _ in run.outcomes(items):
            raise AssertionError("an outcome was queued instead of handled")

    def _for_each_run(
        self,
        build_request: Callable[[dict[str, Any]], CallRequest],
        parallel: int,
        on_item_error: Literal["fail", "skip"],
        item_key: str | None,
        rate_limit_per_second: float | None,
        stats: CallStats | None,
    ) -> ForEachRun:
        from resources.service_foreach import ForEachRun  # import cycle
        from resources.service_http import Session

        if not 1 <= parallel <= 50:
            raise ValueError(f"parallel must be between 1 and 50, got {parallel}")
        if on_item_error not in ("fail", "skip"):
            raise ValueError(f"on_item_error must be 'fail' or 'skip', got {on_item_error!r}")
        step_limiter = RateLimiter(rate_limit_per_second) if rate_limit_per_second else None
        return ForEachRun(
            session=Session.open(self, extra_limiter=step_limiter),
            build_request=build_request,
            parallel=parallel,
            fail_fast=on_item_error == "fail",
            item_key=item_key,
            stats=stats if stats is not None else CallStats(),
        )


def base_url_variable(service_name: str) -> str:
    """`SERVICE_<NAME>_BASE_URL`, NAME upper-cased with non-alphanumerics as `_`."""
    return f"SERVICE_{re.sub(r'[^A-Za-z0-9]', '_', service_name).upper()}_BASE_URL"
