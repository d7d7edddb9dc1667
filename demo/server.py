"""A deterministic demo HTTP server: a shop, a CRM and a chat under one port.

The data is made by arithmetic and SHA-256 of fixed strings, so every start of the server
(in any process, on any machine) serves the same 250 orders and 40 customers. Orders are
spread evenly over the 60 days before `DATA_END_DATE`.

Routes (prefix = the service's `baseUrl` path in `workflow_defs/services/`):

- `GET /shop/orders?cursor=&limit=50&since=YYYY-MM-DD&createdAfter=<ISO timestamp>`:
  cursor pagination, Bearer auth; `createdAfter` keeps orders created strictly after it.
- `GET /crm/customers?page=1&per_page=25`, `GET /crm/customers/{id}`: `X-Api-Key` auth.
- `POST /chat/messages` `{channel, text}`, `GET /chat/messages`: no auth.
- `GET /health`.
- One route per remaining pagination style, in `demo.paging_routes`: offset
  (`/shop/products`), `Link` header (`/shop/reviews`), a next URL in the body
  (`/crm/notes`), and a per-item cursor (`/shop/customers/{customerId}/orders`); plus
  `GET /chat/channels/{channel}/messages`; an order export that is ready after a few
  polls (`GET /shop/exports/{exportId}`, in `demo.export_routes`).
- Stats with a key in the query string (`GET /stats/daily`) and billing with OAuth2
  client credentials (`POST /billing/oauth/token`, `GET /billing/customers/{id}/invoices`),
  in `demo.auth_routes`.

Run it with `python -m demo.server --port 8765` or use `running_demo_server()` in tests.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from demo.auth_routes import AuthRoutes, AuthState, auth_secrets_env
from demo.common import ApiError
from demo.common import decode_cursor as _decode_cursor
from demo.common import encode_cursor as _encode_cursor
from demo.common import int_param as _int_param
from demo.common import stable_int as _stable_int
from demo.export_routes import ExportRoutes
from demo.paging_routes import PagingRoutes, make_notes, make_products, make_reviews

DATA_END_DATE = date(2026, 11, 1)
"""Every order is created before midnight UTC starting this day."""
DATA_DAYS = 60
ORDER_COUNT = 250
CUSTOMER_COUNT = 40
ORDER_INTERVAL = timedelta(days=DATA_DAYS) / ORDER_COUNT  # 5h45m36s between two orders

DEFAULT_SHOP_TOKEN = "demo-shop-token"
DEFAULT_CRM_KEY = "demo-crm-key"
SHOP_TOKEN_ENV = "DEMO_SHOP_TOKEN"
CRM_KEY_ENV = "DEMO_CRM_KEY"

ORDERS_DEFAULT_LIMIT, ORDERS_MAX_LIMIT = 50, 100
CUSTOMERS_DEFAULT_PER_PAGE, CUSTOMERS_MAX_PER_PAGE = 25, 100

_FIRST_NAMES = ["Anna", "Ben", "Clara", "David", "Elif", "Felix", "Greta", "Hugo", "Ida", "Jonas"]
_LAST_NAMES = ["Schmidt", "Meyer", "Weber", "Fischer", "Wagner", "Becker", "Hoffmann", "Koch"]
_COUNTRIES = ["DE", "FR", "NL", "AT", "ES", "IT", "PL", "SE"]
_TIERS = ["gold", "silver", "silver", "bronze", "bronze"]  # by customer number modulo 5
_STATUSES = ["paid"] * 6 + ["shipped"] * 2 + ["pending", "refunded"]


def make_customers() -> list[dict[str, Any]]:
    """The 40 CRM customers `cus_001` .. `cus_040`, in id order."""
    customers = []
    for number in range(1, CUSTOMER_COUNT + 1):
        first_index, block = (number - 1) % 10, (number - 1) // 10
        first = _FIRST_NAMES[first_index]
        last = _LAST_NAMES[(3 * block + first_index) % len(_LAST_NAMES)]  # names stay unique
        customers.append(
            {
                "id": f"cus_{number:03d}",
                "name": f"{first} {last}",
                "email": f"{first}.{last}@example.com".lower(),
                "tier": _TIERS[number % len(_TIERS)],
                "country": _COUNTRIES[(3 * number) % len(_COUNTRIES)],
            }
        )
    return customers


def _order_items(number: int) -> list[dict[str, Any]]:
    items = []
    for line in range(1 + _stable_int("item-count", number) % 3):
        seed = _stable_int(f"item-{line}", number)
        items.append(
            {
                "sku": f"sku_{seed % 20 + 1:03d}",
                "quantity": 1 + (seed >> 8) % 4,
                "unitPriceCents": 499 + ((seed >> 16) % 96) * 100,
            }
        )
    return items


def make_orders(end_date: date = DATA_END_DATE) -> list[dict[str, Any]]:
    """The 250 shop orders `ord_0001` .. `ord_0250`, oldest first.

    Order n is created at `end_date - 60 days + (n - 1) * 5h45m36s` (UTC).
    """
    start = datetime.combine(end_date - timedelta(days=DATA_DAYS), time(), tzinfo=UTC)
    orders = []
    for number in range(1, ORDER_COUNT + 1):
        items = _order_items(number)
        created = start + (number - 1) * ORDER_INTERVAL
        orders.append(
            {
                "orderId": f"ord_{number:04d}",
                "customerId": f"cus_{_stable_int('customer', number) % CUSTOMER_COUNT + 1:03d}",
                "totalCents": sum(item["quantity"] * item["unitPriceCents"] for item in items),
                "currency": "EUR",
                "status": _STATUSES[_stable_int("status", number) % len(_STATUSES)],
                "createdAt": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "items": items,
            }
        )
    return orders


def _instant(text: str) -> datetime:
    """An ISO-8601 date or timestamp (UTC when it names no zone)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"'{text}' is not an ISO-8601 timestamp") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def orders_since(since: date, end_date: date = DATA_END_DATE) -> list[dict[str, Any]]:
    """The orders `GET /shop/orders?since=<since>` returns: created at or after its midnight UTC."""
    bound = since.isoformat()
    return [order for order in make_orders(end_date) if order["createdAt"] >= bound]


