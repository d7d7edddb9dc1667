"""The HTTP client of one catalog service (SPEC 3.1, 5.1, 5.2, 5.5, 9).

`ServiceResource` is the Dagster resource; it knows nothing of workflow files. Its two
entry points share one page loop (`resources.service_http.PageLoop`, free of I/O):
`iter_pages` runs one call synchronously and streams its pages; `for_each` runs a call
per item with bounded concurrency on an asyncio loop of its own
(`resources.service_foreach`). The public request model is `resources.service_request`,
re-exported here.

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

import os
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, Literal

from dagster import ConfigurableResource
from pydantic import Field

from resources.env_names import env_word
from resources.rate_limit import RateLimiter
from resources.service_errors import ServiceCallError
from resources.service_limits import DEFAULT_MAX_RESPONSE_BYTES
from resources.service_request import (
    CallRequest,
    CallStats,
    ItemOutcome,
    Operation,
    Page,
    ResponseAction,
    idempotency_key,
)

# The request model is re-exported: steps and tests import it from here.
__all__ = [
    "CallRequest",
    "CallStats",
    "ItemOutcome",
    "Operation",
    "Page",
    "ResponseAction",
    "ServiceCallError",
    "ServiceResource",
    "base_url_variable",
    "idempotency_key",
]

if TYPE_CHECKING:
    from resources.service_foreach import ForEachRun


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
        self,
        request: CallRequest,
        *,
        stats: CallStats | None = None,
        while_waiting: Callable[[], None] | None = None,
    ) -> Generator[Page, None, None]:
        """Run one call, yielding each page as it arrives (nothing is accumulated).

        Closing the generator early closes the connection. `while_waiting` is called
        each time a request has left (the first one: while its connection is made),
        before its response is awaited: the caller's bookkeeping of the last page then
        overlaps the server's work on the next.

        Raises:
            ServiceCallError: a non-retryable status, retries exhausted, bad JSON, no
                value at `data_path`, or a pagination error (loop, maxPages, origin).
        """
        # aiohttp and httpx only when a call runs, not when definitions load (issue 8).
        from resources.service_http import PageLoop, Session
        from resources.service_transport import BlockingSender

        stats = stats if stats is not None else CallStats()
        session = Session.open(self)
        stats.start()
        try:
            with BlockingSender(session) as send:
                loop = PageLoop(session, request, item_label=None, stats=stats)
                while loop.pending is not None:
                    page = loop.handle(send(loop, stats, while_waiting))
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
        from resources.service_foreach import ForEachRun  # aiohttp only when a call runs
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
    return f"SERVICE_{env_word(service_name)}_BASE_URL"
