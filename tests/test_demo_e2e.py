"""The demo app end to end through Dagster: demo services on 127.0.0.1, the app database
on SQLite and on PostgreSQL, rows checked in the database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import httpx
import pytest

from demo.app_schema import ensure_demo_schema
from demo.server import (
    demo_secrets_env,
    orders_since,
    running_demo_server,
    service_base_url_env,
)
from tests.support.app_tables import rows
from tests.support.jobs import REAL_DEFS, load
from translators.schedules import run_config_for

# A fixed logical time: `since` (45 days back) is 2026-10-11 whatever today is.
LOGICAL_TIME = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)
SINCE = dt.date(2026, 10, 11)
SYNC_JOB = "demo_shop__syncEnrichedOrders"
NOTIFY_JOB = "demo_shop__notifyTopCustomers"


@pytest.fixture(params=["sqlite", "postgres"])
def app_db_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    url = request.getfixturevalue("sqlite_app_url" if request.param == "sqlite" else "pg_app_url")
    monkeypatch.setenv("APP_DB_URL__DEMO_SHOP", url)
    ensure_demo_schema(url)
    return url


@pytest.fixture
def demo_base_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with running_demo_server() as base_url:
        for name, value in {**service_base_url_env(base_url), **demo_secrets_env()}.items():
            monkeypatch.setenv(name, value)
        yield base_url


def run(job_name: str, params: dict | None = None) -> dg.ExecuteInProcessResult:
    _, defs = load(REAL_DEFS)
    return defs.resolve_job_def(job_name).execute_in_process(
        run_config=run_config_for(params or {}, LOGICAL_TIME, "UTC")
    )


def test_sync_upserts_the_enriched_orders(demo_base_url: str, app_db_url: str) -> None:
    result = run(SYNC_JOB)
    assert result.success
    expected = orders_since(SINCE)
    assert len(expected) == 87
    landed = rows(app_db_url, "SELECT order_id, customer_name, total_cents FROM orders_enriched")
    assert sorted(r[0] for r in landed) == sorted(o["orderId"] for o in expected)
    assert all(name for _, name, _ in landed), "every order found its CRM customer"
    assert rows(
        app_db_url, "SELECT tier, order_count, revenue_cents FROM revenue_by_tier ORDER BY tier"
    ) == [("bronze", 25, 614876), ("gold", 15, 425824), ("silver", 31, 897644)]


def test_second_sync_changes_nothing(demo_base_url: str, app_db_url: str) -> None:
    assert run(SYNC_JOB).success
    query = "SELECT order_id, tier, total_cents, status FROM orders_enriched ORDER BY order_id"
    first = rows(app_db_url, query)
    assert run(SYNC_JOB).success
    assert rows(app_db_url, query) == first
    assert rows(app_db_url, "SELECT count(*) FROM revenue_by_tier") == [(3,)]


def test_notify_posts_top_customers_only_when_asked(demo_base_url: str, app_db_url: str) -> None:
    assert run(SYNC_JOB).success
    quiet = run(NOTIFY_JOB)
    assert quiet.success
    messages_url = f"{demo_base_url}/chat/messages"
    assert httpx.get(messages_url).json()["messages"] == []

    assert run(NOTIFY_JOB, {"sendNotifications": True, "notifyChannel": "sales"}).success
    messages = httpx.get(messages_url).json()["messages"]
    assert len(messages) == 6
    assert {m["channel"] for m in messages} == {"sales"}
    assert any(m["text"].startswith("Ben Wagner (") for m in messages)
