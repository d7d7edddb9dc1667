"""Hostile input, table-driven (issue 6): definitions, service responses and param values
written to hurt, each row with the clear error it must produce; and valid workflows still
load and run beside every hostile definition at once.

Definitions go through the loader (the code location's path); responses through the real
HTTP client against a real server on 127.0.0.1 that sends the raw bytes of each row;
param values through a translated Dagster job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq
import pytest

from resources.paginators import CursorPaginator, LinkHeaderPaginator, NextUrlPaginator
from resources.service import CallRequest, Operation, ServiceCallError, ServiceResource
from tests.definition_files import (
    BASE_FILES,
    FETCH_ORDERS,
    SCHEDULES_FILE,
    SHOP_SERVICE,
    WORKFLOW_FILE,
    schedule,
    sql_step,
    workflow,
    write_defs,
)
from tests.support.canned_server import Canned, CannedServer
from tests.support.jobs import run_job
from translators.definitions import build_definitions
from translators.loader import load_definitions

W = WORKFLOW_FILE
EVIL_SERVICE = "services/evil.json"


def evil_service(**fields: Any) -> dict[str, Any]:
    return {EVIL_SERVICE: {**SHOP_SERVICE, "name": "evil", **fields}}


def persist_into(table: str, app_id: str = "shop") -> dict[str, Any]:
    return {
        "persistToDatabase": {
            "appId": app_id,
            "tableName": table,
            "sourceTable": "t",
            "mode": "append",
            "fieldMapping": {"a": "a"},
        }
    }


def each_order(**for_each: Any) -> dict[str, Any]:
    return {
        "service": "shop",
        "operation": "getOrder",
        "forEach": {"source": "orders", **for_each},
        "params": {"orderId": "{{item.id}}"},
    }


def case(case_id: str, files: dict[str, Any], file: str, pointer: str, *fragments: str) -> Any:
    return pytest.param(files, file, pointer, fragments, id=case_id)


def wf(case_id: str, document: Any, pointer: str, *fragments: str) -> Any:
    return case(case_id, {W: document}, W, pointer, *fragments)


def sql(case_id: str, query: str, *fragments: str) -> Any:
    return wf(case_id, workflow(sql_step(query, "t")), "/steps/0/sql", *fragments)


def sched(case_id: str, pointer: str, *fragments: str, **fields: Any) -> Any:
    files = {SCHEDULES_FILE: {"schedules": [schedule(**fields)]}}
    return case(case_id, files, SCHEDULES_FILE, pointer, *fragments)


def svc(case_id: str, pointer: str, *fragments: str, **fields: Any) -> Any:
    return case(case_id, evil_service(**fields), EVIL_SERVICE, pointer, *fragments)


NOT_SELECT = "expected exactly one SELECT statement"
NO_FILES = "file system operations are disabled"

HOSTILE_DEFINITIONS = [
    # --- SQL that tries to leave the sandbox or change state
    sql("sql-read-csv-file", "SELECT * FROM read_csv('/etc/passwd')", NO_FILES),
    sql("sql-read-text-file", "SELECT * FROM read_text('/etc/hostname')", NO_FILES),
    sql("sql-glob-files", "SELECT * FROM glob('/etc/*')", NO_FILES),
    sql("sql-parquet-of-other-runs", "SELECT * FROM '../other/*.parquet'", "unknown table"),
    sql("sql-url-as-table", "SELECT * FROM 'http://127.0.0.1:9/x.csv'", "unknown table"),
    sql("sql-getenv", "SELECT getenv('HOME') AS h", "getenv does not exist"),
    sql("sql-attach", "ATTACH '/tmp/x.db' AS x", "the statement is ATTACH", NOT_SELECT),
    sql("sql-copy-to-file", "COPY (SELECT 1) TO '/tmp/x.csv'", "the statement is COPY"),
    sql("sql-second-statement", "SELECT 1 AS a; DROP TABLE t", "2 statements", NOT_SELECT),
    sql("sql-pragma", "PRAGMA database_list", "the statement is PRAGMA"),
    sql("sql-set-external-access", "SET enable_external_access=true", "the statement is SET"),
    sql("sql-install-extension", "INSTALL httpfs", NOT_SELECT),
    sql("sql-create-table", "CREATE TABLE x AS SELECT 1", "the statement is CREATE"),
    # --- templates are names, never expressions
    sql("template-attribute", "SELECT '{{var.x.__class__}}' AS a", "is not a plain name"),
    sql("template-env-scope", "SELECT '{{env.HOME}}' AS a", "unknown scope 'env'"),
    sql("template-item-in-sql", "SELECT '{{item.x}}' AS a", "cannot be used in SQL"),
    # --- names that could reach paths or SQL text
    wf(
        "app-id-path-traversal",
        workflow(sql_step("SELECT 1 AS a", "t"), persist_into("x", "../../etc")),
        "/steps/1/persistToDatabase/appId",
        "invalid appId '../../etc'",
    ),
    wf(
        "import-app-id-absolute-path",
        workflow(
            {"importFromDatabase": {"appId": "/etc/passwd", "tableName": "x"}, "outputTable": "t"}
        ),
        "/steps/0/importFromDatabase/appId",
        "invalid appId '/etc/passwd'",
    ),
    wf(
        "column-type-injection",
        workflow(sql_step("SELECT 1 AS a", "t", outputSchema={"a": "INTEGER); DROP TABLE x; --"})),
        "/steps/0/outputSchema/a",
        "unsupported column type",
    ),
    wf(
        "step-id-with-space",
        workflow(sql_step("SELECT 1 AS a", "t", id="a b")),
        "/steps/0/id",
        "letters, digits and _ only",
    ),
    wf(
        "variable-name-not-identifier",
        workflow(sql_step("SELECT 1 AS a", "t"), variables={"a b": {"type": "param"}}),
        "/variables/a b",
        "cannot be used in a template",
    ),
    # --- numbers that would hang or flood
    wf(
        "max-retries-huge",
        workflow({**FETCH_ORDERS, "maxRetries": 10**9}),
        "/steps/0/maxRetries",
        "less than or equal to 20",
    ),
    wf(
        "parallel-zero",
        workflow(FETCH_ORDERS, each_order(parallel=0)),
        "/steps/1/forEach/parallel",
        "greater than or equal to 1",
    ),
    wf(
        "parallel-thousand",
        workflow(FETCH_ORDERS, each_order(parallel=1000)),
        "/steps/1/forEach/parallel",
        "less than or equal to 50",
    ),
    wf(
        "rate-limit-negative",
        workflow(FETCH_ORDERS, each_order(rateLimit={"requestsPerSecond": -5})),
        "/steps/1/forEach/rateLimit/requestsPerSecond",
        "greater than 0",
    ),
    wf(
        "max-retries-not-a-number",
        workflow({**FETCH_ORDERS, "maxRetries": "NaN"}),
        "/steps/0/maxRetries",
        "a valid integer",
    ),
    wf(
        "max-retries-raw-nan",
        '{"steps": [{"service": "shop", "operation": "listOrders", "outputTable": "o",'
        ' "outputSchema": {"id": "VARCHAR"}, "maxRetries": NaN}]}',
        "/steps/0/maxRetries",
        "a finite number",
    ),
    wf(
        "setting-infinity",
        '{"steps": [{"wait": {"duration": "1s"}}], "settings": {"inlineWaitMaxSeconds": Infinity}}',
        "/settings/inlineWaitMaxSeconds",
        "a finite number",
    ),
    wf(
        "retry-delay-a-day",
        workflow({**FETCH_ORDERS, "retryDelayMs": 86_400_000}),
        "/steps/0/retryDelayMs",
        "less than or equal to 600000",
    ),
    wf(
        "wait-longer-than-a-year",
        workflow({"wait": {"duration": "99999999999d"}}),
        "/steps/0/wait",
        "longer than 366 days",
    ),
    wf(
        "wait-until-not-a-time",
        workflow({"wait": {"until": "yesterday"}}),
        "/steps/0/wait/until",
        "invalid time 'yesterday'",
        "ISO-8601",
    ),
    wf(
        "wait-until-year-99999",
        workflow({"wait": {"until": "99999-01-01"}}),
        "/steps/0/wait/until",
        "invalid time",
    ),
    # --- files that are not what they claim
    wf(
        "utf8-bom",
        "\ufeff" + json.dumps(workflow(sql_step("SELECT 1 AS a", "t"))),
        "",
        "invalid JSON",
        "BOM",
    ),
    wf("empty-file", "", "", "invalid JSON", "a JSON document"),
    wf("top-level-array", "[]", "", "found an array", "expected an object"),
    wf("top-level-null", "null", "", "found null", "expected an object"),
    wf(
        "duplicate-key",
        '{"steps": [{"sql": "SELECT 1 AS a", "sql": "DELETE", "outputTable": "t"}]}',
        "/steps/0",
        "the key 'sql' appears more than once",
    ),
    wf(
        "file-of-2-mb",
        workflow(sql_step("SELECT '" + "x" * 2_000_000 + "' AS a", "t")),
        "",
        "the file has 2,000,",
        "at most 1,048,576 bytes",
    ),
    wf(
        "3000-steps",
        workflow(*[sql_step("SELECT 1 AS a", f"t{i}") for i in range(3000)]),
        "/steps",
        "too many items",
        "at most 1000",
    ),
    # --- services that point elsewhere or leak
    svc("service-file-url", "/baseUrl", "an http:// or https:// URL", baseUrl="file:///etc/passwd"),
    svc("service-ftp-url", "/baseUrl", "an http:// or https:// URL", baseUrl="ftp://127.0.0.1/x"),
    svc(
        "operation-absolute-url",
        "/operations/x/path",
        "a path starting with /",
        operations={"x": {"path": "http://other.example/x"}},
    ),
    svc("service-timeout-negative", "/timeoutSeconds", "greater than 0", timeoutSeconds=-1),
    svc("service-named-like-another", "/name", "differs from the file name", name="shop"),
    # --- schedules that reach outside their app or run wild
    sched(
        "schedule-path-escape",
        "/schedules/0/workflow",
        "points outside the app folder",
        workflow="../../other/workflows/base.json",
    ),
    sched(
        "schedule-absolute-path",
        "/schedules/0/workflow",
        "is an absolute path",
        workflow="/etc/passwd",
    ),
    sched("schedule-6-field-cron", "/schedules/0/cron", "has 6 field(s)", cron="* * * * * *"),
    sched("schedule-zero-step-cron", "/schedules/0/cron", "invalid cron", cron="*/0 * * * *"),
    sched(
        "schedule-timezone-path",
        "/schedules/0/timezone",
        "unknown timezone",
        timezone="../../etc/localtime",
    ),
]


@pytest.mark.parametrize(("files", "file", "pointer", "fragments"), HOSTILE_DEFINITIONS)
def test_hostile_definition_is_a_clear_problem(
    tmp_path: Path, files: dict[str, Any], file: str, pointer: str, fragments: tuple[str, ...]
) -> None:
    loaded = load_definitions(write_defs(tmp_path, files))
    mine = [p for p in loaded.problems if p.file == file and p.pointer == pointer]
    assert mine, f"no problem at {file}#{pointer}; got: {[str(p) for p in loaded.problems]}"
    text = " | ".join(str(p) for p in mine)
    for fragment in fragments:
        assert fragment in text
    # The other files of the tree still load.
    assert any(w.file == "apps/shop/workflows/base.json" for w in loaded.workflows)


def test_hostile_definitions_count() -> None:
    assert len(HOSTILE_DEFINITIONS) >= 40


# --- every hostile definition at once, beside valid workflows ----------------------------

VALID_SQL_WORKFLOW = workflow(
    sql_step("SELECT 1 AS id, 'a' AS name UNION ALL SELECT 2, 'b'", "numbers"),
    sql_step("SELECT count(*) AS n FROM numbers", "counted"),
)


def _rename(rel: str, index: int) -> str:
    """Where case `index`'s file goes in the combined tree (one file per case)."""
    if rel == W:
        return f"apps/shop/workflows/hostile_{index}.json"
    if rel == EVIL_SERVICE:
        return f"services/evil{index}.json"
    if rel == SCHEDULES_FILE:
        return f"apps/hostile{index}/schedules.json"
    raise AssertionError(rel)


