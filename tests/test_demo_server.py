"""The demo: the server (routes, pagination totals, auth, determinism, chat), its app schema
and its definition files."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from pydantic import BaseModel

from demo.app_schema import DemoSchemaError, ensure_demo_schema, ensure_demo_schema_for_app
from demo.paging_routes import NOTE_COUNT, PRODUCT_COUNT, REVIEW_COUNT
from demo.server import (
    CUSTOMER_COUNT,
    ORDER_COUNT,
    demo_secrets_env,
    make_orders,
    orders_since,
    running_demo_server,
    service_base_url_env,
    start_demo_server,
    stop_demo_server,
)
from translators.spec import SchedulesFileSpec, ServiceSpec, WorkflowSpec

pytestmark = pytest.mark.integration

SHOP_AUTH = {"Authorization": "Bearer demo-shop-token"}
CRM_AUTH = {"X-Api-Key": "demo-crm-key"}


@pytest.fixture(autouse=True)
def _default_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEMO_SHOP_TOKEN", raising=False)
    monkeypatch.delenv("DEMO_CRM_KEY", raising=False)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with running_demo_server() as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        yield http


def fetch_order_pages(http: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Follows `nextCursor` until `hasMore` is false; returns every page body."""
    pages = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = http.get("/shop/orders", params=query, headers=SHOP_AUTH)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        if not pages[-1]["hasMore"]:
            return pages
        cursor = pages[-1]["nextCursor"]
        assert len(pages) < 100, "pagination does not end"


def fetch_customer_pages(http: httpx.Client, **params: Any) -> list[list[dict[str, Any]]]:
    """Asks for pages 1, 2, ... until one is empty; returns every page's customers."""
    pages = []
    for page in range(1, 100):
        response = http.get("/crm/customers", params={**params, "page": page}, headers=CRM_AUTH)
        assert response.status_code == 200, response.text
        pages.append(response.json()["customers"])
        if not pages[-1]:
            return pages
    raise AssertionError("page-number pagination does not end")


