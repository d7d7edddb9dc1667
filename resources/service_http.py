"""The page loop of a service call, free of I/O.

Internal to `resources.service`: `PageLoop` builds each request, judges each attempt's
outcome (use it, retry after a delay, fail) and turns a response into a `Page` plus the
next request. `resources.service_transport.send` is the only code that touches the
network, for both drivers, so they share every rule of SPEC 5.1 and 5.5 and every limit
of a request, and cannot drift apart.
"""

from __future__ import annotations

import email.utils
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
import orjson

from resources.paginators import NextPage, PaginationError, Paginator, ensure_same_origin
from resources.rate_limit import RateLimiter, service_limiter
from resources.records import DataPathError, records_at
from resources.secrets import install_log_redaction, redact, redact_url
from resources.service_auth import Auth
from resources.service_errors import ServiceCallError
from resources.service_request import CallRequest, CallStats, Page, ResponseAction
from resources.service_transport import (
    NOT_RETRIED,
    BodyTooLarge,
    DeadlineExceeded,
    Found,
    Guard,
    Prepared,
    Reply,
    TokenRequestFailed,
    attempt_once,
    retry_guard,
)
from resources.service_urls import PLACEHOLDER_RE, join_path, path_segment, query_params, with_query

if TYPE_CHECKING:
    from resources.service import ServiceResource

log = logging.getLogger("resources.service")
# httpx logs each request line with its full URL; mask it like our own messages.
install_log_redaction("httpx", "httpcore", "resources.service")

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 120.0
BODY_EXCERPT_CHARS = 300
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass
class Session:
    """What every request of one `iter_pages` / `for_each` shares, read once at its start."""

    service: str
    base_url: str
    timeout_s: float
    max_response_bytes: int
    limiters: tuple[RateLimiter, ...]
    auth: Auth

    @classmethod
    def open(cls, resource: ServiceResource, extra_limiter: RateLimiter | None = None) -> Session:
        shared = service_limiter(
            resource.service_name,
            per_second=resource.requests_per_second,
            per_minute=resource.requests_per_minute,
        )
        return cls(
            service=resource.service_name,
            base_url=resource.resolved_base_url(),
            timeout_s=resource.timeout_seconds,
            max_response_bytes=resource.max_response_bytes,
            limiters=tuple(lim for lim in (extra_limiter, shared) if lim is not None),
            auth=Auth(resource),
        )


