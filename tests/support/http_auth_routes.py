"""Routes of the test server (`tests.support.http_server`) that check credentials, and
routes for responseActions.

`server.auth` (an `AuthBook`) holds what they accept; a test sets it before the run:

    /keyed?api_key=&page=&per_page=  `/pages` (records in {"results"}) when `api_key` is
                                     `auth.api_key`, else 401
    POST /oauth/token                form `grant_type=client_credentials`, `client_id`,
                                     `client_secret`, `scope`: {"access_token", "token_type",
                                     "expires_in"}; 401 invalid_client. A token lives
                                     `auth.token_seconds`, or `auth.short_seconds` when the
                                     scope holds `short`
    /oauth/items?item=&delay=        401 unless `Authorization: Bearer <a token it issued
                                     that has not expired>`; sleeps `delay`, then {"items":
                                     [{"item", "token_no"}]}, token_no counting tokens from 1.
                                     The first call of an item in `auth.revoke_on_items`
                                     revokes the token it carries and answers 401
    /echo-query?...                  422 {"error": "unprocessable", "query": <the raw query
                                     string, credentials included>}: an error that quotes
                                     them, for redaction tests
    /busy?id=&times=                 200 {"error": "rate limited"} for the first `times` calls
                                     of `id`, then 200 {"records": [{"id": id}]}
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from tests.support.http_server import JsonReply, LocalHTTPServer, RecordedRequest


@dataclass
class AuthBook:
    """The credentials the auth routes accept, and what they saw."""

    api_key: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    token_seconds: float = 3600.0
    short_seconds: float = 1.0
    revoke_on_items: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    tokens: dict[str, tuple[int, float]] = field(default_factory=dict)  # -> (number, expiry)
    token_forms: list[dict[str, str]] = field(default_factory=list)
    protected_calls: int = 0
    refusals: list[str] = field(default_factory=list)  # why each 401 of /oauth/items

    def issue(self, seconds: float) -> str:
        with self.lock:
            number = len(self.tokens) + 1
            token = f"at-{number}-{time.monotonic_ns() % 10**9:09d}"
            self.tokens[token] = (number, time.monotonic() + seconds)
            return token

    def forms(self, scope: str) -> list[dict[str, str]]:
        """The token requests that asked for `scope`."""
        with self.lock:
            return [form for form in self.token_forms if form.get("scope") == scope]


def _keyed(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    if app.auth.api_key is None or q.get("api_key") != app.auth.api_key:
        return 401, {"error": "missing or wrong api_key"}, {}
    page, per_page = int(q.get("page", 1)), int(q.get("per_page", 10))
    return 200, {"results": app.page((page - 1) * per_page, per_page)}, {}


def _token(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    form = {k: v[-1] for k, v in parse_qs(req.body.decode()).items()}
    book = app.auth
    with book.lock:
        book.token_forms.append(form)
    good = (
        form.get("grant_type") == "client_credentials"
        and book.client_id is not None
        and form.get("client_id") == book.client_id
        and form.get("client_secret") == book.client_secret
    )
    if not good:
        return 401, {"error": "invalid_client"}, {}
    seconds = book.short_seconds if "short" in form.get("scope", "") else book.token_seconds
    token = book.issue(seconds)
    body = {"access_token": token, "token_type": "Bearer", "expires_in": seconds}
    return 200, body, {}


def _oauth_items(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    book = app.auth
    token = req.headers.get("authorization", "").removeprefix("Bearer ")
    with book.lock:
        book.protected_calls += 1
        number, expiry = book.tokens.get(token, (0, 0.0))
        why = None
        if not number:
            why = "unknown token"
        elif time.monotonic() >= expiry:
            why = "token expired"
        elif q.get("item") in book.revoke_on_items:
            book.revoke_on_items.discard(q.get("item", ""))
            book.tokens[token] = (number, 0.0)
            why = "token revoked"
        if why:
            book.refusals.append(why)
    if why:
        return 401, {"error": why}, {}
    time.sleep(float(q.get("delay", 0)))
    return 200, {"items": [{"item": q.get("item"), "token_no": number}]}, {}


def _busy(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    key = q.get("id", "")
    if app.hit(f"busy:{key}") <= int(q.get("times", 1)):
        return 200, {"error": "rate limited, slow down"}, {}
    return 200, {"records": [{"id": key}]}, {}


def _echo_query(app: LocalHTTPServer, req: RecordedRequest, q: dict[str, str]) -> JsonReply:
    raw = "&".join(f"{k}={v[-1]}" for k, v in req.query.items())
    return 422, {"error": "unprocessable", "query": raw}, {}


AUTH_ROUTES: dict[tuple[str, str], Any] = {
    ("GET", "/keyed"): _keyed,
    ("POST", "/oauth/token"): _token,
    ("GET", "/oauth/items"): _oauth_items,
    ("GET", "/busy"): _busy,
    ("GET", "/echo-query"): _echo_query,
}