def all_orders(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [order for page in pages for order in page["data"]["orders"]]


def test_health(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_order_cursor_pagination_returns_every_order_once(client: httpx.Client) -> None:
    pages = fetch_order_pages(client)

    assert [len(page["data"]["orders"]) for page in pages] == [50] * 5
    ids = [order["orderId"] for order in all_orders(pages)]
    assert ids == [f"ord_{n:04d}" for n in range(1, ORDER_COUNT + 1)]
    assert all(page["nextCursor"] for page in pages[:-1])
    assert pages[-1]["nextCursor"] is None


def test_order_limit_100_gives_three_pages(client: httpx.Client) -> None:
    pages = fetch_order_pages(client, limit=100)
    assert [len(page["data"]["orders"]) for page in pages] == [100, 100, 50]


def test_order_shape(client: httpx.Client) -> None:
    order = client.get("/shop/orders", params={"limit": 1}, headers=SHOP_AUTH).json()
    first = order["data"]["orders"][0]
    assert set(first) == {
        "orderId",
        "customerId",
        "totalCents",
        "currency",
        "status",
        "createdAt",
        "items",
    }
    assert first["orderId"] == "ord_0001"
    assert first["createdAt"] == "2026-09-02T00:00:00Z"
    assert first["totalCents"] == sum(i["quantity"] * i["unitPriceCents"] for i in first["items"])


@pytest.mark.parametrize(
    ("since", "expected"),
    [("2026-09-01", 250), ("2026-10-01", 129), ("2026-10-11", 87), ("2026-11-01", 0)],
)
def test_order_since_filter(client: httpx.Client, since: str, expected: int) -> None:
    orders = all_orders(fetch_order_pages(client, since=since, limit=20))

    assert len(orders) == expected
    assert all(order["createdAt"] >= since for order in orders)
    assert orders == orders_since(date.fromisoformat(since))


def test_orders_data_facts() -> None:
    orders = make_orders()
    assert len(orders) == ORDER_COUNT
    assert orders[-1]["createdAt"] == "2026-10-31T18:14:24Z"
    assert len({order["customerId"] for order in orders}) == CUSTOMER_COUNT
    assert {order["currency"] for order in orders} == {"EUR"}
    assert sum(order["totalCents"] for order in orders) == 6_430_395
    statuses = [order["status"] for order in orders]
    counts = {status: statuses.count(status) for status in set(statuses)}
    assert counts == {"paid": 130, "shipped": 61, "refunded": 32, "pending": 27}


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"cursor": "???"}, {"since": "10/01/2026"}],
)
def test_order_bad_query_is_400(client: httpx.Client, params: dict[str, Any]) -> None:
    response = client.get("/shop/orders", params=params, headers=SHOP_AUTH)
    assert response.status_code == 400
    assert "error" in response.json()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "demo-shop-token"}, CRM_AUTH],
)
def test_orders_reject_missing_or_wrong_token(client: httpx.Client, headers: dict) -> None:
    response = client.get("/shop/orders", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("headers", [{}, {"X-Api-Key": "wrong"}, SHOP_AUTH])
def test_crm_rejects_missing_or_wrong_key(client: httpx.Client, headers: dict) -> None:
    assert client.get("/crm/customers", headers=headers).status_code == 401
    assert client.get("/crm/customers/cus_001", headers=headers).status_code == 401


def test_secrets_come_from_the_server_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_SHOP_TOKEN", "s3cret")
    monkeypatch.setenv("DEMO_CRM_KEY", "k3y")
    with running_demo_server() as base_url, httpx.Client(base_url=base_url) as http:
        assert http.get("/shop/orders", headers=SHOP_AUTH).status_code == 401
        bearer = {"Authorization": "Bearer s3cret"}
        assert http.get("/shop/orders", headers=bearer).status_code == 200
        assert http.get("/crm/customers", headers=CRM_AUTH).status_code == 401
        assert http.get("/crm/customers", headers={"X-Api-Key": "k3y"}).status_code == 200


def test_demo_secrets_env_matches_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    assert demo_secrets_env() == {
        "DEMO_SHOP_TOKEN": "demo-shop-token",
        "DEMO_CRM_KEY": "demo-crm-key",
        "DEMO_STATS_KEY": "demo-stats-key",
        "DEMO_BILLING_CLIENT_ID": "demo-billing-client",
        "DEMO_BILLING_CLIENT_SECRET": "demo-billing-secret",
    }
    monkeypatch.setenv("DEMO_SHOP_TOKEN", "s3cret")
    assert demo_secrets_env()["DEMO_SHOP_TOKEN"] == "s3cret"


def test_customer_pages_then_empty_page(client: httpx.Client) -> None:
    pages = fetch_customer_pages(client)

    assert [len(page) for page in pages] == [25, 15, 0]
    ids = [customer["id"] for page in pages for customer in page]
    assert ids == [f"cus_{n:03d}" for n in range(1, CUSTOMER_COUNT + 1)]


def test_customer_per_page(client: httpx.Client) -> None:
    pages = fetch_customer_pages(client, per_page=15)
    assert [len(page) for page in pages] == [15, 15, 10, 0]


def test_customer_shape_and_facts(client: httpx.Client) -> None:
    customers = [c for page in fetch_customer_pages(client) for c in page]

    assert all(set(c) == {"id", "name", "email", "tier", "country"} for c in customers)
    assert len({c["name"] for c in customers}) == CUSTOMER_COUNT
    assert len({c["email"] for c in customers}) == CUSTOMER_COUNT
    tiers = [c["tier"] for c in customers]
    assert (tiers.count("gold"), tiers.count("silver"), tiers.count("bronze")) == (8, 16, 16)
    assert all(len(c["country"]) == 2 for c in customers)


def test_get_one_customer(client: httpx.Client) -> None:
    response = client.get("/crm/customers/cus_005", headers=CRM_AUTH)
    assert response.status_code == 200
    assert response.json() == {
        "id": "cus_005",
        "name": "Elif Wagner",
        "email": "elif.wagner@example.com",
        "tier": "gold",
        "country": "SE",
    }


def test_unknown_customer_is_404_json(client: httpx.Client) -> None:
    response = client.get("/crm/customers/cus_999", headers=CRM_AUTH)
    assert response.status_code == 404
    assert "cus_999" in response.json()["error"]


def test_chat_post_then_list(client: httpx.Client) -> None:
    assert client.get("/chat/messages").json() == {"messages": []}

    first = client.post("/chat/messages", json={"channel": "ops", "text": "hello"})
    second = client.post("/chat/messages", json={"channel": "sales", "text": "world"})

    assert first.status_code == second.status_code == 201
    assert first.json() == {"id": "msg_0001", "channel": "ops", "text": "hello"}
    listed = client.get("/chat/messages").json()["messages"]
    assert [(m["channel"], m["text"]) for m in listed] == [("ops", "hello"), ("sales", "world")]


@pytest.mark.parametrize("body", [b"not json", b'{"channel": "ops"}', b'["ops", "text"]'])
def test_chat_rejects_bad_bodies(client: httpx.Client, body: bytes) -> None:
    response = client.post("/chat/messages", content=body)
    assert response.status_code == 400
    assert client.get("/chat/messages").json() == {"messages": []}


def test_chat_messages_belong_to_one_server() -> None:
    with running_demo_server() as first_url:
        httpx.post(f"{first_url}/chat/messages", json={"channel": "a", "text": "b"})
        with running_demo_server() as second_url:
            assert httpx.get(f"{second_url}/chat/messages").json() == {"messages": []}


def test_unknown_route_and_wrong_method(client: httpx.Client) -> None:
    assert client.get("/nope").status_code == 404
    assert client.post("/shop/orders", json={}).status_code == 405


# --- the routes of the other pagination styles (demo/paging_routes.py) ---


def fetch_product_pages(http: httpx.Client, limit: int) -> list[list[dict[str, Any]]]:
    """Offsets 0, limit, 2 * limit, ... until a page is empty."""
    pages = []
    for offset in range(0, 10_000, limit):
        query = {"offset": offset, "limit": limit}
        response = http.get("/shop/products", params=query, headers=SHOP_AUTH)
        assert response.status_code == 200, response.text
        assert response.json()["offset"] == offset
        pages.append(response.json()["products"])
        if not pages[-1]:
            return pages
    raise AssertionError("offset pagination does not end")


def fetch_review_pages(http: httpx.Client, **params: Any) -> list[list[dict[str, Any]]]:
    """Follows `Link: <...>; rel="next"` until there is none."""
    pages: list[list[dict[str, Any]]] = []
    response = http.get("/shop/reviews", params=params, headers=SHOP_AUTH)
    while True:
        assert response.status_code == 200, response.text
        pages.append(response.json())
        next_url = response.links.get("next", {}).get("url")
        if next_url is None:
            return pages
        assert next_url.startswith(str(http.base_url).rstrip("/") + "/shop/reviews?")
        assert len(pages) < 100, "link pagination does not end"
        response = http.get(next_url, headers=SHOP_AUTH)


def fetch_note_pages(http: httpx.Client, **params: Any) -> list[list[dict[str, Any]]]:
    """Follows the body's `next` URL until it is null."""
    pages = []
    response = http.get("/crm/notes", params=params, headers=CRM_AUTH)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["notes"])
        if body["next"] is None:
            return pages
        assert body["next"].startswith(str(http.base_url).rstrip("/") + "/crm/notes?")
        assert len(pages) < 100, "next-url pagination does not end"
        response = http.get(body["next"], headers=CRM_AUTH)


