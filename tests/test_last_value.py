"""lastValue (incremental loads, SPEC 5.4 extension): three runs against a shop whose
orders grow fetch only new orders (the server's request log is the witness); a failed
run and a backfill run do not move the value; `workflows state reset` does."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import pytest

from demo.server import (
    demo_secrets_env,
    make_orders,
    service_base_url_env,
    start_demo_server,
    stop_demo_server,
)
from tests.support.jobs import load, write_defs
from translators.cli import main as cli_main
from translators.cli_home import MINIMAL_INSTANCE_YAML, cli_instance
from translators.schedules import run_config_for

INITIAL = "2000-01-01T00:00:00Z"
WORKFLOW = {
    "variables": {
        "since": {"type": "lastValue", "from": "orders.created_at", "initial": INITIAL},
        "appId": {"type": "param", "default": "shop"},
    },
    "steps": [
        {
            "id": "fetch_orders",
            "service": "shop",
            "operation": "listOrders",
            "params": {"createdAfter": "{{var.since}}", "limit": 100},
            "paginate": {"type": "cursor", "cursorField": "nextCursor", "cursorParam": "cursor"},
            "dataPath": "data.orders",
            "outputTable": "orders",
            "outputSchema": {"order_id": "VARCHAR", "created_at": "TIMESTAMPTZ"},
        },
        {  # fails after the lastValue's table is made when a poison order arrives
            "sql": "SELECT CASE WHEN max(order_id) = 'ord_9999' THEN error('poison order') "
            "ELSE count(*) END AS n FROM orders",
            "outputTable": "checked",
        },
    ],
}
ALL = make_orders()


@pytest.fixture
def shop(monkeypatch: pytest.MonkeyPatch):
    server, url = start_demo_server()
    for name, value in {**service_base_url_env(url), **demo_secrets_env()}.items():
        monkeypatch.setenv(name, value)
    server.state.orders = ALL[:5]
    try:
        yield server
    finally:
        stop_demo_server(server)


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(MINIMAL_INSTANCE_YAML)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("WORKFLOWS_DATA_DIR", str(tmp_path / "data"))
    return cli_instance(home)


def _run(defs, instance, shop, **tags: str) -> tuple[bool, list[str]]:
    """One run; whether it succeeded and the createdAfter values it asked the shop for."""
    shop.state.requests.clear()
    job = defs.resolve_job_def("shop__incremental")
    result = job.execute_in_process(
        run_config=run_config_for({}, None, "UTC"),
        instance=instance,
        raise_on_error=False,
        tags=tags,
    )
    asked = [
        parse_qs(urlsplit(line.split(" ", 1)[1]).query)["createdAfter"][0]
        for line in shop.state.requests
        if "/shop/orders" in line
    ]
    return result.success, asked


def test_runs_fetch_only_new_orders_failures_and_backfills_keep_the_value(
    tmp_path: Path, shop, instance: dg.DagsterInstance
) -> None:
    defs_dir = write_defs(tmp_path / "defs", "shop", {"incremental": WORKFLOW}, ("shop",))
    _, defs = load(defs_dir)
    created = [order["createdAt"] for order in ALL]

    assert _run(defs, instance, shop) == (True, [INITIAL])  # 5 orders
    shop.state.orders = ALL[:8]
    assert _run(defs, instance, shop) == (True, [created[4]])  # only orders 6..8
    shop.state.orders = ALL[:9]
    assert _run(defs, instance, shop) == (True, [created[7]])  # only order 9

    poison = {**ALL[9], "orderId": "ord_9999"}
    shop.state.orders = [*ALL[:9], poison]
    assert _run(defs, instance, shop) == (False, [created[8]])  # fails after fetching
    shop.state.orders = ALL[:10]
    assert _run(defs, instance, shop) == (True, [created[8]])  # the failure moved nothing

    shop.state.orders = ALL[:11]
    assert _run(defs, instance, shop, **{"dagster/backfill": "bf1"}) == (True, [created[9]])
    assert _run(defs, instance, shop) == (True, [created[9]])  # the backfill moved nothing

    assert cli_main(["state", "show", "shop/incremental", "--defs", str(defs_dir)]) == 0
    assert cli_main(["state", "reset", "shop/incremental", "--defs", str(defs_dir)]) == 0
    assert _run(defs, instance, shop) == (True, [INITIAL])
    # A reset of one param set leaves the others; this one starts again.
    args = ["state", "reset", "shop/incremental", "--param", "appId=other", "--defs", str(defs_dir)]
    assert cli_main(args) == 0
    assert _run(defs, instance, shop) == (True, [created[10]])
    args[4] = "appId=shop"
    assert cli_main(args) == 0
    assert _run(defs, instance, shop) == (True, [INITIAL])


def test_from_must_name_an_output_table_and_a_column(tmp_path: Path) -> None:
    from translators.loader import load_definitions

    bad = {
        **WORKFLOW,
        "variables": {
            "a": {"type": "lastValue", "from": "nope.created_at"},
            "b": {"type": "lastValue", "from": "orders.updated_at"},
            "c": {"type": "lastValue", "from": "orders.order_id", "lookback": "2d"},
        },
    }
    loaded = load_definitions(write_defs(tmp_path / "defs", "shop", {"bad": bad}, ("shop",)))
    text = "\n".join(str(p) for p in loaded.problems)
    assert "bad.json#/variables/a/from" in text and "no step makes" in text
    assert "bad.json#/variables/b/from" in text and "no column 'updated_at'" in text
    assert "bad.json#/variables/c/lookback" in text and "needs a date or timestamp" in text
