"""Invalid definitions: each case a small JSON, the JSON pointer and the message fragments
its problem must contain (SPEC 7)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.definition_files import (
    FETCH_ORDERS,
    SCHEDULES_FILE,
    WORKFLOW_FILE,
    schedule,
    sql_step,
    workflow,
    write_defs,
)
from translators.errors import DefinitionError, Problem
from translators.loader import load_definitions

VARS = {"since": {"type": "dateOffset", "days": -1}, "orgId": {"type": "param"}}
EACH_ORDER = {
    "service": "shop",
    "operation": "getOrder",
    "forEach": {"source": "orders", "itemKey": "id"},
    "params": {"orderId": "{{item.id}}"},
}
PERSIST = {
    "appId": "shop",
    "tableName": "orders",
    "sourceTable": "orders",
    "mode": "upsert",
    "upsertKey": ["id"],
    "fieldMapping": {"id": "id", "total": "total"},
}


def wf_case(
    case_id: str, steps: list[dict[str, Any]], pointer: str, *fragments: str, **kwargs: Any
) -> Any:
    files = {WORKFLOW_FILE: workflow(*steps, variables=kwargs.get("variables", VARS))}
    return pytest.param(files, WORKFLOW_FILE, pointer, fragments, id=case_id)


def schedule_case(
    case_id: str, entries: list[dict[str, Any]], pointer: str, *fragments: str
) -> Any:
    files = {SCHEDULES_FILE: {"schedules": entries}}
    return pytest.param(files, SCHEDULES_FILE, pointer, fragments, id=case_id)


def file_case(case_id: str, files: dict[str, Any], file: str, pointer: str, *fragments: str) -> Any:
    return pytest.param(files, file, pointer, fragments, id=case_id)


CASES = [
    # --- structure and unknown keys (pydantic, at raw JSON pointers)
    wf_case("unknown-step-key", [sql_step("SELECT 1 AS a", "t", outputTabel="x")],
            "/steps/0/outputTabel", "unknown key 'outputTabel'", "did you mean 'outputTable'?"),
    file_case("unknown-top-key", {WORKFLOW_FILE: {"stepz": []}}, WORKFLOW_FILE, "/stepz",
              "unknown key 'stepz'", "did you mean 'steps'?"),
    wf_case("unknown-nested-key", [{**FETCH_ORDERS, "paginate": {
                "type": "cursor", "cursorFeld": "next", "cursorParam": "c"}}],
            "/steps/0/paginate/cursorFeld", "did you mean 'cursorField'?"),
    wf_case("tag-equals-field", [{"sql": 5, "outputTable": "t"}], "/steps/0/sql",
            "wrong type", "a valid string"),
    wf_case("missing-sql-output-table", [{"sql": "SELECT 1 AS a"}], "/steps/0/outputTable",
            "missing required key 'outputTable'"),
    wf_case("step-kind-unknown", [{"sqll": "SELECT 1", "outputTable": "t"}], "/steps/0",
            "cannot tell the step's kind", "did you mean 'sql'?", "exactly one of"),
    wf_case("step-kind-several", [{"sql": "SELECT 1", "wait": {"duration": "1s"}}], "/steps/0",
            "several kinds (sql, wait)"),
    wf_case("paginate-type-unknown", [{**FETCH_ORDERS, "paginate": {"type": "cursr"}}],
            "/steps/0/paginate/type", "unknown type 'cursr'", "did you mean 'cursor'?"),
    wf_case("foreach-parallel-51", [FETCH_ORDERS, {**EACH_ORDER, "forEach": {
                "source": "orders", "parallel": 51}}],
            "/steps/1/forEach/parallel", "invalid value 51", "less than or equal to 50"),
    wf_case("variable-type-unknown", [FETCH_ORDERS], "/variables/x/type",
            "unknown type 'prm'", "did you mean 'param'?", variables={"x": {"type": "prm"}}),
    wf_case("service-output-without-schema", [{**FETCH_ORDERS, "outputSchema": None}],
            "/steps/0", "needs outputSchema"),
    wf_case("bad-output-schema-type", [{**FETCH_ORDERS, "outputSchema": {"id": "VARCHAR",
            "total": "BIGNT"}}], "/steps/0/outputSchema/total",
            "unsupported column type 'BIGNT'", "did you mean 'BIGINT'?"),
    wf_case("field-mapping-bad-generator", [{**FETCH_ORDERS, "fieldMapping": {
                "id": {"generate": "uuid4"}}}],
            "/steps/0/fieldMapping/id/generate", "invalid value 'uuid4'", "'uuid'"),
    wf_case("wait-bad-duration", [{"wait": {"duration": "5x"}}], "/steps/0/wait/duration",
            "invalid value '5x'", "1h30m"),
    wf_case("wait-bad-until", [{"wait": {"until": "tomorrow"}}], "/steps/0/wait/until",
            "invalid time 'tomorrow'", "ISO-8601"),
    wf_case("branch-condition-and-sql", [{"branch": {"condition": True, "sql": "SELECT 1"}}],
            "/steps/0/branch", "exactly one of branch.condition or branch.sql"),
    wf_case("persist-upsert-without-key", [FETCH_ORDERS, {"persistToDatabase": {
                **PERSIST, "upsertKey": None}}],
            "/steps/1/persistToDatabase", "upsert needs upsertKey"),
    # --- references and the DAG
    wf_case("unknown-table-in-sql", [FETCH_ORDERS, sql_step("SELECT * FROM ordrs", "t")],
            "/steps/1/sql", "unknown table 'ordrs'", "did you mean 'orders'?"),
    wf_case("later-step-reference", [sql_step("SELECT * FROM late", "t"),
            sql_step("SELECT 1 AS a", "late")],
            "/steps/0/sql", "'late' is defined later, by the step at /steps/1"),
    wf_case("cycle-via-depends-on", [{**FETCH_ORDERS, "dependsOn": ["b"]},
            sql_step("SELECT * FROM orders", "t", id="b")],
            "/steps/0/dependsOn/0", "cycle (fetch -> b -> fetch)"),
    wf_case("depends-on-itself", [{"id": "w", "wait": {"duration": "1s"}, "dependsOn": ["w"]}],
            "/steps/0/dependsOn/0", "refers to itself"),
    wf_case("depends-on-unknown", [FETCH_ORDERS, {"wait": {"duration": "1s"},
            "dependsOn": ["fech"]}],
            "/steps/1/dependsOn/0", "unknown step or table 'fech'", "did you mean 'fetch'?"),
    wf_case("duplicate-output-table", [FETCH_ORDERS, sql_step("SELECT 1 AS a", "orders")],
            "/steps/1/outputTable", "'orders' is already produced by the step at /steps/0"),
    wf_case("foreach-source-unknown", [FETCH_ORDERS, {**EACH_ORDER, "forEach": {
                "source": "order"}}],
            "/steps/1/forEach/source", "unknown table 'order'", "did you mean 'orders'?"),
    wf_case("source-is-a-step-not-table", [FETCH_ORDERS, {"persistToDatabase": {
                **PERSIST, "sourceTable": "fetch"}}],
            "/steps/1/persistToDatabase/sourceTable", "the table it produces is 'orders'"),
    # --- names
    wf_case("name-collision-after-sanitising", [sql_step("SELECT 1 AS a", "my-table"),
            sql_step("SELECT 1 AS a", "my_table")],
            "/steps/1/outputTable", "both become 'my_table'"),
    wf_case("reserved-step-name", [{"id": "resolve_variables", "wait": {"duration": "1s"}}],
            "/steps/0/id", "reserved"),
    wf_case("bad-step-id", [{"id": "a-b", "wait": {"duration": "1s"}}], "/steps/0/id",
            "invalid value 'a-b'", "letters, digits and _"),
    file_case("bad-app-id", {"apps/bad app/workflows/w.json": workflow(FETCH_ORDERS)},
              "apps/bad app", "", "invalid app id 'bad app'"),
    file_case("job-name-collision", {
        "apps/shop/workflows/sync-orders.json": workflow(FETCH_ORDERS),
        "apps/shop/workflows/sync_orders.json": workflow(FETCH_ORDERS),
    }, "apps/shop/workflows/sync_orders.json", "", "'shop__sync_orders' is already used"),
    wf_case("bad-app-id-literal", [FETCH_ORDERS, {"persistToDatabase": {
                **PERSIST, "appId": "my app"}}],
            "/steps/1/persistToDatabase/appId", "invalid appId 'my app'"),
    # --- SQL
    wf_case("sql-delete", [FETCH_ORDERS, sql_step("DELETE FROM orders", "t")], "/steps/1/sql",
            "DELETE, not SELECT"),
    wf_case("sql-insert", [FETCH_ORDERS, sql_step("INSERT INTO orders VALUES (1)", "t")],
            "/steps/1/sql", "INSERT, not SELECT"),
    wf_case("sql-two-statements", [FETCH_ORDERS, sql_step("SELECT 1; SELECT 2", "t")],
            "/steps/1/sql", "2 statements"),
    wf_case("sql-attach", [sql_step("ATTACH 'x.db'", "t")], "/steps/0/sql", "ATTACH"),
    wf_case("sql-pragma", [sql_step("PRAGMA version", "t")], "/steps/0/sql", "PRAGMA"),
    wf_case("sql-unknown-column", [FETCH_ORDERS, sql_step("SELECT totl FROM orders", "t")],
            "/steps/1/sql", "does not bind", "totl", "orders(id, total, customer)"),
    wf_case("sql-reads-a-file", [sql_step("SELECT * FROM read_csv('/etc/passwd')", "t")],
            "/steps/0/sql", "does not bind", "/etc/passwd"),
    wf_case("branch-sql-unknown-column", [FETCH_ORDERS, {"branch": {
                "sql": "SELECT count(nope) > 0 FROM orders"}}],
            "/steps/1/branch/sql", "does not bind", "nope"),
    wf_case("sql-declared-column-missing", [FETCH_ORDERS, sql_step(
                "SELECT id FROM orders", "t", outputSchema={"id": "VARCHAR", "tot": "BIGINT"})],
            "/steps/1/outputSchema/tot", "returns no column 'tot'"),
    # --- templates
    wf_case("template-bad-scope", [{**FETCH_ORDERS, "params": {"q": "{{foo.x}}"}}],
            "/steps/0/params/q", "malformed template '{{foo.x}}'", "unknown scope 'foo'"),
    wf_case("template-no-name", [{**FETCH_ORDERS, "params": {"q": "a {{var.}}"}}],
            "/steps/0/params/q", "no name after 'var.'"),
    wf_case("template-unclosed", [{**FETCH_ORDERS, "params": {"q": "{{var.since"}}],
            "/steps/0/params/q", "never closed"),
    wf_case("unknown-variable", [{**FETCH_ORDERS, "params": {"since": "{{var.snce}}"}}],
            "/steps/0/params/since", "unknown variable 'snce'", "did you mean 'since'?"),
    wf_case("unknown-variable-in-sql", [FETCH_ORDERS, sql_step(
                "SELECT * FROM orders WHERE id = '{{var.org}}'", "t")],
            "/steps/1/sql", "unknown variable 'org'"),
    wf_case("item-outside-foreach", [{**FETCH_ORDERS, "params": {"q": "{{item.id}}"}}],
            "/steps/0/params/q", "only available inside a forEach step"),
    wf_case("item-in-sql", [FETCH_ORDERS, sql_step("SELECT '{{item.id}}' AS a", "t")],
            "/steps/1/sql", "cannot be used in SQL"),
    wf_case("item-column-missing", [FETCH_ORDERS, {**EACH_ORDER, "params": {
                "orderId": "{{item.idd}}"}}],
            "/steps/1/params/orderId", "'orders' has no column 'idd'", "did you mean 'id'?"),
    # Under forEach, preExecute runs per item and may read {{item.X}} (SPEC 5.5); not without.
    wf_case("item-mapping-with-pre-execute", [{
                **FETCH_ORDERS, "outputTable": "o", "outputSchema": {"id": "VARCHAR"},
                "fieldMapping": {"id": "{{item.id}}"},
                "preExecute": {"service": "shop", "operation": "listOrders"}}],
            "/steps/0/fieldMapping/id", "records preExecute returns"),
    wf_case("item-in-pre-execute-without-for-each", [{**FETCH_ORDERS, "preExecute": {
                "service": "shop", "operation": "listOrders", "params": {"q": "{{item.id}}"}}}],
            "/steps/0/preExecute/params/q", "only available inside a forEach step"),
    wf_case("template-not-rendered", [{**FETCH_ORDERS, "dataPath": "{{var.since}}"}],
            "/steps/0/dataPath", "not rendered in this field"),
    wf_case("field-mapping-var-template", [{**FETCH_ORDERS, "fieldMapping": {
                "id": "{{var.since}}"}}],
            "/steps/0/fieldMapping/id", "invalid fieldMapping value"),
    wf_case("variable-name-not-usable", [FETCH_ORDERS], "/variables/org-id",
            "cannot be used in a template", variables={"org-id": {"type": "param"}}),
    # --- services
    wf_case("unknown-service", [{**FETCH_ORDERS, "service": "shp"}], "/steps/0/service",
            "unknown service 'shp'", "did you mean 'shop'?"),
    wf_case("unknown-operation", [{**FETCH_ORDERS, "operation": "listOrder"}],
            "/steps/0/operation", "no operation 'listOrder'", "did you mean 'listOrders'?"),
    wf_case("unknown-pre-execute-operation", [{**FETCH_ORDERS, "preExecute": {
                "service": "shop", "operation": "nope"}}],
            "/steps/0/preExecute/operation", "no operation 'nope'"),
    wf_case("path-placeholder-without-param", [FETCH_ORDERS, {**EACH_ORDER, "params": {}}],
            "/steps/1/params", "no param 'orderId'", "/orders/{orderId}"),
    wf_case("run-as-user-without-user-tokens", [FETCH_ORDERS, {**EACH_ORDER, "forEach": {
                "source": "orders", "runAsUser": "{{item.customer}}"}}],
            "/steps/1/forEach/runAsUser", "no userTokensEnv"),
    file_case("service-name-not-stem", {"services/chat.json": {
        "name": "chats", "baseUrl": "http://x", "operations": {"a": {"path": "/a"}}}},
        "services/chat.json", "/name", "differs from the file name", "'chat'"),
    file_case("service-names-same-resource", {
        "services/my-api.json": {"name": "my-api", "baseUrl": "http://x",
                                 "operations": {"a": {"path": "/a"}}},
        "services/my_api.json": {"name": "my_api", "baseUrl": "http://x",
                                 "operations": {"a": {"path": "/a"}}}},
        "services/my_api.json", "/name", "same Dagster resource name", "'my-api'"),
    # --- persistToDatabase
    wf_case("upsert-key-not-mapped", [FETCH_ORDERS, {"persistToDatabase": {
                **PERSIST, "upsertKey": ["order_id"]}}],
            "/steps/1/persistToDatabase/upsertKey/0", "not a target column of fieldMapping"),
    wf_case("persist-source-column-missing", [FETCH_ORDERS, {"persistToDatabase": {
                **PERSIST, "fieldMapping": {"id": "id", "total": "totl"}}}],
            "/steps/1/persistToDatabase/fieldMapping/total", "no column 'totl'",
            "did you mean 'total'?"),
    wf_case("match-columns-not-mapped", [FETCH_ORDERS, {"persistToDatabase": {
                **PERSIST, "mode": "replaceAll", "replaceWhere": {"matchColumns": ["day"]}}}],
            "/steps/1/persistToDatabase/replaceWhere/matchColumns/0", "'day' is not a target"),
    # --- schedules
    schedule_case("bad-cron", [schedule(cron="61 * * * *")], "/schedules/0/cron",
                  "invalid cron '61 * * * *'", "5 fields"),
    schedule_case("cron-six-fields", [schedule(cron="0 0 3 * * *")], "/schedules/0/cron",
                  "6 field(s)"),
    schedule_case("bad-timezone", [schedule(timezone="Europe/Berln")], "/schedules/0/timezone",
                  "unknown timezone 'Europe/Berln'", "did you mean 'Europe/Berlin'?"),
    schedule_case("path-escapes-app", [schedule(workflow="../other/workflows/base.json")],
                  "/schedules/0/workflow", "outside the app folder"),
    schedule_case("absolute-path", [schedule(workflow="/etc/workflows/base.json")],
                  "/schedules/0/workflow", "absolute path"),
    schedule_case("workflow-missing", [schedule(workflow="src/server/workflows/bse.ts")],
                  "/schedules/0/workflow", "no workflow file", "did you mean 'base'?"),
    schedule_case("unknown-param", [schedule(params={"orgid": "o"})],
                  "/schedules/0/params/orgid", "unknown param 'orgid'", "did you mean 'orgId'?"),
    schedule_case("missing-required-param", [schedule(params={"limit": 5})],
                  "/schedules/0/params", "missing required param 'orgId'"),
    schedule_case("param-for-non-param-variable", [schedule(params={"orgId": "o", "since": 1})],
                  "/schedules/0/params/since", "dateOffset variable"),
    schedule_case("duplicate-schedule-names", [schedule("a"), schedule("a")],
                  "/schedules/1/name", "'a' is already used at /schedules/0"),
    schedule_case("schedule-unknown-key", [schedule(skipIfRuning=True)],
                  "/schedules/0/skipIfRuning", "did you mean 'skipIfRunning'?"),
    file_case("schedule-of-broken-workflow", {
        WORKFLOW_FILE: workflow(sql_step("DELETE FROM x", "t")),
        SCHEDULES_FILE: {"schedules": [schedule(workflow="workflows/w.json")]},
    }, SCHEDULES_FILE, "/schedules/0/workflow", "has problems"),
    # --- files
    file_case("malformed-json", {WORKFLOW_FILE: '{"steps": [ {"sql": "SELECT 1"} ],}'},
              WORKFLOW_FILE, "", "invalid JSON", "line 1, column"),
    file_case("not-an-object", {WORKFLOW_FILE: "[]"}, WORKFLOW_FILE, "",
              "found an array", "an object"),
]  # fmt: skip


@pytest.mark.parametrize(("files", "file", "pointer", "fragments"), CASES)
def test_invalid_definition(
    tmp_path: Path, files: dict[str, Any], file: str, pointer: str, fragments: tuple[str, ...]
) -> None:
    result = load_definitions(write_defs(tmp_path, files))
    assert not result.ok
    everything = "\n".join(str(p) for p in result.problems)
    matching = [str(p) for p in result.problems if p.file == file and p.pointer == pointer]
    assert matching, f"no problem at {file}#{pointer}; found:\n{everything}"
    for fragment in fragments:
        assert any(fragment in text for text in matching), f"{fragment!r} not in:\n{everything}"
    # The valid workflow beside the broken file still loads.
    assert "shop__base" in {w.job_name for w in result.workflows}


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 35


def test_valid_files_load_beside_an_invalid_one(tmp_path: Path) -> None:
    files = {WORKFLOW_FILE: workflow(FETCH_ORDERS, sql_step("SELECT nope FROM orders", "t"))}
    result = load_definitions(write_defs(tmp_path, files))
    assert [w.job_name for w in result.workflows] == ["shop__base"]
    [broken] = result.broken
    assert (broken.app_id, broken.stem, broken.file) == ("shop", "w", WORKFLOW_FILE)
    assert broken.job_name == "shop__w"
    assert [p.pointer for p in broken.problems] == ["/steps/1/sql"]
    assert broken.problems == result.problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    steps = [
        {**FETCH_ORDERS, "outputTabel": "x"},  # a model error in one step ...
        sql_step("SELECT * FROM ordrs", "t"),  # ... does not hide the others
        {**EACH_ORDER, "params": {"orderId": "{{var.nope}}"}},
    ]
    result = load_definitions(write_defs(tmp_path, {WORKFLOW_FILE: workflow(*steps)}))
    pointers = [p.pointer for p in result.problems if p.file == WORKFLOW_FILE]
    assert pointers == ["/steps/0/outputTabel", "/steps/1/sql", "/steps/2/params/orderId"]


def test_a_broken_service_is_named_where_it_is_used(tmp_path: Path) -> None:
    files = {
        "services/shop.json": {"name": "shop", "baseUrl": "ftp://x", "operations": {}},
        WORKFLOW_FILE: workflow(FETCH_ORDERS),
    }
    result = load_definitions(write_defs(tmp_path, files))
    texts = [str(p) for p in result.problems]
    assert "services/shop.json#/baseUrl: invalid value 'ftp://x'" in "\n".join(texts)
    assert any("#/steps/0/service: service 'shop' (services/shop.json) has problems" in t
               for t in texts)  # fmt: skip
    assert "shop" not in result.services


def test_problem_text_and_definition_error() -> None:
    problem = Problem("apps/a/workflows/w.json", "/steps/0/sql", "unknown table 'x'", "a table")
    expected = "apps/a/workflows/w.json#/steps/0/sql: unknown table 'x'; expected a table"
    assert str(problem) == expected
    assert str(Problem("f.json", "", "bad")) == "f.json#: bad"
    error = DefinitionError([problem, Problem("f.json", "", "bad")])
    assert str(error).splitlines() == [str(problem), "f.json#: bad"]
    assert error.problems[0] is problem


def test_missing_definitions_folder(tmp_path: Path) -> None:
    result = load_definitions(tmp_path / "nope")
    assert not result.ok
    assert "does not exist" in str(result.problems[0])
    with pytest.raises(DefinitionError, match="does not exist"):
        result.raise_for_problems()
