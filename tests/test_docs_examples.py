"""The runnable examples of docs/: every file validates, every example workflow runs
against the demo services and produces the rows the docs promise, and the JSON shown in
the docs is the JSON that runs."""

from __future__ import annotations

import datetime as dt
import json
import re
import runpy
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import dagster as dg
import httpx
import pyarrow.parquet as pq
import pytest

from demo.paging_routes import make_products
from demo.server import (
    demo_secrets_env,
    make_customers,
    make_orders,
    orders_since,
    running_demo_server,
    service_base_url_env,
)
from tests.support.app_tables import rows
from tests.support.jobs import PROJECT_ROOT, REAL_DEFS, load
from translators.schedules import run_config_for

pytestmark = pytest.mark.integration

DOCS = PROJECT_ROOT / "docs"
EXAMPLES = DOCS / "examples" / "workflow_defs"
WORKFLOWS = EXAMPLES / "apps" / "docs" / "workflows"
APP = "docs"
PAID = ("paid", "shipped")
CUSTOMERS = {customer["id"]: customer for customer in make_customers()}


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return load(EXAMPLES)[1]


@pytest.fixture
def demo(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The demo services and an SQLite app database with the docs tables."""
    with running_demo_server() as base_url:
        for name, value in {**service_base_url_env(base_url), **demo_secrets_env()}.items():
            monkeypatch.setenv(name, value)
        yield base_url


def docs_tables(url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the docs app at `url` and create its tables with the docs' own script."""
    monkeypatch.setenv("APP_DB_URL", url)
    setup = runpy.run_path(str(DOCS / "examples" / "setup_tables.py"))
    setup["ensure_docs_tables"](url)
    return url


@pytest.fixture
def app_db(sqlite_app_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    return docs_tables(sqlite_app_url, monkeypatch)


@pytest.fixture(params=["sqlite", "postgres"])
def any_app_db(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The database examples run on both kinds of app database."""
    url = request.getfixturevalue("sqlite_app_url" if request.param == "sqlite" else "pg_app_url")
    return docs_tables(url, monkeypatch)


def run(
    defs: dg.Definitions,
    stem: str,
    params: dict[str, Any] | None = None,
    logical_time: dt.datetime | None = None,
) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(f"{APP}__{stem}")
    return job.execute_in_process(
        run_config=run_config_for(params or {}, logical_time, "UTC"), raise_on_error=False
    )


def table(result: dg.ExecuteInProcessResult, step: str) -> list[dict[str, Any]]:
    """The rows of a step's output table."""
    return pq.read_table(result.output_for_node(step).path).to_pylist()


def step_metadata(result: dg.ExecuteInProcessResult, step: str) -> dict[str, Any]:
    for event in result.all_events:
        if event.step_key == step and event.event_type_value == "STEP_OUTPUT":
            metadata = event.event_specific_data.metadata  # type: ignore[union-attr]
            return {key: value.value for key, value in metadata.items()}
    raise AssertionError(f"step {step} produced no output")


def skipped(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.step_key or "" for e in result.all_events if e.event_type_value == "STEP_SKIPPED"}


def messages(base_url: str) -> list[tuple[str, str]]:
    listed = httpx.get(f"{base_url}/chat/messages").json()["messages"]
    return [(m["channel"], m["text"]) for m in listed]


# ---------------------------------------------------------------- one test per example


def check_service_call(defs: dg.Definitions, base_url: str) -> None:
    result = run(defs, "serviceCall")
    assert result.success
    assert table(result, "get_customer") == [
        dict(CUSTOMERS["cus_005"])  # one object -> one row
    ]
    orders = table(result, "first_orders")
    expected = orders_since(dt.date(2026, 10, 1))[:20]
    assert [o["order_id"] for o in orders] == [o["orderId"] for o in expected]
    assert orders[0]["created_at"] == dt.datetime(2026, 10, 1, 0, 57, 36, tzinfo=dt.UTC)
    assert messages(base_url) == [
        ("docs", "Fetched customer cus_005 and the first orders since 2026-10-01")
    ]
    assert step_metadata(result, "announce")["records"] == 1


def check_sql(defs: dg.Definitions, base_url: str) -> None:
    result = run(defs, "sql")
    assert result.success
    big = [o for o in make_orders() if o["totalCents"] >= 5000 and o["status"] in PAID]
    assert table(result, "big_orders_by_status") == [
        {
            "status": status,
            "order_count": sum(1 for o in big if o["status"] == status),
            "revenue_eur": Decimal(sum(o["totalCents"] for o in big if o["status"] == status))
            / 100,
        }
        for status in PAID
    ]
    assert result.output_for_node("big_orders_by_status").columns["revenue_eur"] == (
        "DECIMAL(12,2)"
    )
    units: dict[str, int] = {}
    for order in make_orders():
        for item in order["items"]:
            units[item["sku"]] = units.get(item["sku"], 0) + item["quantity"]
    by_sku = {row["sku"]: row["units"] for row in table(result, "units_by_sku")}
    assert by_sku == units
    assert sum(by_sku.values()) == 1205


def check_paginate(defs: dg.Definitions, base_url: str) -> None:
    result = run(defs, "paginate")
    assert result.success
    assert [(r["style"], r["row_count"]) for r in table(result, "fetched")] == [
        ("cursor", 250),
        ("pageNumber", 40),
        ("offset", 20),
        ("link", 60),
        ("nextUrl", 45),
    ]
    pages = {
        step: step_metadata(result, step)["pages"]
        for step in (
            "orders_by_cursor",
            "customers_by_page_number",
            "products_by_offset",
            "reviews_by_link_header",
            "notes_by_next_url",
        )
    }
    # pageNumber and offset stop at the first empty page, so they ask for one more.
    assert pages == {
        "orders_by_cursor": 3,
        "customers_by_page_number": 4,
        "products_by_offset": 4,
        "reviews_by_link_header": 3,
        "notes_by_next_url": 3,
    }
    assert table(result, "products_by_offset")[0] == {"sku": "sku_001", "price_cents": 3899}


def check_import(defs: dg.Definitions, base_url: str) -> None:
    result = run(defs, "importFromDatabase")
    assert result.success
    assert result.output_for_node("load_targets").columns == {
        "tier": "VARCHAR",
        "monthly_target_cents": "BIGINT",
    }
    flagged = table(result, "flagged_customers")
    assert [
        (r["customer_id"], r["name"], r["tier"], r["monthly_target_cents"]) for r in flagged
    ] == [
        ("cus_001", "Anna Schmidt", "silver", 300_000),
        ("cus_005", "Elif Wagner", "gold", 400_000),
        ("cus_020", "Jonas Wagner", "gold", 400_000),
    ]
    assert flagged[0]["flagged_on"] == dt.date(2026, 10, 2)
    ids = [row["import_id"] for row in table(result, "load_flagged")]
    assert len({UUID(str(i)) for i in ids}) == 3

    vip = run(defs, "importFromDatabase", {"flag": "vip"})
    assert [r["customer_id"] for r in table(vip, "flagged_customers")] == ["cus_012", "cus_040"]


def check_persist(defs: dg.Definitions, base_url: str, app_db: str) -> None:
    result = run(defs, "persistToDatabase")
    assert result.success
    products = make_products()
    refused = [p["sku"] for p in products if p["priceCents"] > 9000]
    assert refused == ["sku_007", "sku_018"]
    upsert = step_metadata(result, "upsert_catalog")
    assert (upsert["rows written"], upsert["rows skipped"]) == (18, 2)
    assert upsert["row errors"][0].startswith("row 7: ")
    assert rows(app_db, "SELECT sku FROM catalog_products ORDER BY sku") == [
        (p["sku"],) for p in products if p["sku"] not in refused
    ]
    active = [p for p in products if p["active"]]
    expected_stock = sorted(
        (category, sum(1 for p in active if p["category"] == category),
         sum(p["stock"] for p in active if p["category"] == category))
        for category in {p["category"] for p in active}
    )  # fmt: skip
    stock_query = "SELECT category, sku_count, total_stock FROM category_stock ORDER BY category"
    assert rows(app_db, stock_query) == expected_stock

    assert run(defs, "persistToDatabase").success  # a second run
    assert rows(app_db, "SELECT count(*) FROM catalog_products") == [(18,)]
    assert rows(app_db, stock_query) == expected_stock, "replaceAll replaced, not added"
    snapshots = rows(app_db, "SELECT id, sku FROM stock_snapshots")
    assert len(snapshots) == 40, "append added 20 rows per run"
    assert len({snapshot_id for snapshot_id, _ in snapshots}) == 40
    assert all(re.fullmatch(r"[a-z][a-z0-9]{23}", snapshot_id) for snapshot_id, _ in snapshots)


def check_branch(defs: dg.Definitions, base_url: str) -> None:
    refunds = sum(1 for o in make_orders() if o["status"] == "refunded")
    assert refunds == 32
    result = run(defs, "branch")  # 32 > 30: alert; notify is false: no summary
    assert result.success
    assert skipped(result) == {"post_summary"}
    assert table(result, "too_many_refunds") == [{"value": True}]
    assert len(table(result, "alert_log")) == 1
    assert messages(base_url) == [("docs", "More than 30 refunded orders!")]

    quiet = run(defs, "branch", {"maxRefunds": 40, "notify": True})
    assert quiet.success
    assert skipped(quiet) == {"alert", "alert_log"}
    assert messages(base_url)[1:] == [("docs", "Refund check done")]


def check_wait(defs: dg.Definitions, base_url: str) -> None:
    result = run(defs, "wait")
    assert result.success
    before, after = table(result, "timeline")
    assert (before["label"], after["label"]) == ("before", "after")
    assert after["taken_at"] - before["taken_at"] >= dt.timedelta(seconds=2)
    assert step_metadata(result, "pause")["waited seconds"] == 2.0
    assert step_metadata(result, "hold_until")["waited seconds"] == 0.0


def check_wait_poll(defs: dg.Definitions, base_url: str) -> None:
    result = run(defs, "waitPoll")
    assert result.success
    assert step_metadata(result, "export_ready")["polls"] == 3  # pending, pending, ready
    assert table(result, "export") == [
        {"id": "orders-2026-10", "status": "ready", "row_count": len(make_orders())}
    ]


def check_response_actions(defs: dg.Definitions, base_url: str) -> None:
    result = run(defs, "responseActions")
    assert result.success
    days = {o["createdAt"][:10] for o in make_orders()}
    assert [r["day"] for r in table(result, "daily_stats")] == sorted(
        d for d in ("2026-10-30", "2026-10-31", "2026-11-01") if d in days
    ), "2026-11-01 has no orders: its 404 is ignored"
    paid = [o for o in make_orders() if o["status"] in PAID]
    # cus_004 and cus_012 have no billing account (404, ignored); cus_005 was retried.
    wanted = sorted(
        (o["customerId"], f"inv_{o['orderId'][4:]}", o["totalCents"])
        for o in paid
        if o["customerId"] in ("cus_001", "cus_005")
    )
    got = sorted(tuple(r.values()) for r in table(result, "invoices"))
    assert got == wanted and {r[0] for r in got} == {"cus_001", "cus_005"}
    assert step_metadata(result, "invoices")["retries"] == 1


def check_for_each(defs: dg.Definitions, base_url: str) -> None:
    result = run(defs, "forEach")
    assert result.success
    lookup = step_metadata(result, "lookup_customers")
    assert (lookup["items done"], lookup["items skipped"]) == (3, 1)
    assert lookup["skipped items"][0]["key"] == "cus_999"
    assert "HTTP 404" in lookup["skipped items"][0]["error"]
    wanted = {"cus_001": "vip", "cus_005": "vip", "cus_012": "new"}
    assert sorted((r["customer_id"], r["segment"]) for r in table(result, "lookup_customers")) == (
        sorted(wanted.items())
    )
    counts = {c: sum(1 for o in make_orders() if o["customerId"] == c) for c in wanted}
    assert counts == {"cus_001": 7, "cus_005": 5, "cus_012": 11}
    assert len(table(result, "orders_per_customer")) == 23
    assert step_metadata(result, "orders_per_customer")["pages"] == sum(
        -(-n // 2) for n in counts.values()
    )
    assert sorted(messages(base_url)) == sorted(
        ("docs", f"{CUSTOMERS[c]['name']} ({wanted[c]}): {counts[c]} orders") for c in wanted
    )


def check_pre_execute(defs: dg.Definitions, base_url: str) -> None:
    first = run(defs, "preExecute")
    assert first.success
    greeting = {"message_id": "msg_0001", "channel": "docs-greetings", "text": (
        "Hello from the docs examples"
    )}  # fmt: skip
    assert table(first, "greet_once") == [greeting]
    assert "preExecute" not in step_metadata(first, "greet_once")

    second = run(defs, "preExecute")
    assert second.success
    assert table(second, "greet_once") == [greeting], "the rows come from preExecute"
    assert step_metadata(second, "greet_once")["preExecute"].startswith("1 record(s) found")
    assert len(messages(base_url)) == 1, "the second run posted nothing"


def check_pre_execute_per_item(defs: dg.Definitions, base_url: str) -> None:
    channels = ("docs-team-a", "docs-team-b", "docs-team-c")
    welcomes = [
        {"message_id": f"msg_{n:04d}", "welcomed": channel, "text": f"Welcome to {channel}"}
        for n, channel in enumerate(channels, 1)
    ]
    for found in (0, 3):  # the second run finds every channel's message and posts nothing
        result = run(defs, "preExecutePerItem")
        assert result.success
        rows = sorted(table(result, "welcome_each_once"), key=lambda r: r["message_id"])
        assert rows == welcomes
        assert step_metadata(result, "welcome_each_once")["items found by preExecute"] == found
        assert len(messages(base_url)) == 3


def check_field_mapping(defs: dg.Definitions, base_url: str) -> None:
    result = run(defs, "fieldMapping")
    assert result.success
    shaped = table(result, "shape_orders")
    source = make_orders()[:5]
    assert [r["order_id"] for r in shaped] == [o["orderId"] for o in source]
    assert [r["customer"] for r in shaped] == [o["customerId"] for o in source]
    assert [r["total_cents"] for r in shaped] == [o["totalCents"] for o in source]
    assert [r["first_sku"] for r in shaped] == [o["items"][0]["sku"] for o in source]
    assert [r["first_quantity"] for r in shaped] == [o["items"][0]["quantity"] for o in source]
    assert [json.loads(r["items"]) for r in shaped] == [o["items"] for o in source]
    assert {r["coupon_code"] for r in shaped} == {None}
    assert len({r["row_id"] for r in shaped}) == 5
    assert all(isinstance(r["fetched_at"], dt.datetime) for r in shaped)
    customers = table(result, "customer_of_each_order")
    assert sorted((r["order_id"], r["customer_name"]) for r in customers) == [
        (o["orderId"], CUSTOMERS[o["customerId"]]["name"]) for o in source
    ]


LOGICAL_TIME = dt.datetime(2026, 11, 1, 6, 0, tzinfo=dt.UTC)


def check_variables(defs: dg.Definitions, base_url: str) -> None:
    result = run(defs, "variables", {"runLabel": "nightly"}, LOGICAL_TIME)
    assert result.success
    recent = orders_since(dt.date(2026, 10, 2))
    assert len(table(result, "fetch_recent_orders")) == len(recent) == 125
    big = [o for o in recent if o["totalCents"] >= 10_000]
    [summary] = table(result, "summary")
    assert summary == {
        "run_label": "nightly",
        "title": "orders since 2026-10-02 (run nightly)",
        "since": dt.date(2026, 10, 2),
        "today": dt.date(2026, 11, 1),
        "logical_time": LOGICAL_TIME,
        "order_count": len(big),
        "total_cents": sum(o["totalCents"] for o in big),
    }
    assert messages(base_url) == [
        ("docs", "Run nightly: orders of at least 10000 cents since 2026-10-02, status ")
    ]

    params = {"runLabel": "p", "status": "paid", "minTotalCents": 0}
    paid = run(defs, "variables", params, LOGICAL_TIME)
    assert paid.success
    assert table(paid, "summary")[0]["order_count"] == sum(o["status"] == "paid" for o in recent)
    with pytest.raises(dg.DagsterInvalidConfigError, match="runLabel"):
        run(defs, "variables")  # a required param is refused at launch


DB_FREE: dict[str, Callable[[dg.Definitions, str], None]] = {
    "serviceCall": check_service_call,
    "sql": check_sql,
    "paginate": check_paginate,
    "branch": check_branch,
    "wait": check_wait,
    "waitPoll": check_wait_poll,
    "responseActions": check_response_actions,
    "forEach": check_for_each,
    "preExecute": check_pre_execute,
    "preExecutePerItem": check_pre_execute_per_item,
    "fieldMapping": check_field_mapping,
    "variables": check_variables,
}
WITH_DB = {"importFromDatabase", "persistToDatabase"}


@pytest.mark.parametrize("stem", sorted(DB_FREE))
def test_example_runs(stem: str, defs: dg.Definitions, demo: str, app_db: str) -> None:
    DB_FREE[stem](defs, demo)


def test_import_example(defs: dg.Definitions, demo: str, any_app_db: str) -> None:
    check_import(defs, demo)


def test_persist_example(defs: dg.Definitions, demo: str, any_app_db: str) -> None:
    check_persist(defs, demo, any_app_db)


# ---------------------------------------------------------------- the files themselves


def test_every_example_file_validates_and_has_a_test() -> None:
    loaded, _ = load(EXAMPLES)  # asserts that there are no problems
    stems = {w.stem for w in loaded.workflows}
    assert stems == set(DB_FREE) | WITH_DB
    assert sorted(loaded.services) == ["billing", "chat", "crm", "shop", "stats"]


def test_example_catalog_is_the_demo_catalog() -> None:
    for path in sorted((EXAMPLES / "services").glob("*.json")):
        assert path.read_text() == (REAL_DEFS / "services" / path.name).read_text(), path.name


def json_blocks(page: Path) -> list[Any]:
    blocks = re.findall(r"^```json\n(.*?)^```", page.read_text(), flags=re.M | re.S)
    return [json.loads(block) for block in blocks]


def doc_pages() -> list[Path]:
    return sorted(DOCS.glob("**/*.md"))


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_workflows_shown_in_the_docs_are_the_example_files(page: Path) -> None:
    files = {path.stem: json.loads(path.read_text()) for path in WORKFLOWS.glob("*.json")}
    catalog = {p.stem: json.loads(p.read_text()) for p in (EXAMPLES / "services").glob("*.json")}
    for block in json_blocks(page):
        if isinstance(block, dict) and "steps" in block:
            assert block in files.values(), f"{page}: a workflow that is not an example file"
        if isinstance(block, dict) and "operations" in block:
            assert block in catalog.values(), f"{page}: a service that is not the catalog's"
    for stem in re.findall(r"workflows run docs/([A-Za-z0-9_-]+)", page.read_text()):
        assert stem in files, f"{page}: `workflows run docs/{stem}` names no example"


def test_every_step_and_modifier_page_shows_its_example() -> None:
    shown = {
        page.stem: [b for b in json_blocks(page) if isinstance(b, dict) and "steps" in b]
        for page in [*DOCS.glob("steps/*.md"), *DOCS.glob("modifiers/*.md")]
    }
    assert set(shown) == {
        "service-call", "sql", "import-from-database", "persist-to-database", "branch", "wait",
        "paginate", "for-each", "pre-execute", "field-mapping", "variables", "response-actions",
    }  # fmt: skip
    assert all(shown.values()), [stem for stem, blocks in shown.items() if not blocks]
    every = [block for blocks in shown.values() for block in blocks]
    for path in WORKFLOWS.glob("*.json"):
        assert json.loads(path.read_text()) in every, f"{path.name} is shown on no page"


def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    headings = re.findall(r"^#+ (.*)$", page.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_links_between_pages_resolve(page: Path) -> None:
    for target in re.findall(r"\]\(([^)]+)\)", page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page}: link to {target}"
        if anchor:
            assert anchor in heading_anchors(linked), f"{page}: no heading for {target}"
