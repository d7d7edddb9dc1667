"""The demo routes that show the pagination styles the orders and customers routes do not.

Mixed into `demo.server.DemoRequestHandler`; the data is made by arithmetic and SHA-256 of
fixed strings, like the orders and customers, so every server serves the same rows.

- `GET /shop/products?offset=0&limit=10`: offset pagination over 20 products; an offset
  past the end gives an empty page. Bearer auth.
- `GET /shop/reviews?page=1&per_page=20`: 60 reviews; the body is a bare JSON array and
  the next page is in an RFC 8288 `Link: <...>; rel="next"` header (with `prev`, `first`
  and `last`). Bearer auth.
- `GET /shop/customers/{customerId}/orders?cursor=&limit=10`: the orders of one customer
  (the same orders as `/shop/orders`), cursor pagination with the cursor at
  `meta.nextCursor` (null on the last page) and no has-more flag. An unknown customer is
  a 404. Bearer auth.
- `GET /crm/notes?limit=20&after=<noteId>`: 45 CRM notes; the body's `next` is the
  absolute URL of the next page on the same origin, or null. `X-Api-Key` auth.
- `GET /chat/channels/{channel}/messages`: the chat messages of one channel. No auth.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode

from demo.common import ApiError, decode_cursor, encode_cursor, int_param, stable_int

if TYPE_CHECKING:
    from demo.route_host import RouteHost

PRODUCT_COUNT = 20
REVIEW_COUNT = 60
NOTE_COUNT = 45
PRODUCTS_DEFAULT_LIMIT, PRODUCTS_MAX_LIMIT = 10, 50
REVIEWS_DEFAULT_PER_PAGE, REVIEWS_MAX_PER_PAGE = 20, 50
NOTES_DEFAULT_LIMIT, NOTES_MAX_LIMIT = 20, 50
CUSTOMER_ORDERS_DEFAULT_LIMIT, CUSTOMER_ORDERS_MAX_LIMIT = 10, 100

_PRODUCT_KINDS = [
    ("Mug", "kitchen"),
    ("Kettle", "kitchen"),
    ("Lamp", "home"),
    ("Plant Pot", "home"),
    ("Backpack", "travel"),
    ("Bottle", "travel"),
    ("Notebook", "office"),
    ("Desk Mat", "office"),
    ("Scarf", "apparel"),
    ("Cap", "apparel"),
]
_PRODUCT_LINES = ["Classic", "Deluxe"]
_REVIEW_TITLES = ["Disappointing", "Not great", "Okay", "Good", "Excellent"]
_NOTE_AUTHORS = ["ana", "bo", "chen"]
_NOTE_CHANNELS = ["call", "email", "meeting"]
_DATA_DAYS = 60


def _window_start(end_date: date) -> datetime:
    return datetime.combine(end_date - timedelta(days=_DATA_DAYS), time(), tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_products() -> list[dict[str, Any]]:
    """The 20 products `sku_001` .. `sku_020` (the SKUs of the order items), in SKU order.

    Every seventh product (`sku_007`, `sku_014`) is inactive.
    """
    products = []
    for number in range(1, PRODUCT_COUNT + 1):
        noun, category = _PRODUCT_KINDS[(number - 1) % len(_PRODUCT_KINDS)]
        products.append(
            {
                "sku": f"sku_{number:03d}",
                "name": f"{_PRODUCT_LINES[(number - 1) // len(_PRODUCT_KINDS)]} {noun}",
                "category": category,
                "priceCents": 499 + (stable_int("product-price", number) % 96) * 100,
                "stock": stable_int("product-stock", number) % 120,
                "active": number % 7 != 0,
            }
        )
    return products


def make_reviews(end_date: date) -> list[dict[str, Any]]:
    """The 60 reviews `rev_001` .. `rev_060`, one a day at noon UTC, oldest first."""
    start = _window_start(end_date) + timedelta(hours=12)
    reviews = []
    for number in range(1, REVIEW_COUNT + 1):
        rating = 1 + stable_int("review-rating", number) % 5
        reviews.append(
            {
                "reviewId": f"rev_{number:03d}",
                "sku": f"sku_{stable_int('review-sku', number) % PRODUCT_COUNT + 1:03d}",
                "customerId": f"cus_{stable_int('review-customer', number) % 40 + 1:03d}",
                "rating": rating,
                "title": _REVIEW_TITLES[rating - 1],
                "createdAt": _iso(start + timedelta(days=number - 1)),
            }
        )
    return reviews


def make_notes(end_date: date) -> list[dict[str, Any]]:
    """The 45 CRM notes `note_001` .. `note_045`, every 32 hours, oldest first."""
    start = _window_start(end_date)
    notes = []
    for number in range(1, NOTE_COUNT + 1):
        channel = _NOTE_CHANNELS[stable_int("note-channel", number) % len(_NOTE_CHANNELS)]
        customer = f"cus_{stable_int('note-customer', number) % 40 + 1:03d}"
        notes.append(
            {
                "noteId": f"note_{number:03d}",
                "customerId": customer,
                "author": _NOTE_AUTHORS[number % len(_NOTE_AUTHORS)],
                "channel": channel,
                "text": f"{channel} with {customer} (note {number})",
                "createdAt": _iso(start + timedelta(hours=32 * (number - 1))),
            }
        )
    return notes


class PagingRoutes:
    """The handlers above; `DemoRequestHandler` supplies the state, auth and origin."""

    def _list_products(self: RouteHost, _path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        self._check_shop_token()
        offset = int_param(query, "offset", 0, (0, 1_000_000))
        limits = (1, PRODUCTS_MAX_LIMIT)
        limit = int_param(query, "limit", PRODUCTS_DEFAULT_LIMIT, limits)
        products = self._demo_state().products[offset : offset + limit]
        return 200, {"products": products, "offset": offset, "limit": limit}

    def _list_reviews(
        self: RouteHost, path: str, query: dict[str, list[str]]
    ) -> tuple[int, Any, dict[str, str]]:
        self._check_shop_token()
        page = int_param(query, "page", 1, (1, 1_000_000))
        limits = (1, REVIEWS_MAX_PER_PAGE)
        per_page = int_param(query, "per_page", REVIEWS_DEFAULT_PER_PAGE, limits)
        reviews = self._demo_state().reviews
        last = max(1, -(-len(reviews) // per_page))

        def link(number: int, rel: str) -> str:
            target = urlencode({"page": number, "per_page": per_page})
            return f'<{self._origin()}{path}?{target}>; rel="{rel}"'

        links = [link(1, "first")]
        if page > 1:
            links.append(link(min(page - 1, last), "prev"))
        if page < last:
            links.append(link(page + 1, "next"))
        links.append(link(last, "last"))
        start = (page - 1) * per_page
        return 200, reviews[start : start + per_page], {"Link": ", ".join(links)}

    def _list_customer_orders(
        self: RouteHost, path: str, query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        self._check_shop_token()
        customer_id = unquote(path.split("/")[3])
        state = self._demo_state()
        if customer_id not in state.customers:
            raise ApiError(404, f"customer {customer_id!r} not found")
        limits = (1, CUSTOMER_ORDERS_MAX_LIMIT)
        limit = int_param(query, "limit", CUSTOMER_ORDERS_DEFAULT_LIMIT, limits)
        cursor = query.get("cursor", [""])[-1]
        offset = decode_cursor(cursor, prefix=customer_id) if cursor else 0
        orders = [order for order in state.orders if order["customerId"] == customer_id]
        end = offset + limit
        next_cursor = encode_cursor(end, prefix=customer_id) if end < len(orders) else None
        return 200, {
            "data": orders[offset:end],
            "meta": {"nextCursor": next_cursor, "total": len(orders)},
        }

    def _list_notes(self: RouteHost, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        self._check_crm_key()
        limit = int_param(query, "limit", NOTES_DEFAULT_LIMIT, (1, NOTES_MAX_LIMIT))
        notes = self._demo_state().notes
        start = 0
        if "after" in query:
            after = query["after"][-1]
            ids = [note["noteId"] for note in notes]
            if after not in ids:
                raise ApiError(400, f"query parameter 'after': unknown note {after!r}")
            start = ids.index(after) + 1
        page = notes[start : start + limit]
        next_url = None
        if start + limit < len(notes):
            target = urlencode({"limit": limit, "after": page[-1]["noteId"]})
            next_url = f"{self._origin()}{path}?{target}"
        return 200, {"notes": page, "next": next_url}

    def _list_channel_messages(
        self: RouteHost, path: str, _query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        channel = unquote(path.split("/")[3])
        state = self._demo_state()
        with state.lock:
            messages = [m for m in state.messages if m["channel"] == channel]
        return 200, {"messages": messages}