def fetch_customer_order_pages(http: httpx.Client, customer_id: str, **params: Any) -> list[dict]:
    """Follows `meta.nextCursor` until it is null; returns every page body."""
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        url = f"/shop/customers/{customer_id}/orders"
        response = http.get(url, params=query, headers=SHOP_AUTH)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        cursor = pages[-1]["meta"]["nextCursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "cursor pagination does not end"


def test_products_offset_pages_then_empty_page(client: httpx.Client) -> None:
    pages = fetch_product_pages(client, limit=8)

    assert [len(page) for page in pages] == [8, 8, 4, 0]
    products = [product for page in pages for product in page]
    assert [p["sku"] for p in products] == [f"sku_{n:03d}" for n in range(1, PRODUCT_COUNT + 1)]
    assert set(products[0]) == {"sku", "name", "category", "priceCents", "stock", "active"}
    assert products[0]["name"] == "Classic Mug" and products[10]["name"] == "Deluxe Mug"
    assert [p["sku"] for p in products if not p["active"]] == ["sku_007", "sku_014"]
    assert sum(p["priceCents"] for p in products) == 88_780
    skus = {item["sku"] for order in make_orders() for item in order["items"]}
    assert skus <= {p["sku"] for p in products}, "every ordered SKU is a product"


def test_reviews_follow_the_link_header(client: httpx.Client) -> None:
    pages = fetch_review_pages(client, per_page=25)

    assert [len(page) for page in pages] == [25, 25, 10]
    reviews = [review for page in pages for review in page]
    assert [r["reviewId"] for r in reviews] == [f"rev_{n:03d}" for n in range(1, REVIEW_COUNT + 1)]
    ratings = [r["rating"] for r in reviews]
    assert {n: ratings.count(n) for n in range(1, 6)} == {1: 12, 2: 14, 3: 10, 4: 13, 5: 11}
    assert reviews[0]["createdAt"] == "2026-09-02T12:00:00Z"


def test_review_links_name_first_prev_next_last(client: httpx.Client) -> None:
    first = client.get("/shop/reviews", headers=SHOP_AUTH)
    assert set(first.links) == {"first", "next", "last"}
    assert first.links["next"]["url"].endswith("/shop/reviews?page=2&per_page=20")
    last = client.get("/shop/reviews", params={"page": 3}, headers=SHOP_AUTH)
    assert set(last.links) == {"first", "prev", "last"}
    beyond = client.get("/shop/reviews", params={"page": 9}, headers=SHOP_AUTH)
    assert beyond.json() == [] and "next" not in beyond.links


def test_notes_follow_the_next_url_in_the_body(client: httpx.Client) -> None:
    pages = fetch_note_pages(client)

    assert [len(page) for page in pages] == [20, 20, 5]
    notes = [note for page in pages for note in page]
    assert [n["noteId"] for n in notes] == [f"note_{n:03d}" for n in range(1, NOTE_COUNT + 1)]
    assert set(notes[0]) == {"noteId", "customerId", "author", "channel", "text", "createdAt"}
    assert [len(page) for page in fetch_note_pages(client, limit=15)] == [15, 15, 15]


def test_notes_unknown_after_is_400(client: httpx.Client) -> None:
    response = client.get("/crm/notes", params={"after": "note_999"}, headers=CRM_AUTH)
    assert response.status_code == 400
    assert "note_999" in response.json()["error"]


def test_customer_orders_cursor_pages_cover_every_order_once(client: httpx.Client) -> None:
    by_customer: dict[str, list[str]] = {}
    for order in make_orders():
        by_customer.setdefault(order["customerId"], []).append(order["orderId"])
    seen = []
    for number in range(1, CUSTOMER_COUNT + 1):
        customer_id = f"cus_{number:03d}"
        pages = fetch_customer_order_pages(client, customer_id, limit=3)
        ids = [order["orderId"] for page in pages for order in page["data"]]
        assert ids == by_customer[customer_id]
        assert {page["meta"]["total"] for page in pages} == {len(ids)}
        assert len(pages) == max(1, -(-len(ids) // 3))
        seen += ids
    assert sorted(seen) == [f"ord_{n:04d}" for n in range(1, ORDER_COUNT + 1)]
    assert len(by_customer["cus_001"]) == 7


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/shop/customers/cus_999/orders", {}, 404),
        ("/shop/customers/cus_001/orders", {"cursor": "???"}, 400),
        ("/shop/customers/cus_001/orders", {"limit": 0}, 400),
        ("/shop/products", {"limit": 51}, 400),
        ("/shop/products", {"offset": -1}, 400),
        ("/shop/reviews", {"page": 0}, 400),
    ],
)
def test_paging_routes_refuse_bad_requests(
    client: httpx.Client, path: str, params: dict, status: int
) -> None:
    response = client.get(path, params=params, headers=SHOP_AUTH)
    assert response.status_code == status
    assert "error" in response.json()


def test_a_cursor_belongs_to_its_customer(client: httpx.Client) -> None:
    page = client.get("/shop/customers/cus_001/orders", params={"limit": 1}, headers=SHOP_AUTH)
    cursor = page.json()["meta"]["nextCursor"]
    other = client.get(
        "/shop/customers/cus_004/orders", params={"cursor": cursor}, headers=SHOP_AUTH
    )
    assert other.status_code == 400


@pytest.mark.parametrize(
    "path", ["/shop/products", "/shop/reviews", "/shop/customers/cus_001/orders", "/crm/notes"]
)
def test_paging_routes_need_their_secret(client: httpx.Client, path: str) -> None:
    assert client.get(path).status_code == 401
    wrong = CRM_AUTH if path.startswith("/shop") else SHOP_AUTH
    assert client.get(path, headers=wrong).status_code == 401


def test_channel_messages_are_filtered(client: httpx.Client) -> None:
    client.post("/chat/messages", json={"channel": "ops", "text": "one"})
    client.post("/chat/messages", json={"channel": "sales", "text": "two"})
    client.post("/chat/messages", json={"channel": "ops", "text": "three"})

    ops = client.get("/chat/channels/ops/messages").json()["messages"]
    assert [m["text"] for m in ops] == ["one", "three"]
    assert client.get("/chat/channels/nobody/messages").json() == {"messages": []}


def snapshot(base_url: str) -> dict[str, Any]:
    """Every order, customer, product, review and note a server serves."""
    with httpx.Client(base_url=base_url, timeout=10) as http:
        orders = all_orders(fetch_order_pages(http, limit=100))
        customers = fetch_customer_pages(http)
        one = http.get("/crm/customers/cus_040", headers=CRM_AUTH).json()
        products = http.get("/shop/products", params={"limit": 50}, headers=SHOP_AUTH).json()
        reviews = [r for page in fetch_review_pages(http) for r in page]
        notes = [n for page in fetch_note_pages(http) for n in page]
    return {
        "orders": orders,
        "customers": customers,
        "one": one,
        "products": products,
        "reviews": reviews,
        "notes": notes,
    }


def test_two_starts_serve_identical_data() -> None:
    first_server, first_url = start_demo_server()
    try:
        first = snapshot(first_url)
    finally:
        stop_demo_server(first_server)
    with running_demo_server() as second_url:
        assert snapshot(second_url) == first


def test_cli_process_serves_the_same_data() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "demo.server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        cli_data = snapshot(line.removeprefix("listening on "))
    finally:
        process.terminate()
        process.wait(timeout=10)
    with running_demo_server() as base_url:
        assert snapshot(base_url) == cli_data


def test_service_base_url_env() -> None:
    assert service_base_url_env("http://127.0.0.1:9999") == {
        "SERVICE_SHOP_BASE_URL": "http://127.0.0.1:9999/shop",
        "SERVICE_CRM_BASE_URL": "http://127.0.0.1:9999/crm",
        "SERVICE_CHAT_BASE_URL": "http://127.0.0.1:9999/chat",
        "SERVICE_STATS_BASE_URL": "http://127.0.0.1:9999/stats",
        "SERVICE_BILLING_BASE_URL": "http://127.0.0.1:9999/billing",
    }


def primary_keys(url: str) -> dict[str, list[str]]:
    engine = sqlalchemy.create_engine(url)
    try:
        inspector = sqlalchemy.inspect(engine)
        return {
            name: inspector.get_pk_constraint(name)["constrained_columns"]
            for name in inspector.get_table_names()
        }
    finally:
        engine.dispose()


def test_demo_schema_is_created_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/nested/demo.db"

    assert ensure_demo_schema(url) == [
        "customer_order_history",
        "orders_enriched",
        "revenue_by_tier",
    ]
    assert ensure_demo_schema(url) == []
    assert primary_keys(url) == {
        "customer_order_history": ["customer_id"],
        "orders_enriched": ["order_id"],
        "revenue_by_tier": ["tier"],
    }


def test_demo_schema_refuses_a_table_with_another_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/demo.db"
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("CREATE TABLE revenue_by_tier (id INTEGER PRIMARY KEY)"))
    engine.dispose()

    with pytest.raises(DemoSchemaError, match=r"revenue_by_tier.*\['tier'\]"):
        ensure_demo_schema(url)


