"""The demo workflow `customerOrderHistory` end to end: a paginated call per customer
(forEach + cursor), a SQL summary and an upsert, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest

from demo.app_schema import ensure_demo_schema
from demo.server import (
    CUSTOMER_COUNT,
    demo_secrets_env,
    make_customers,
    make_orders,
    running_demo_server,
    service_base_url_env,
)
from tests.support.app_tables import rows
from tests.support.jobs import REAL_DEFS, load, run_job

pytestmark = pytest.mark.integration

JOB = "demo_shop__customerOrderHistory"
PAID = ("paid", "shipped")


@pytest.fixture(params=["sqlite", "postgres"])
def app_db_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    url = request.getfixturevalue("sqlite_app_url" if request.param == "sqlite" else "pg_app_url")
    monkeypatch.setenv("APP_DB_URL__DEMO_SHOP", url)
    ensure_demo_schema(url)
    return url


@pytest.fixture
def defs(monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.Definitions]:
    with running_demo_server() as base_url:
        for name, value in {**service_base_url_env(base_url), **demo_secrets_env()}.items():
            monkeypatch.setenv(name, value)
        yield load(REAL_DEFS)[1]


def expected_history() -> list[tuple[Any, ...]]:
    """(customer, name, tier, orders, paid orders, items, paid revenue) from the demo data."""
    customers = {c["id"]: c for c in make_customers()}
    history: dict[str, list[Any]] = {}
    for order in make_orders():
        customer = customers[order["customerId"]]
        entry = history.setdefault(
            customer["id"], [customer["id"], customer["name"], customer["tier"], 0, 0, 0, 0]
        )
        entry[3] += 1
        entry[5] += len(order["items"])
        if order["status"] in PAID:
            entry[4] += 1
            entry[6] += order["totalCents"]
    return [tuple(entry) for _, entry in sorted(history.items())]


HISTORY_QUERY = (
    "SELECT customer_id, customer_name, tier, order_count, paid_order_count, item_count, "
    "revenue_cents FROM customer_order_history ORDER BY customer_id"
)


def test_history_has_every_customer_and_order(defs: dg.Definitions, app_db_url: str) -> None:
    result = run_job(defs, JOB)
    assert result.success

    expected = expected_history()
    assert len(expected) == CUSTOMER_COUNT
    assert rows(app_db_url, HISTORY_QUERY) == expected
    assert sum(entry[3] for entry in expected) == 250
    assert result.output_for_node("fetch_customer_orders").row_count == 250
    first, last = rows(
        app_db_url,
        "SELECT first_order_at, last_order_at FROM customer_order_history "
        "WHERE customer_id = 'cus_001'",
    )[0]
    assert str(first).startswith("2026-09-06 13:26:24")
    assert str(last).startswith("2026-10-15 10:33:36")


def test_failed_customers_are_skipped_and_keep_their_rows(
    defs: dg.Definitions, app_db_url: str
) -> None:
    assert run_job(defs, JOB).success
    before = rows(app_db_url, HISTORY_QUERY)

    # limit=0 is a 400 for every customer: each item fails, is skipped, and the run succeeds.
    result = run_job(defs, JOB, {"pageSize": 0})
    assert result.success
    fetch = next(
        e
        for e in result.all_events
        if e.step_key == "fetch_customer_orders" and e.event_type_value == "STEP_OUTPUT"
    )
    metadata = fetch.event_specific_data.metadata  # type: ignore[union-attr]
    assert metadata["items skipped"].value == CUSTOMER_COUNT
    assert metadata["items done"].value == 0
    assert result.output_for_node("order_history").row_count == 0
    assert rows(app_db_url, HISTORY_QUERY) == before
