"""The credentials of a service's requests (SPEC 9): headers, a query key, OAuth2 tokens.

Internal to `resources.service_http`. Credentials are read from the environment when a
call starts (a missing variable fails the call before anything is sent) and registered
with `resources.secrets` at once, so no message built afterwards can show them.

`Auth.authorize` applies them to each attempt of a request, not once per call: an
`apiKeyQuery` key is merged into the URL only when it is sent (the URLs a call keeps,
shows or checkpoints never hold it), and an OAuth2 token is the one in force at that
moment.

OAuth2 client credentials (RFC 6749, 4.4): the token is fetched through the call's own
transport (`attempt_once`, with a deadline of its own: `timeoutSeconds`), and cached per
process in `TOKENS`, keyed by token URL, client id, secret and scopes, so every call,
forEach item and step of a process shares one token. It is fetched again shortly before
it expires (10% of its lifetime, at most 30 s early) and when a request is answered 401
with it (`Auth.refused`; the page loop then retries once). Concurrent callers wait for
one fetch instead of each asking the token endpoint. The client id and secret go in the
form body (`client_secret_post`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import aiohttp
import httpx
import orjson

from resources.secrets import redact, redact_url, register_secret, register_sensitive_query_name
from resources.service_errors import ServiceCallError
from resources.service_transport import (
    BodyTooLarge,
    Prepared,
    Reply,
    TokenRequestFailed,
    attempt_once,
)
from resources.service_urls import with_query

if TYPE_CHECKING:
    from resources.service import ServiceResource
    from resources.service_http import Session

AUTH_TYPES = ("none", "bearer", "header", "basic", "apiKeyQuery", "oauth2ClientCredentials")
# A token is fetched again this share of its lifetime before it expires, at most this early.
REFRESH_SHARE = 0.1
REFRESH_MAX_EARLY_S = 30.0
_RETRYABLE_TOKEN_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float | None  # time.monotonic(); None: used until a 401


class TokenCache:
    """OAuth2 tokens of this process, one per client (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self._fetching: set[str] = set()

    async def get(self, key: str, fetch: Callable[[], Awaitable[_Token]], wait_s: float) -> str:
        """The cached token for `key`, or one `fetch`ed now. While another caller (of any
        thread or event loop) fetches it, wait for that one, at most `wait_s` seconds."""
        give_up = time.monotonic() + wait_s
        while True:
            with self._lock:
                token = self._tokens.get(key)
                if token is not None and (
                    token.refresh_at is None or time.monotonic() < token.refresh_at
                ):
                    return token.value
                owner = key not in self._fetching
                if owner or time.monotonic() > give_up:
                    self._fetching.add(key)
                    break
            await asyncio.sleep(0.02)
        try:
            token = await fetch()
            with self._lock:
                self._tokens[key] = token
            return token.value
        finally:
            if owner:
                with self._lock:
                    self._fetching.discard(key)

    def refused(self, key: str, value: str) -> None:
        """The service answered 401 to `value`: drop it, unless a newer one replaced it."""
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and token.value == value:
                del self._tokens[key]

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


TOKENS = TokenCache()


class Auth:
    """The credentials of one service, read from the environment on first use."""

    def __init__(self, resource: ServiceResource) -> None:
        if resource.auth_type not in AUTH_TYPES:
            raise ServiceCallError(
                f"service {resource.service_name!r}: unknown auth type "
                f"{resource.auth_type!r}; expected one of {', '.join(AUTH_TYPES)}"
            )
        self._resource = resource
        self._service_headers: dict[str, str] | None = None
        self._user_tokens: dict[str, str] | None = None
        self._query_key: tuple[str, str] | None = None
        self._client: tuple[str, str] | None = None  # OAuth2 client id and secret

    @property
    def oauth(self) -> bool:
        return self._resource.auth_type == "oauth2ClientCredentials"

    def headers(self, user: str | None) -> dict[str, str]:
        """The fixed headers of a call (a user's token replaces the service's credentials);
        reads and registers every credential the call needs, failing early on a missing one."""
        if user is not None:
            return {"Authorization": f"Bearer {self._user_token(user)}"}
        if self._service_headers is None:
            self._service_headers = self._load_service_headers()
        return self._service_headers

    def _load_service_headers(self) -> dict[str, str]:
        r = self._resource
        if r.auth_type == "bearer":
            return {"Authorization": f"Bearer {self._env(r.token_env, 'tokenEnv')}"}
        if r.auth_type in ("header", "apiKeyQuery"):
            if not r.header_name:
                raise ServiceCallError(
                    f"service {r.service_name!r}: auth `{r.auth_type}` needs a name"
                )
            value = self._env(r.value_env, "valueEnv")
            if r.auth_type == "header":
                return {r.header_name: value}
            register_sensitive_query_name(r.header_name)
            self._query_key = (r.header_name, value)
        elif r.auth_type == "basic":
            user = self._env(r.username_env, "usernameEnv")
            # An empty password is real: some APIs take the key as user name alone.
            password = self._env(r.password_env, "passwordEnv", allow_empty=True)
            credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
            register_secret(credentials)  # the header would reveal both once decoded
            return {"Authorization": f"Basic {credentials}"}
        elif self.oauth:
            client_id = self._env(r.client_id_env, "clientIdEnv")
            self._client = (client_id, self._env(r.client_secret_env, "clientSecretEnv"))
        return {}

    async def authorize(
        self, prepared: Prepared, user: str | None, client: aiohttp.ClientSession, session: Session
    ) -> tuple[Prepared, str | None]:
        """`prepared` as this attempt sends it, and the OAuth2 token it carries (if any)."""
        if user is not None:
            return prepared, None
        if self._query_key is not None:
            name, value = self._query_key
            return replace(prepared, url=with_query(prepared.url, {name: value})), None
        if self._client is None:
            return prepared, None
        token = await TOKENS.get(
            self._cache_key(session), lambda: self._fetch(client, session), session.timeout_s
        )
        headers = {**prepared.headers, "Authorization": f"Bearer {token}"}
        return replace(prepared, headers=headers), token

    def refused(self, session: Session, token: str) -> None:
        TOKENS.refused(self._cache_key(session), token)

    def without_key(self, url: str | None) -> str | None:
        """`url` without the apiKeyQuery parameter (a next-page link may echo it back)."""
        if url is None or self._query_key is None:
            return url
        parsed = httpx.URL(url)
        return str(parsed.copy_remove_param(self._query_key[0]))

    def token_url(self, session: Session) -> str:
        url = self._resource.token_url or ""
        return session.base_url + url if url.startswith("/") else url

    def _cache_key(self, session: Session) -> str:
        assert self._client is not None
        parts = [self.token_url(session), *self._client, " ".join(self._resource.scopes)]
        return hashlib.sha256(orjson.dumps(parts)).hexdigest()

    async def _fetch(self, client: aiohttp.ClientSession, session: Session) -> _Token:
        assert self._client is not None
        form = {"grant_type": "client_credentials", "client_id": self._client[0]}
        form["client_secret"] = self._client[1]
        if self._resource.scopes:
            form["scope"] = " ".join(self._resource.scopes)
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        url = self.token_url(session)
        request = Prepared("POST", url, urlencode(form).encode(), headers)
        started = time.monotonic()
        outcome = await attempt_once(client, request, session)
        where = f"the OAuth2 token request to {redact_url(url)}"
        if isinstance(outcome, Reply):
            return _token_from(outcome, where, started)
        retryable = not isinstance(outcome, BodyTooLarge | httpx.UnsupportedProtocol)
        raise TokenRequestFailed(f"{where} failed: {outcome}", retryable=retryable)

    def _user_token(self, user: str) -> str:
        if self._user_tokens is None:
            raw = self._env(self._resource.user_tokens_env, "userTokensEnv for runAsUser")
            try:
                tokens = orjson.loads(raw)
            except orjson.JSONDecodeError:
                tokens = None
            if not isinstance(tokens, dict):
                raise ServiceCallError(
                    f"service {self._resource.service_name!r}: variable "
                    f"{self._resource.user_tokens_env} must hold a JSON object user id -> token"
                )
            self._user_tokens = {str(k): str(v) for k, v in tokens.items()}
            for value in self._user_tokens.values():
                register_secret(value)
        token = self._user_tokens.get(str(user))
        if not token:
            raise ServiceCallError(f"no token for user {user}")
        return token

    def _env(self, variable: str | None, what: str, *, allow_empty: bool = False) -> str:
        service = self._resource.service_name
        if not variable:
            raise ServiceCallError(f"service {service!r}: auth needs `{what}`")
        value = os.environ.get(variable)
        if value is None or (not value and not allow_empty):
            raise ServiceCallError(f"service {service!r}: environment variable {variable} is unset")
        register_secret(value)
        return value


def _token_from(reply: Reply, where: str, started: float) -> _Token:
    """The token of a token endpoint's answer, registered as a secret before anything
    else reads the body."""
    try:
        body = orjson.loads(reply.content) if reply.status_code < 300 else None
    except orjson.JSONDecodeError:
        body = None
    token = body.get("access_token") if isinstance(body, dict) else None
    if isinstance(token, str) and token:
        register_secret(token)
    if reply.status_code >= 300 or not isinstance(token, str) or not token:
        excerpt = " ".join(redact(reply.text)[:300].split()) or "(empty body)"
        raise TokenRequestFailed(
            f"{where} failed: HTTP {reply.status_code}: {excerpt}"
            + ("" if reply.status_code >= 300 else " (no access_token in the answer)"),
            retryable=reply.status_code in _RETRYABLE_TOKEN_STATUSES,
        )
    assert isinstance(body, dict)
    lifetime = _seconds(body.get("expires_in"))
    if lifetime is None:
        return _Token(token, None)
    early = min(lifetime * REFRESH_SHARE, REFRESH_MAX_EARLY_S)
    return _Token(token, started + lifetime - early)


def _seconds(value: object) -> float | None:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None
