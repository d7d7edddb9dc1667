"""The demo's stats and billing services: a key in the query string, OAuth2 client
credentials, and answers that responseActions turn into "nothing" or "try again".

Mixed into `demo.server.DemoRequestHandler`.

- `GET /stats/daily?day=YYYY-MM-DD&apikey=KEY` (auth `apiKeyQuery`): `{"stats": {"day",
  "orders", "revenueCents"}}` of the orders created that day (UTC); 404 for a day without
  orders; 401 without the key (`DEMO_STATS_KEY`, default `demo-stats-key`).
- `POST /billing/oauth/token` (form `grant_type=client_credentials`, `client_id`,
  `client_secret`; `DEMO_BILLING_CLIENT_ID` / `DEMO_BILLING_CLIENT_SECRET`, defaults
  `demo-billing-client` / `demo-billing-secret`): `{"access_token", "token_type",
  "expires_in": 300}`; 401 `invalid_client`.
- `GET /billing/customers/{customerId}/invoices` (Bearer, a token of the route above that
  has not expired, else 401): `{"invoices": [{"invoiceId", "orderId", "amountCents"}]}`
  for the customer's paid and shipped orders. A customer whose number is a multiple of 4
  has no billing account: 404. The first call for a customer whose number is a multiple
  of 5 is answered `200 {"error": "rate limited, try again"}` (counted per server).
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from demo.common import ApiError

if TYPE_CHECKING:
    from demo.route_host import RouteHost

STATS_KEY_ENV = "DEMO_STATS_KEY"
BILLING_CLIENT_ID_ENV = "DEMO_BILLING_CLIENT_ID"
BILLING_CLIENT_SECRET_ENV = "DEMO_BILLING_CLIENT_SECRET"
DEFAULTS = {
    STATS_KEY_ENV: "demo-stats-key",
    BILLING_CLIENT_ID_ENV: "demo-billing-client",
    BILLING_CLIENT_SECRET_ENV: "demo-billing-secret",
}
TOKEN_SECONDS = 300


def auth_secrets_env() -> dict[str, str]:
    """The stats key and billing client credentials in force (the environment's, else
    the defaults), for a client of a server started with the current environment."""
    return {name: os.environ.get(name) or default for name, default in DEFAULTS.items()}


@dataclass
class AuthState:
    """The credentials the stats and billing routes accept, and the tokens issued."""

    secrets: dict[str, str] = field(default_factory=auth_secrets_env)
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (monotonic)
    invoice_calls: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class AuthRoutes:
    """The stats and billing routes; the handler class provides the state and the body."""

    def _daily_stats(self: RouteHost, _path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        state = self._demo_state()
        if not _same(query.get("apikey", [None])[-1], state.auth.secrets[STATS_KEY_ENV]):
            raise ApiError(401, "missing or wrong apikey")
        raw = query.get("day", [""])[-1]
        try:
            day = date.fromisoformat(raw).isoformat()
        except ValueError:
            raise ApiError(400, "query parameter 'day' must be a date YYYY-MM-DD") from None
        orders = [o for o in state.orders if o["createdAt"].startswith(day)]
        if not orders:
            raise ApiError(404, f"no stats for {day}")
        revenue = sum(o["totalCents"] for o in orders)
        return 200, {"stats": {"day": day, "orders": len(orders), "revenueCents": revenue}}

    def _billing_token(
        self: RouteHost, _path: str, _query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length > 0 else ""
        form = {k: v[-1] for k, v in parse_qs(raw).items()}
        auth = self._demo_state().auth
        if not (
            form.get("grant_type") == "client_credentials"
            and _same(form.get("client_id"), auth.secrets[BILLING_CLIENT_ID_ENV])
            and _same(form.get("client_secret"), auth.secrets[BILLING_CLIENT_SECRET_ENV])
        ):
            raise ApiError(401, "invalid_client")
        token = secrets.token_urlsafe(24)
        with auth.lock:
            auth.tokens[token] = time.monotonic() + TOKEN_SECONDS
        body = {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_SECONDS}
        return 200, body

    def _list_invoices(self: RouteHost, path: str, _query: dict[str, list[str]]) -> tuple[int, Any]:
        state = self._demo_state()
        authorization = self.headers.get("Authorization", "")
        token = authorization.removeprefix("Bearer ")
        with state.auth.lock:
            expiry = state.auth.tokens.get(token, 0.0)
        if time.monotonic() >= expiry:
            raise ApiError(401, "unknown or expired token", {"WWW-Authenticate": "Bearer"})
        customer_id = path.removeprefix("/billing/customers/").removesuffix("/invoices")
        if customer_id not in state.customers:
            raise ApiError(404, f"customer {customer_id!r} not found")
        number = int(customer_id.removeprefix("cus_"))
        if number % 4 == 0:
            raise ApiError(404, f"customer {customer_id} has no billing account")
        with state.auth.lock:
            calls = state.auth.invoice_calls.get(customer_id, 0) + 1
            state.auth.invoice_calls[customer_id] = calls
        if number % 5 == 0 and calls == 1:
            return 200, {"error": "rate limited, try again"}
        invoices = [
            {
                "invoiceId": f"inv_{o['orderId'][4:]}",
                "orderId": o["orderId"],
                "amountCents": o["totalCents"],
            }
            for o in state.orders
            if o["customerId"] == customer_id and o["status"] in ("paid", "shipped")
        ]
        return 200, {"invoices": invoices}
