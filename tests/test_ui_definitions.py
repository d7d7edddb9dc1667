"""What a Dagster user sees (issue 9): app tables as assets with lineage, kinds and
descriptions on ops, launchpad config with types and defaults, typed metadata, and a
graph without an edge from resolve_variables into every op."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from demo.app_schema import ensure_demo_schema
from demo.server import demo_secrets_env, running_demo_server, service_base_url_env
from tests.support.jobs import REAL_DEFS, load, write_defs
from translators.job_builder import VARIABLES_OP
from translators.schedules import run_config_for

SYNC_JOB = "demo_shop__syncEnrichedOrders"
LOGICAL_TIME = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)


def key(text: str) -> dg.AssetKey:
    return dg.AssetKey.from_user_string(text)


@pytest.fixture(scope="module")
def demo_defs() -> dg.Definitions:
    return load(REAL_DEFS)[1]


def test_persisted_app_tables_are_assets_with_their_sources_upstream(
    demo_defs: dg.Definitions,
) -> None:
    graph = demo_defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {
        "demo-shop/orders_enriched",
        "demo-shop/revenue_by_tier",
        "demo-shop/customer_order_history",
    } <= keys
    orders = graph.get(key("demo-shop/orders_enriched"))
    assert {k.to_user_string() for k in orders.parent_keys} == {
        "shop/listOrders",
        "crm/listCustomers",
    }
    specs = graph.get(key("demo-shop/orders_enriched")).assets_def.specs
    spec = next(s for s in specs if s.key == key("demo-shop/orders_enriched"))
    assert spec.group_name == "demo_shop"
    assert spec.kinds == {"table", "sqlite"}
    assert spec.owners == ["team:demo_shop"]
    assert "demo_shop__syncEnrichedOrders" in (spec.description or "")
    assert spec.metadata["dagster/table_name"] == "orders_enriched"


def test_a_table_one_workflow_writes_and_another_imports_links_them(tmp_path: Path) -> None:
    service = {
        "name": "src",
        "baseUrl": "http://127.0.0.1:9",
        "operations": {"list": {"method": "GET", "path": "/items"}},
    }
    writer = {
        "steps": [
            {
                "id": "fetch",
                "service": "src",
                "operation": "list",
                "outputTable": "items",
                "outputSchema": {"id": "INTEGER"},
            },
            {
                "persistToDatabase": {
                    "appId": "shop",
                    "tableName": "items",
                    "sourceTable": "items",
                    "mode": "append",
                    "fieldMapping": {"id": "id"},
                }
            },
        ]
    }
    reader = {
        "steps": [
            {
                "importFromDatabase": {"appId": "shop", "tableName": "items"},
                "outputTable": "i",
                "outputSchema": {"id": "INTEGER"},
            },
            {"sql": "SELECT count(*) AS n FROM i", "outputTable": "totals"},
            {
                "persistToDatabase": {
                    "appId": "shop",
                    "tableName": "item_totals",
                    "sourceTable": "totals",
                    "mode": "append",
                    "fieldMapping": {"n": "n"},
                }
            },
        ]
    }
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "src.json").write_text(json.dumps(service))
    folder = write_defs(tmp_path, "shop", {"w": writer, "r": reader})
    _, defs = load(folder)
    graph = defs.resolve_asset_graph()
    assert graph.get(key("shop/item_totals")).parent_keys == {key("shop/items")}
    assert graph.get(key("shop/items")).parent_keys == {key("src/list")}


def test_ops_carry_kinds_and_say_what_they_do(demo_defs: dg.Definitions) -> None:
    job = demo_defs.resolve_job_def(SYNC_JOB)
    fetch = job.graph.node_named("fetch_orders").definition
    assert fetch.tags["dagster/kind/serviceCall"] == ""
    assert "dagster/kind/shop" in fetch.tags
    assert "`shop.listOrders` (GET /orders)" in (fetch.description or "")
    persist = job.graph.node_named("persist_orders_enriched").definition
    assert "dagster/kind/persist" in persist.tags
    assert "demo-shop/orders_enriched" in (persist.description or "")
    sql = job.graph.node_named("revenue_by_tier").definition
    assert "dagster/kind/sql" in sql.tags


def test_only_first_steps_depend_on_resolve_variables(demo_defs: dg.Definitions) -> None:
    job = demo_defs.resolve_job_def(SYNC_JOB)
    after_variables = {
        node.name
        for node in job.graph.nodes
        if VARIABLES_OP in {i.name for i in node.definition.input_defs}
    }
    assert after_variables == {"fetch_orders", "fetch_customers"}


def test_launchpad_config_has_param_types_defaults_and_derived_values(
    demo_defs: dg.Definitions,
) -> None:
    job = demo_defs.resolve_job_def(SYNC_JOB)
    config = job.graph.node_named(VARIABLES_OP).definition.config_schema.as_field()
    fields = config.config_type.fields
    app_id = fields["params"].config_type.fields["appId"]
    assert app_id.default_value == "demo-shop"
    assert app_id.config_type.given_name == "String"
    assert "since =" in (fields["logical_time"].description or "")
    # A step op has no config of its own (the launchpad showed "Config: Any").
    fetch = job.graph.node_named("fetch_orders").definition
    assert not fetch.config_schema.as_field().config_type.fields


@pytest.fixture
def demo_env(monkeypatch: pytest.MonkeyPatch, sqlite_app_url: str) -> Iterator[str]:
    monkeypatch.setenv("APP_DB_URL__DEMO_SHOP", sqlite_app_url)
    ensure_demo_schema(sqlite_app_url)
    with running_demo_server() as base_url:
        for name, value in {**service_base_url_env(base_url), **demo_secrets_env()}.items():
            monkeypatch.setenv(name, value)
        yield sqlite_app_url


def test_a_run_materializes_its_tables_with_typed_metadata(demo_env: str) -> None:
    _, defs = load(REAL_DEFS)
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def(SYNC_JOB).execute_in_process(
        run_config=run_config_for({}, LOGICAL_TIME, "UTC"), instance=instance
    )
    assert result.success
    materialized = {
        m.asset_key.to_user_string(): m
        for m in result.asset_materializations_for_node("persist_orders_enriched")
    }
    orders = materialized["demo-shop/orders_enriched"]
    assert orders.metadata["dagster/row_count"].value == 87
    schema = orders.metadata["dagster/column_schema"].value
    assert isinstance(schema, dg.TableSchema)
    assert "order_id" in {c.name for c in schema.columns}
    assert orders.metadata["rows written"].value == 87
    assert orders.metadata["rows inserted"].value == 87
    assert orders.metadata["rows updated"].value == 0
    # Step tables: row count, schema and a markdown preview, not raw JSON.
    output = next(
        e for e in result.all_node_events if e.step_key == "fetch_orders" and e.is_successful_output
    )
    metadata = output.step_output_data.metadata
    assert isinstance(metadata["dagster/column_schema"], dg.TableSchemaMetadataValue)
    assert isinstance(metadata["preview"], dg.MarkdownMetadataValue)
    assert metadata["preview"].value.startswith("| ")
    # Variables are plain values, not Python reprs.
    variables = result.output_for_node(VARIABLES_OP)
    assert variables["values"]["appId"] == "demo-shop"
    record = next(
        e for e in result.all_node_events if e.step_key == VARIABLES_OP and e.is_successful_output
    )
    assert record.step_output_data.metadata["var appId"].value == "demo-shop"


def test_upsert_key_check_reads_the_tables_constraints(
    monkeypatch: pytest.MonkeyPatch, sqlite_app_url: str
) -> None:
    monkeypatch.setenv("APP_DB_URL__DEMO_SHOP", sqlite_app_url)
    ensure_demo_schema(sqlite_app_url)
    _, defs = load(REAL_DEFS)
    check_key = dg.AssetCheckKey(key("demo-shop/orders_enriched"), "upsert_key_unique_order_id")
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(), asset_check_selection={check_key}
    )

    def evaluate() -> bool:
        result = job.execute_in_process()
        (evaluation,) = result.get_asset_check_evaluations()
        return evaluation.passed

    assert evaluate()
    # The same table without its unique constraint: upserts could duplicate rows.
    with sqlite3.connect(sqlite_app_url.removeprefix("sqlite:///")) as conn:
        conn.execute("ALTER TABLE orders_enriched RENAME TO old_orders")
        conn.execute("CREATE TABLE orders_enriched AS SELECT * FROM old_orders")
    assert not evaluate()


def test_the_locations_sensors_get_their_resources_as_the_daemon_gives_them() -> None:
    """The daemon builds a sensor's resources from the repository's top-level resources
    (dagster._grpc.impl); the lazy repository must list them, or housekeeping fails
    every tick with a missing 'table_store'."""
    from translators.definitions import build_repository
    from translators.loader import load_definitions

    repo = build_repository(load_definitions(REAL_DEFS))
    available = repo.get_top_level_resources()
    with dg.instance_for_test() as instance:
        for sensor in repo.sensor_defs:
            resources = {k: v for k, v in available.items() if k in sensor.required_resource_keys}
            assert set(resources) == sensor.required_resource_keys, sensor.name
            with dg.build_sensor_context(
                instance=instance, repository_def=repo, resources=resources
            ) as context:
                sensor.evaluate_tick(context)


def test_a_step_table_preview_masks_a_secret_before_cutting_the_cell() -> None:
    """The preview quotes the step's rows: a token among them is masked, also when the
    cell is longer than the preview shows (masked first, then cut)."""
    from resources.secrets import register_secret
    from translators.op_metadata import PREVIEW_CELL_CHARS, markdown_rows

    token = "preview-token-" + "x" * 30
    register_secret(token)
    long_cell = "Bearer " + token + " and more text"
    text = markdown_rows(["id", "auth"], [{"id": 1, "auth": long_cell}, {"id": 2, "auth": None}])
    assert "preview-token" not in text
    assert "Bearer ***" in text
    assert all(len(cell.strip()) <= PREVIEW_CELL_CHARS for cell in text.split("|"))