@dataclass
class DemoState:
    """The data and secrets of one server; chat messages live here, per server."""

    shop_token: str
    crm_key: str
    end_date: date = DATA_END_DATE
    orders: list[dict[str, Any]] = field(default_factory=list)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    products: list[dict[str, Any]] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    export_polls: dict[str, int] = field(default_factory=dict)  # export id -> calls so far
    auth: AuthState = field(default_factory=AuthState)  # stats and billing (demo.auth_routes)
    # The latest requests (`GET /shop/orders?limit=100`), what tests read as the witness.
    requests: deque[str] = field(default_factory=lambda: deque(maxlen=1000))

    def __post_init__(self) -> None:
        self.orders = make_orders(self.end_date)
        self.customers = {customer["id"]: customer for customer in make_customers()}
        self.products = make_products()
        self.reviews = make_reviews(self.end_date)
        self.notes = make_notes(self.end_date)


def _require_secret(given: str | None, expected: str, challenge: str | None) -> None:
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        headers = {"WWW-Authenticate": challenge} if challenge else None
        raise ApiError(401, "unauthorized", headers)


Handler = Callable[[str, dict[str, list[str]]], tuple[Any, ...]]
# Routes with one path parameter: the pattern, and the name of the handler method.
_PATTERN_ROUTES = [
    (re.compile(r"^/shop/customers/[^/]+/orders$"), "_list_customer_orders"),
    (re.compile(r"^/chat/channels/[^/]+/messages$"), "_list_channel_messages"),
    (re.compile(r"^/shop/exports/[^/]+$"), "_get_export"),
    (re.compile(r"^/billing/customers/[^/]+/invoices$"), "_list_invoices"),
]