def test_valid_workflows_load_and_run_beside_every_hostile_one(tmp_path: Path) -> None:
    files: dict[str, Any] = {"apps/shop/workflows/valid.json": VALID_SQL_WORKFLOW}
    expected_broken: set[str] = set()
    for index, param in enumerate(HOSTILE_DEFINITIONS):
        case_files = param.values[0]
        for rel, content in case_files.items():
            target = _rename(rel, index)
            if rel == EVIL_SERVICE and isinstance(content, dict) and content["name"] == "evil":
                content = {**content, "name": f"evil{index}"}
            files[target] = content
            expected_broken.add(target)
            if rel == SCHEDULES_FILE:  # the schedule's app needs the workflow it names
                files[f"apps/hostile{index}/workflows/base.json"] = BASE_FILES[
                    "apps/shop/workflows/base.json"
                ]
    loaded = load_definitions(write_defs(tmp_path, files))
    files_with_problems = {p.file for p in loaded.problems}
    assert expected_broken <= files_with_problems, expected_broken - files_with_problems
    loaded_files = {w.file for w in loaded.workflows}
    assert {"apps/shop/workflows/valid.json", "apps/shop/workflows/base.json"} <= loaded_files

    defs = build_definitions(loaded)
    result = run_job(defs, "shop__valid")
    assert result.success
    counted = result.output_for_node("counted")
    assert counted.row_count == 1


