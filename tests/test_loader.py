"""Valid definitions: step names, dependencies, reads, schemas, wait edges, schedules."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.definition_files import FETCH_ORDERS, PARAMS_WORKFLOW, schedule, sql_step, write_defs
from translators.loader import LoadResult, WorkflowPlan, load_definitions
from translators.naming import dagster_name
from translators.spec import SqlStepSpec, WaitStepSpec

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FILE = "apps/my-app/workflows/sync-orders.json"

STEPS: list[dict[str, Any]] = [
    FETCH_ORDERS,  # 0 fetch -> orders
    {  # 1 no id: named after its table
        "service": "crm",
        "operation": "listContacts",
        "outputTable": "contacts",
        "outputSchema": {"customer": "VARCHAR", "email": "VARCHAR"},
    },
    sql_step(  # 2
        "WITH big AS (SELECT * FROM ORDERS WHERE total > {{var.minTotal}}) "
        "SELECT big.id, big.total, c.email FROM big JOIN contacts c USING (customer) "
        "WHERE big.id <> '{{var.orgId}}'",
        "enriched",
    ),
    {"branch": {"sql": "SELECT count(*) > 0 FROM enriched"}, "outputTable": "has_rows"},  # 3
    {"wait": {"duration": "1s"}},  # 4 wait
    {  # 5 persist_orders
        "dependsOn": ["has_rows"],
        "persistToDatabase": {
            "appId": "{{var.orgId}}",
            "tableName": "orders",
            "sourceTable": "enriched",
            "mode": "upsert",
            "upsertKey": ["order_id"],
            "fieldMapping": {"order_id": "id", "email": "email", "at": {"generate": "now"}},
        },
    },
    {  # 6 call_postMessage
        "service": "shop",
        "operation": "postMessage",
        "forEach": {"source": "enriched", "itemKey": "id", "parallel": 4},
        "params": {"text": "order {{item.id}} for {{item.email}}", "n": "{{item.total}}"},
    },
    {"wait": {"until": "2030-01-01T00:00:00"}},  # 7 wait_2
    {  # 8 products: schema unknown at load
        "importFromDatabase": {"appId": "{{var.orgId}}", "tableName": "products"},
        "outputTable": "products",
    },
    sql_step("SELECT sku, no_such_column_is_checked FROM products", "skus"),  # 9
    sql_step("SELECT value AS ok FROM has_rows", "flag_copy", id="copy"),  # 10
    {"id": "type", "dependsOn": ["orders", "copy"], "wait": {"duration": "1s"}},  # 11 k_type
]
VARIABLES = {"orgId": {"type": "param"}, "minTotal": {"type": "param", "default": 0}}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadResult:
    files = {FILE: {"variables": VARIABLES, "steps": STEPS}}
    return load_definitions(write_defs(tmp_path_factory.mktemp("defs"), files))


@pytest.fixture(scope="module")
def plan(loaded: LoadResult) -> WorkflowPlan:
    assert loaded.ok, "\n".join(map(str, loaded.problems))
    return next(w for w in loaded.workflows if w.file == FILE)


def test_workflow_plan(plan: WorkflowPlan) -> None:
    assert (plan.app_id, plan.stem, plan.job_name) == (
        "my-app",
        "sync-orders",
        "my_app__sync_orders",
    )
    assert [s.pointer for s in plan.steps] == [f"/steps/{i}" for i in range(len(STEPS))]
    assert [s.index for s in plan.steps] == list(range(len(STEPS)))


def test_step_names(plan: WorkflowPlan) -> None:
    assert [s.name for s in plan.steps] == [
        "fetch", "contacts", "enriched", "has_rows", "wait", "persist_orders",
        "call_postMessage", "wait_2", "products", "skus", "copy", "k_type",
    ]  # fmt: skip
    assert [s.kind for s in plan.steps][3:6] == ["conditional", "waitFor", "persistToDatabase"]


def test_dependencies_in_step_order_with_wait_edges(plan: WorkflowPlan) -> None:
    deps = {s.name: s.depends_on for s in plan.steps}
    assert deps["fetch"] == () and deps["contacts"] == ()
    assert deps["enriched"] == ("fetch", "contacts")  # CTE name excluded, ORDERS ignores case
    assert deps["has_rows"] == ("enriched",)
    assert deps["wait"] == ("fetch", "contacts", "enriched", "has_rows")  # every earlier step
    assert deps["persist_orders"] == ("enriched", "has_rows", "wait")  # and each later on it
    assert deps["call_postMessage"] == ("enriched", "wait")
    assert deps["wait_2"] == tuple(s.name for s in plan.steps[:7])
    assert deps["products"] == ("wait", "wait_2")
    assert deps["skus"] == ("wait", "wait_2", "products")
    assert deps["copy"] == ("has_rows", "wait", "wait_2")
    assert deps["k_type"] == tuple(s.name for s in plan.steps[:11])


def test_reads_map_tables_to_their_producers(plan: WorkflowPlan) -> None:
    reads = {s.name: s.reads for s in plan.steps}
    assert reads["enriched"] == {"orders": "fetch", "contacts": "contacts"}
    assert reads["has_rows"] == {"enriched": "enriched"}
    assert reads["persist_orders"] == {"enriched": "enriched"}  # dependsOn is not a read
    assert reads["call_postMessage"] == {"enriched": "enriched"}
    assert reads["k_type"] == {}
    assert reads["copy"] == {"has_rows": "has_rows"}


def test_output_tables_and_schemas(plan: WorkflowPlan) -> None:
    steps = {s.name: s for s in plan.steps}
    assert steps["fetch"].output_schema == FETCH_ORDERS["outputSchema"]
    assert steps["enriched"].output_table == "enriched"
    assert steps["enriched"].output_schema == {
        "id": "VARCHAR",
        "total": "BIGINT",
        "email": "VARCHAR",
    }
    assert steps["has_rows"].output_schema == {"value": "BOOLEAN"}
    assert steps["copy"].output_schema == {"ok": "BOOLEAN"}
    # An import without outputSchema: unknown until run time, so the query that reads
    # it is checked for its tables only.
    assert steps["products"].output_schema is None
    assert steps["skus"].output_table == "skus" and steps["skus"].output_schema is None
    for name in ("wait", "persist_orders", "call_postMessage"):
        assert steps[name].output_table is None and steps[name].output_schema is None
    assert isinstance(steps["enriched"].spec, SqlStepSpec)
    assert isinstance(steps["k_type"].spec, WaitStepSpec)


def test_declared_sql_schema_is_kept(tmp_path: Path) -> None:
    declared = {"id": "STRING", "total": "DOUBLE"}
    step = sql_step("SELECT id, total FROM orders", "t", outputSchema=declared)
    files = {FILE: {"steps": [FETCH_ORDERS, step]}}
    loaded = load_definitions(write_defs(tmp_path, files))
    assert loaded.ok, loaded.problems
    [workflow] = [w for w in loaded.workflows if w.file == FILE]
    assert workflow.steps[1].output_schema == declared


def test_default_names_avoid_explicit_ones(tmp_path: Path) -> None:
    steps = [
        {"wait": {"duration": "1s"}},
        {"id": "wait", "wait": {"duration": "1s"}},
        {"wait": {"duration": "1s"}},
        {"id": "wait_3", "wait": {"duration": "1s"}},
        {"wait": {"duration": "1s"}},
    ]
    loaded = load_definitions(write_defs(tmp_path, {FILE: {"steps": steps}}))
    [workflow] = [w for w in loaded.workflows if w.file == FILE]
    assert [s.name for s in workflow.steps] == ["wait_2", "wait", "wait_4", "wait_3", "wait_5"]


def test_depends_on_a_table_name_means_its_producer(tmp_path: Path) -> None:
    steps = [FETCH_ORDERS, {"id": "later", "dependsOn": ["orders"], "wait": {"duration": "1s"}}]
    loaded = load_definitions(write_defs(tmp_path, {FILE: {"steps": steps}}))
    [workflow] = [w for w in loaded.workflows if w.file == FILE]
    assert workflow.steps[1].depends_on == ("fetch",)
    assert workflow.steps[1].reads == {}


def test_schedules(tmp_path: Path) -> None:
    files = {
        "apps/shop/schedules.json": {
            "schedules": [
                schedule("nightly-sync", timezone="Europe/Berlin", skipIfRunning=True),
                schedule(
                    "ported", workflow="src/server/workflows/base.ts", backfillStart="2026-01-01"
                ),
            ]
        }
    }
    loaded = load_definitions(write_defs(tmp_path, files))
    assert loaded.ok, loaded.problems
    first, second = loaded.schedules
    assert (first.app_id, first.name, first.schedule_name) == (
        "shop",
        "nightly-sync",
        "shop__nightly_sync",
    )
    assert (first.workflow, first.file, first.pointer) == (
        "shop__base",
        "apps/shop/schedules.json",
        "/schedules/0",
    )
    assert first.spec.timezone == "Europe/Berlin" and first.spec.skip_if_running
    assert second.workflow == "shop__base" and str(second.spec.backfill_start) == "2026-01-01"


def test_services_and_ignored_files(tmp_path: Path) -> None:
    files = {"apps/shop/workflows/README.md": "not a workflow", "services/notes.txt": "x"}
    loaded = load_definitions(write_defs(tmp_path, files))
    assert loaded.ok, loaded.problems
    assert sorted(loaded.services) == ["crm", "shop"]
    assert loaded.services["crm"].user_tokens_env == "CRM_USER_TOKENS"
    assert [w.job_name for w in loaded.workflows] == ["shop__base"]
    assert loaded.broken == []


def test_params_workflow_variables_survive(tmp_path: Path) -> None:
    loaded = load_definitions(write_defs(tmp_path, {}))
    [workflow] = loaded.workflows
    assert sorted(workflow.spec.variables) == sorted(PARAMS_WORKFLOW["variables"])


@pytest.mark.parametrize(
    ("text", "name"),
    [("check-total", "check_total"), ("type", "k_type"), ("class", "k_class"), ("3x", "k_3x"),
     ("a.b c", "a_b_c"), ("ok_1", "ok_1")],
)  # fmt: skip
def test_dagster_names(text: str, name: str) -> None:
    assert dagster_name(text) == name


def test_reserved_names_match_dagster() -> None:
    from dagster._core.definitions.utils import DISALLOWED_NAMES

    from translators.naming import RESERVED_NAMES

    assert set(DISALLOWED_NAMES) == set(RESERVED_NAMES)


def test_project_definitions_load_cleanly_and_fast() -> None:
    started = time.perf_counter()
    loaded = load_definitions(PROJECT_ROOT / "workflow_defs")
    assert loaded.ok, "\n".join(map(str, loaded.problems))
    assert loaded.workflows and time.perf_counter() - started < 3.0
