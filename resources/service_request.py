"""The public request model of a service call (`resources.service` re-exports it): the
operation, one call, its pages, forEach outcomes and the counters. Apart from the client so
that its drivers (`service_http`, `service_foreach`) import this, not the resource that
imports them."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from resources.paginators import Paginator
from resources.secrets import redact, redact_url


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