class DemoRequestHandler(PagingRoutes, ExportRoutes, AuthRoutes, BaseHTTPRequestHandler):
    """Routes requests to the shop, CRM, chat and health handlers.

    A handler returns `(status, body)` or `(status, body, headers)`.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes; avoid a 40 ms stall
    server: DemoHTTPServer

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.server.state.requests.append(f"{method} {self.path}")
        query = parse_qs(url.query)
        path = url.path.rstrip("/") or "/"
        try:
            handler = self._route(method, path)
            status, body, *headers = handler(path, query)
            self._send_json(status, body, headers[0] if headers else None)
        except ApiError as error:
            self._send_json(error.status, {"error": error.message}, error.headers)

    def _route(self, method: str, path: str) -> Handler:
        routes: dict[tuple[str, str], Handler] = {
            ("GET", "/health"): lambda _path, _query: (200, {"status": "ok"}),
            ("GET", "/shop/orders"): self._list_orders,
            ("GET", "/crm/customers"): self._list_customers,
            ("GET", "/chat/messages"): self._list_messages,
            ("POST", "/chat/messages"): self._post_message,
            ("GET", "/shop/products"): self._list_products,
            ("GET", "/shop/reviews"): self._list_reviews,
            ("GET", "/crm/notes"): self._list_notes,
            ("GET", "/stats/daily"): self._daily_stats,
            ("POST", "/billing/oauth/token"): self._billing_token,
        }
        if (method, path) in routes:
            return routes[method, path]
        if method == "GET" and path.startswith("/crm/customers/"):
            return self._get_customer
        for pattern, name in _PATTERN_ROUTES:
            if method == "GET" and pattern.match(path):
                handler: Handler = getattr(self, name)
                return handler
        if any(known_path == path for _method, known_path in routes):
            raise ApiError(405, f"method {method} not allowed on {path}")
        raise ApiError(404, f"no route for {method} {path}")

    def _demo_state(self) -> DemoState:
        return self.server.state

    def _origin(self) -> str:
        host = self.headers.get("Host")
        return f"http://{host}" if host else self.server.base_url

    def _check_shop_token(self) -> None:
        authorization = self.headers.get("Authorization", "")
        token = authorization[7:] if authorization.startswith("Bearer ") else None
        _require_secret(token, self.server.state.shop_token, 'Bearer realm="demo-shop"')

    def _list_orders(self, _path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        self._check_shop_token()
        state = self.server.state
        orders = state.orders
        if "since" in query:
            try:
                since = date.fromisoformat(query["since"][-1])
            except ValueError:
                raise ApiError(400, "query parameter 'since' must be a date YYYY-MM-DD") from None
            orders = [order for order in orders if order["createdAt"] >= since.isoformat()]
        if "createdAfter" in query:  # incremental loads (lastValue): strictly after
            after = _instant(query["createdAfter"][-1])
            orders = [order for order in orders if _instant(order["createdAt"]) > after]
        limit = _int_param(query, "limit", ORDERS_DEFAULT_LIMIT, (1, ORDERS_MAX_LIMIT))
        cursor = query.get("cursor", [""])[-1]
        offset = _decode_cursor(cursor) if cursor else 0
        end = offset + limit
        has_more = end < len(orders)
        return 200, {
            "data": {"orders": orders[offset:end]},
            "nextCursor": _encode_cursor(end) if has_more else None,
            "hasMore": has_more,
        }

    def _check_crm_key(self) -> None:
        _require_secret(self.headers.get("X-Api-Key"), self.server.state.crm_key, None)

    def _list_customers(self, _path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        self._check_crm_key()
        page = _int_param(query, "page", 1, (1, 1_000_000))
        limits = (1, CUSTOMERS_MAX_PER_PAGE)
        per_page = _int_param(query, "per_page", CUSTOMERS_DEFAULT_PER_PAGE, limits)
        customers = list(self.server.state.customers.values())
        start = (page - 1) * per_page
        return 200, {"customers": customers[start : start + per_page]}

    def _get_customer(self, path: str, _query: dict[str, list[str]]) -> tuple[int, Any]:
        self._check_crm_key()
        customer_id = path.removeprefix("/crm/customers/")
        customer = self.server.state.customers.get(customer_id)
        if customer is None:
            raise ApiError(404, f"customer {customer_id!r} not found")
        return 200, customer

    def _list_messages(self, _path: str, _query: dict[str, list[str]]) -> tuple[int, Any]:
        state = self.server.state
        with state.lock:
            return 200, {"messages": list(state.messages)}

    def _post_message(self, _path: str, _query: dict[str, list[str]]) -> tuple[int, Any]:
        body = self._read_json_body()
        if not isinstance(body, dict) or not all(
            isinstance(body.get(key), str) for key in ("channel", "text")
        ):
            raise ApiError(400, "expected a JSON object with string fields 'channel' and 'text'")
        state = self.server.state
        with state.lock:
            message = {
                "id": f"msg_{len(state.messages) + 1:04d}",
                "channel": body["channel"],
                "text": body["text"],
            }
            state.messages.append(message)
        return 201, message

    def _read_json_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "request body is not valid JSON") from None

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


class DemoHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that carries the demo state."""

    daemon_threads = True

    def __init__(self, port: int, state: DemoState, verbose: bool = False) -> None:
        super().__init__(("127.0.0.1", port), DemoRequestHandler)
        self.state = state
        self.verbose = verbose

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def start_demo_server(
    port: int = 0, *, end_date: date = DATA_END_DATE, verbose: bool = False
) -> tuple[DemoHTTPServer, str]:
    """Starts the server on 127.0.0.1 in a daemon thread.

    Args:
        port: The port to bind; 0 picks a free one.
        end_date: Orders are spread over the 60 days before this date (keep the default for
            the documented data facts).
        verbose: Log each request to stderr.

    Returns:
        The server (stop it with `stop_demo_server`) and its base URL without a trailing
        slash, e.g. `http://127.0.0.1:8765`.
    """
    secrets = demo_secrets_env()
    state = DemoState(secrets[SHOP_TOKEN_ENV], secrets[CRM_KEY_ENV], end_date=end_date)
    server = DemoHTTPServer(port, state, verbose)
    # a short poll interval makes shutdown() return quickly, which keeps tests fast
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="demo-server", daemon=True
    )
    thread.start()
    return server, server.base_url