# --- hostile responses -------------------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000
RESPONSES = [
    # path, canned response, dataPath, paginator, fragments of the error
    (
        "/html",
        Canned(200, "<html>oops</html>", {"Content-Type": "text/html"}),
        None,
        None,
        ("not valid JSON", "text/html"),
    ),
    ("/deep", Canned(200, DEEP), None, None, ("not valid JSON", "depth limit")),
    (
        "/no-data",
        Canned(200, '{"items": []}'),
        "data",
        None,
        ("dataPath 'data'", "keys present at the top level: 'items'"),
    ),
    (
        "/string-data",
        Canned(200, '{"data": "abc"}'),
        "data",
        None,
        ("expected an array or an object of records", "found a str"),
    ),
    (
        "/redirect",
        Canned(302, "", {"Location": "http://127.0.0.2:1/evil"}),
        None,
        None,
        ("unexpected redirect", "not followed"),
    ),
    ("/missing", Canned(404, '{"error": "nope"}'), None, None, ("HTTP 404", '"nope"')),
    ("/nan", Canned(200, '[{"a": NaN}]'), None, None, ("not valid JSON",)),
    ("/bad-utf8", Canned(200, b'[{"a": "\xff\xfe"}]'), None, None, ("not valid UTF-8",)),
    (
        "/huge-number",
        Canned(200, '[{"a": ' + "9" * 5000 + "}]"),
        None,
        None,
        ("not valid JSON", "infinity"),
    ),
    (
        "/cursor-loop",
        Canned(200, '{"data": [{"a": 1}], "next": "same"}'),
        "data",
        CursorPaginator("next", "cursor"),
        ("already used", "the pagination loops"),
    ),
    (
        "/next-foreign",
        Canned(200, '{"data": [{"a": 1}], "next": "http://127.0.0.2:9/x"}'),
        "data",
        NextUrlPaginator("next"),
        ("leaves the service's origin",),
    ),
    (
        "/next-file",
        Canned(200, '{"data": [{"a": 1}], "next": "file:///etc/passwd"}'),
        "data",
        NextUrlPaginator("next"),
        ("is not an absolute http URL",),
    ),
    (
        "/link-foreign",
        Canned(
            200,
            '[{"a": 1}]',
            {"Content-Type": "application/json", "Link": '<http://127.0.0.2:9/x>; rel="next"'},
        ),
        None,
        LinkHeaderPaginator(),
        ("leaves the service's origin",),
    ),
]