def test_demo_schema_for_app_uses_the_app_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("resources.app_database")
    monkeypatch.delenv("APP_DB_URL__DEMO_SHOP", raising=False)
    monkeypatch.delenv("APP_DB_URL__DEMO-SHOP", raising=False)
    monkeypatch.setenv("APP_DB_URL", f"sqlite:///{tmp_path}/{{app_id}}.db")

    ensure_demo_schema_for_app("demo-shop")

    assert set(primary_keys(f"sqlite:///{tmp_path}/demo-shop.db")) == {
        "customer_order_history",
        "orders_enriched",
        "revenue_by_tier",
    }


DEFS = Path(__file__).resolve().parents[1] / "workflow_defs"


@pytest.mark.parametrize(
    ("relative_path", "model"),
    [
        ("services/shop.json", ServiceSpec),
        ("services/crm.json", ServiceSpec),
        ("services/chat.json", ServiceSpec),
        ("apps/demo-shop/workflows/syncEnrichedOrders.json", WorkflowSpec),
        ("apps/demo-shop/workflows/notifyTopCustomers.json", WorkflowSpec),
        ("apps/demo-shop/workflows/customerOrderHistory.json", WorkflowSpec),
        ("apps/demo-shop/schedules.json", SchedulesFileSpec),
    ],
)
def test_demo_definitions_parse(relative_path: str, model: type[BaseModel]) -> None:
    model.model_validate(json.loads((DEFS / relative_path).read_text()))


def test_catalog_paths_match_the_server_routes() -> None:
    routes = {
        "shop": {
            "/orders",
            "/products",
            "/reviews",
            "/customers/{customerId}/orders",
            "/exports/{exportId}",
        },
        "crm": {"/customers", "/customers/{customerId}", "/notes"},
        "chat": {"/messages", "/channels/{channel}/messages"},
    }
    for name, paths in routes.items():
        service = ServiceSpec.model_validate(
            json.loads((DEFS / f"services/{name}.json").read_text())
        )
        assert service.base_url == f"http://127.0.0.1:8765/{name}"
        assert {operation.path for operation in service.operations.values()} == paths