def stop_demo_server(server: DemoHTTPServer) -> None:
    """Stops serving and closes the listening socket."""
    server.shutdown()
    server.server_close()


@contextmanager
def running_demo_server(port: int = 0, *, end_date: date = DATA_END_DATE) -> Iterator[str]:
    """Runs the demo server for the duration of a `with` block and yields its base URL."""
    server, base_url = start_demo_server(port, end_date=end_date)
    try:
        yield base_url
    finally:
        stop_demo_server(server)


def service_base_url_env(base_url: str) -> dict[str, str]:
    """The `SERVICE_<NAME>_BASE_URL` overrides that point the catalog at a running server."""
    return {
        f"SERVICE_{name.upper()}_BASE_URL": f"{base_url}/{name}"
        for name in ("shop", "crm", "chat", "stats", "billing")
    }


def demo_secrets_env() -> dict[str, str]:
    """The secrets a client needs for a server started with the current environment.

    The catalog's auth reads `DEMO_SHOP_TOKEN` / `DEMO_CRM_KEY`; the server falls back to
    its defaults when they are unset, and a client must then use the same defaults.
    """
    return {
        SHOP_TOKEN_ENV: os.environ.get(SHOP_TOKEN_ENV) or DEFAULT_SHOP_TOKEN,
        CRM_KEY_ENV: os.environ.get(CRM_KEY_ENV) or DEFAULT_CRM_KEY,
        **auth_secrets_env(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m demo.server", description="Deterministic demo shop, CRM and chat services."
    )
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1; 0 = a free one")
    parser.add_argument(
        "--end-date",
        type=date.fromisoformat,
        default=DATA_END_DATE,
        help=f"orders fall in the 60 days before this date (default {DATA_END_DATE})",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    server, base_url = start_demo_server(args.port, end_date=args.end_date, verbose=args.verbose)
    print(f"listening on {base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_demo_server(server)


if __name__ == "__main__":
    main()