@pytest.fixture(scope="module")
def canned() -> Any:
    with CannedServer({path: reply for path, reply, *_ in RESPONSES}) as server:
        yield server


@pytest.mark.integration
@pytest.mark.parametrize(
    ("path", "data_path", "paginator", "fragments"),
    [pytest.param(p, d, pg, f, id=p.strip("/")) for p, _, d, pg, f in RESPONSES],
)
def test_hostile_response_is_a_clear_error(
    canned: CannedServer, path: str, data_path: str | None, paginator: Any, fragments: tuple
) -> None:
    service = ServiceResource(service_name="canned", base_url=canned.url)
    request = CallRequest(
        Operation("listThings", "GET", path),
        data_path=data_path,
        paginator=paginator,
        max_retries=0,
    )
    with pytest.raises(ServiceCallError) as raised:
        for _page in service.iter_pages(request):
            pass
    message = str(raised.value)
    assert "service 'canned' operation 'listThings'" in message
    for fragment in fragments:
        assert fragment in message


# --- hostile param values ----------------------------------------------------------------


def _param_tree(tmp_path: Path) -> Path:
    document = workflow(
        sql_step("SELECT '{{var.text}}' AS text, 1 AS n", "echoed"),
        variables={"text": {"type": "param"}},
    )
    defs = write_defs(tmp_path, {"apps/shop/workflows/echo.json": document})
    return defs


@pytest.mark.integration
@pytest.mark.parametrize(
    "value",
    [
        "'; DROP TABLE echoed; --",
        "{{var.text}}",
        "$(touch /tmp/pwned)",
        "\x00\x01 nul and control bytes",
        "x" * 20_000,
        {"nested": ["x"], "'); DROP TABLE echoed; --": 1},
    ],
    ids=["sql-injection", "template-in-value", "shell", "control-bytes", "20k-chars", "object"],
)
def test_hostile_param_value_is_data_never_code(tmp_path: Path, value: Any) -> None:
    loaded = load_definitions(_param_tree(tmp_path))
    defs = build_definitions(loaded)
    result = run_job(defs, "shop__echo", {"text": value})
    assert result.success
    handle = result.output_for_node("echoed")
    rows = pq.read_table(handle.path).to_pylist()
    assert rows == [{"text": value, "n": 1}]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("params", "fragments"),
    [
        ({}, ('Missing required config entry "text"',)),
        ({"text": "a", "other": 1}, ('unexpected config entry "other"',)),
    ],
    ids=["missing-param", "unknown-param"],
)
def test_bad_params_are_refused_before_any_step(
    tmp_path: Path, params: dict[str, Any], fragments: tuple[str, ...]
) -> None:
    defs = build_definitions(load_definitions(_param_tree(tmp_path)))
    with pytest.raises(dg.DagsterInvalidConfigError) as raised:
        run_job(defs, "shop__echo", params)
    for fragment in fragments:
        assert fragment in str(raised.value)