class PageLoop:
    """The page loop of one call without its I/O.

    `pending` is the next request to send (None once done); `check` judges an attempt's
    outcome (use it, retry after a delay, or fail); `handle` turns a usable response into
    a `Page` and works out the following request.
    """

    def __init__(
        self,
        session: Session,
        request: CallRequest,
        item_label: str | None,
        stats: CallStats | None = None,
    ) -> None:
        self.session = session
        self.request = request
        self.item_label = item_label
        self.stats = stats  # where a retry is told (`CallStats.note`), else this module's log
        self._token: str | None = None  # the OAuth2 token of the last attempt
        self._refreshed = False  # a 401 made this page fetch a new token already
        self._ignored: Reply | None = None  # the response a responseActions `ignore` matched
        self._headers = {"Accept": "application/json", **session.auth.headers(request.user)}
        header, key = request.operation.idempotency_header, request.idempotency_key
        if header and key:
            self._headers[header] = key  # the same on every attempt of this call
        resume = request.resume_from if request.paginator else None
        self.paginator: Paginator | None = None
        if request.paginator is not None:
            self.paginator = (
                request.paginator.resumed(resume["paginator"])
                if resume
                else request.paginator.fresh()
            )
        self.page_number = int(resume["page"]) if resume else 1
        # Only what the paginator added: a resumed call re-renders the call's own params.
        self._page_params: dict[str, Any] = (
            dict(resume["params"])
            if resume
            else (self.paginator.first_request_params() if self.paginator else {})
        )
        self._next_url: str | None = resume.get("url") if resume else None
        self.pending: Prepared | None = self._build()
        if self._next_url is not None:
            try:  # the base URL may have changed since the checkpoint was taken
                ensure_same_origin(self._next_url, session.base_url)
            except PaginationError as exc:
                raise self.error(str(exc)) from None

    def where(self) -> str:
        item = f", {self.item_label}" if self.item_label else ""
        return f"page {self.page_number}{item}"

    def error(self, detail: str, url: object = None, status: int | None = None) -> ServiceCallError:
        """An error naming service, operation, status, URL (masked), page and item."""
        return ServiceCallError(self._describe(detail, url, status), status=status)

    def _describe(self, detail: str, url: object = None, status: int | None = None) -> str:
        op = self.request.operation
        target = url if url is not None else (self.pending.url if self.pending else "")
        status_text = f"HTTP {status} " if status is not None else ""
        return (
            f"service {self.session.service!r} operation {op.name!r}: {status_text}"
            f"{op.method} {redact_url(target)} ({self.where()}): {detail}"
        )

    async def authorized_attempt(
        self, client: aiohttp.ClientSession, prepared: Prepared
    ) -> Reply | Exception:
        """One attempt of `prepared` with the credentials in force now; a failure is
        returned, not raised (`attempt_once`)."""
        try:
            sent, self._token = await self.session.auth.authorize(
                prepared, self.request.user, client, self.session
            )
        except TokenRequestFailed as exc:
            return exc
        return await attempt_once(client, sent, self.session)

    def check(self, outcome: Reply | Exception, attempt: int) -> float | None:
        """None: `outcome` is a response to use. A number: retry after that many seconds.

        A response meets the call's `responseActions` first, then the default rules.

        Raises:
            ServiceCallError: the failure is final (not retryable, or retries exhausted,
                or a `fail` action).
        """
        retry_after: float | None = None
        status: int | None = None
        if isinstance(outcome, Reply):
            status = outcome.status_code
            action = self._action(outcome)
            if action is None and status < 300:
                return None
            if action is None and status == 401 and self._refresh_token():
                return 0.0  # the token was refused: a new one now, not a backoff
            retryable = action == "retry" or (action is None and status in RETRYABLE_STATUSES)
            retry_after = retry_after_seconds(outcome.headers.get("retry-after"))
            detail = _failure_detail(outcome)
            if action == "ignore":
                self._ignored = outcome
                return None
            if action == "fail":
                raise self.error(f"{detail} (responseActions: fail, not retried)", status=status)
        elif isinstance(outcome, DeadlineExceeded | BodyTooLarge):
            # SPEC 5.5: a timeout is retried; a body over the cap would come back the same.
            status = outcome.status if isinstance(outcome, BodyTooLarge) else None
            retryable = isinstance(outcome, DeadlineExceeded)
            detail = str(outcome)
        elif isinstance(outcome, TokenRequestFailed):
            retryable, detail = outcome.retryable, str(outcome)
        else:
            retryable = isinstance(outcome, httpx.TransportError) and not isinstance(
                outcome, httpx.UnsupportedProtocol
            )
            detail = f"{type(outcome).__name__}: {outcome}".rstrip(": ")
        if not retryable or attempt > self.request.max_retries:
            tried = f" (after {attempt - 1} retries)" if retryable else ""
            raise self.error(detail + tried, status=status)
        if self.guard(outcome) is None:
            raise self.error(f"{detail} ({NOT_RETRIED})", status=status)
        return self._retry_delay(attempt, retry_after, detail, status)

    def _retry_delay(
        self, attempt: int, retry_after: float | None, detail: str, status: int | None
    ) -> float:
        delay = self.request.retry_delay_ms / 1000.0 * 2 ** (attempt - 1)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
        retries = f"retry {attempt}/{self.request.max_retries} in {delay:.2f} s"
        self._note(logging.WARNING, f"{self._describe(detail, status=status)}; {retries}")
        return delay

    def _note(self, level: int, line: str) -> None:
        if self.stats is not None:
            self.stats.note(level, redact(line))
        else:
            log.log(level, "%s", redact(line))

    def _action(self, reply: Reply) -> str | None:
        """The action of the first `responseActions` rule `reply` matches, if any."""
        rules: tuple[ResponseAction, ...] = self.request.operation.response_actions
        if not rules or not any(rule.status == reply.status_code for rule in rules):
            return None
        text = reply.text
        return next((r.action for r in rules if r.matches(reply.status_code, text)), None)

    def _refresh_token(self) -> bool:
        """After a 401 to an OAuth2 token: drop it so the retry fetches a new one; once per
        page, so a service that refuses every token fails with its 401."""
        if self._token is None or self._refreshed:
            return False
        self._refreshed = True
        self.session.auth.refused(self.session, self._token)
        self._note(
            logging.INFO,
            self._describe(
                "HTTP 401: the OAuth2 token was refused; fetching a new one and sending again"
            ),
        )
        return True

    def guard(self, outcome: Reply | Exception) -> Guard:
        return retry_guard(self.request, outcome)

    def handle(self, response: Reply | Found) -> Page:
        """The page in a successful response; sets `pending` to the following request.

        `Found` (preExecute found the effect of an attempt that failed) ends the call."""
        current = self.pending
        assert current is not None
        self._refreshed = False
        if isinstance(response, Found):
            self.pending = None
            return Page(self.page_number, response.records, current.url)
        if response is self._ignored:
            # responseActions `ignore`: no records, and no page after this one.
            self.pending = None
            self._note(
                logging.INFO,
                self._describe(
                    "ignored (responseActions): no records",
                    url=current.url,
                    status=response.status_code,
                ),
            )
            return Page(self.page_number, [], current.url)
        body = self._decode(response)
        records = self._records(body, response)
        self.pending = self._following(body, response, len(records), current)
        checkpoint = self._checkpoint()
        page = Page(self.page_number, records, current.url, checkpoint)
        self.page_number += 1
        return page

    def _checkpoint(self) -> dict[str, Any] | None:
        if self.pending is None or self.paginator is None:
            return None
        return {
            "page": self.page_number + 1,
            "params": dict(self._page_params),
            # Never the apiKeyQuery key, which a next-page link may echo back.
            "url": self.session.auth.without_key(self._next_url),
            "paginator": self.paginator.checkpoint(),
        }

    def _decode(self, response: Reply) -> Any:
        if not response.content.strip():
            return None
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            kind = response.headers.get("content-type", "no content type")
            raise self.error(
                f"the response is not valid JSON ({exc}; {kind}): {_excerpt(response)}",
                status=response.status_code,
            ) from None

    def _records(self, body: Any, response: Reply) -> list[dict[str, Any]]:
        try:
            return records_at(body, self.request.data_path)
        except DataPathError as exc:
            raise self.error(str(exc), status=response.status_code) from None

    def _following(
        self, body: Any, response: Reply, count: int, current: Prepared
    ) -> Prepared | None:
        if self.paginator is None:
            return None
        try:
            following = self.paginator.next_request(
                body, response.headers, count, current_url=current.url
            )
            if following is not None and following.url is not None:
                ensure_same_origin(following.url, self.session.base_url)
        except PaginationError as exc:
            raise self.error(str(exc), url=current.url) from None
        return self._next_prepared(following, current)

    def _next_prepared(self, following: NextPage | None, current: Prepared) -> Prepared | None:
        if following is None:
            return None
        self._next_url = following.url
        self._page_params = {**self._page_params, **(following.params or {})}
        return self._build()

    def _build(self) -> Prepared:
        """The request for the current params, or for `_next_url` when the paginator gave one."""
        op = self.request.operation
        rest = {**self.request.params, **self._page_params}

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in rest:
                raise self.error(f"the path needs the parameter `{name}`", url=op.path)
            return path_segment(rest.pop(name))

        path = PLACEHOLDER_RE.sub(fill, op.path)
        method = op.method.upper()
        if self._next_url is not None:
            # A next-page URL carries its own query; a POST keeps its body.
            url = str(httpx.URL(self._next_url))
            rest = rest if method in _BODY_METHODS else {}
        else:
            url = join_path(self.session.base_url, op.path, path)
        if method in _BODY_METHODS:
            body = orjson.dumps(rest) if rest else None
            headers = {**self._headers, "Content-Type": "application/json"} if body else None
            return Prepared(method, url, body, headers or self._headers)
        return Prepared(method, with_query(url, query_params(rest)), None, self._headers)


def _excerpt(response: Reply) -> str:
    """The start of a body for an error: masked first, then cut, so that a secret
    straddling the cut is masked whole instead of leaving its start behind."""
    masked = redact(response.text)
    more = len(masked) > BODY_EXCERPT_CHARS or response.truncated
    return " ".join(masked[:BODY_EXCERPT_CHARS].split()) + ("..." if more else "")


def _failure_detail(response: Reply) -> str:
    if 300 <= response.status_code < 400:
        location = redact_url(response.headers.get("location", "(none)"))
        return f"unexpected redirect to {location} (redirects are not followed)"
    return _excerpt(response) or "(empty body)"


def retry_after_seconds(value: str | None) -> float | None:
    """A `Retry-After` header (seconds, or an HTTP date) as seconds from now."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
