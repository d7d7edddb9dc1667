"""`workflows import-ts` (SPEC 10, 11): the original platform's TypeScript workflows become
this project's JSON files, which pass the real `workflows check`; what cannot be
converted is an error at file:line:column, and then nothing is written."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import workflows
from tests.support.jobs import PROJECT_ROOT, REAL_DEFS
from translators.cli import main
from translators.cli_import_ts import convert

CORPUS = Path(__file__).parent / "import_ts"
DOCS_EXAMPLES = PROJECT_ROOT / "docs" / "examples" / "workflow_defs"
PORTED_DEMO = PROJECT_ROOT / "docs" / "examples" / "porting" / "demo-shop"


def same_sql(value: Any) -> Any:
    """`value` with the whitespace of SQL text normalised: a multi-line template literal
    and the one-line SQL of the JSON example are the same query."""
    if isinstance(value, dict):
        return {k: _squash(v) if k == "sql" else same_sql(v) for k, v in value.items()}
    if isinstance(value, list):
        return [same_sql(v) for v in value]
    return value


def _squash(sql: Any) -> Any:
    if not isinstance(sql, str):
        return same_sql(sql)
    return re.sub(r"\s*([()])\s*", r"\1", " ".join(sql.split()))


def import_into(src: Path, defs: Path, app: str, catalog: Path) -> Path:
    shutil.copytree(catalog, defs / "services")
    dest = defs / "apps" / app
    assert main(["import-ts", str(src), str(dest)]) == 0
    return dest


def assert_checks(defs: Path, summary: str) -> None:
    result = workflows("check", str(defs))
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary in result.stdout


def test_every_documented_shape_converts_to_the_docs_examples_and_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = import_into(CORPUS / "docs-app", tmp_path, "docs", DOCS_EXAMPLES / "services")
    expected_dir = DOCS_EXAMPLES / "apps" / "docs" / "workflows"
    written = sorted(path.name for path in (dest / "workflows").iterdir())
    assert written == sorted(path.name for path in expected_dir.glob("*.json"))
    for name in written:
        got = json.loads((dest / "workflows" / name).read_text())
        assert same_sql(got) == same_sql(json.loads((expected_dir / name).read_text())), name
    schedules = json.loads((dest / "schedules.json").read_text())["schedules"]
    assert [entry["workflow"] for entry in schedules] == [
        "./workflows/sql.json",  # a file with one export
        "./workflows/preExecute.json",  # two exports, one named like the file
        "./workflows/persistToDatabase.json",  # export default
        "./workflows/variables.json",  # export { variablesJob as variables }
        "./workflows/wait.json",  # a JSON path stays as it is
    ]
    assert schedules[2]["backfillStart"] == "2026-01-01"
    assert f"wrote {dest / 'workflows' / 'sql.json'}" in capsys.readouterr().out
    assert_checks(tmp_path, f"OK: {len(written)} workflow(s), 5 schedule(s), 5 service(s).")


def test_the_ported_demo_app_is_the_demo_app(tmp_path: Path) -> None:
    dest = import_into(PORTED_DEMO, tmp_path, "demo-shop", REAL_DEFS / "services")
    demo = REAL_DEFS / "apps" / "demo-shop"
    for path in sorted((demo / "workflows").glob("*.json")):
        got = json.loads((dest / "workflows" / path.name).read_text())
        assert same_sql(got) == same_sql(json.loads(path.read_text())), path.name
    sync = json.loads((dest / "workflows" / "syncEnrichedOrders.json").read_text())
    assert sync["steps"][2]["sql"].startswith("\n        WITH recent AS (\n")  # as written
    assert json.loads((dest / "schedules.json").read_text()) == json.loads(
        (demo / "schedules.json").read_text()
    )
    shipped = len(list((demo / "workflows").glob("*.json")))
    assert_checks(tmp_path, f"OK: {shipped} workflow(s), 2 schedule(s), 5 service(s).")


BAD = [
    ("call.ts", 5, 10, "`buildSteps('shop')` is a function call"),
    ("imported.ts", 9, 24, "`ORG_ID` is imported from './constants'"),
    ("spread_unknown.ts", 7, 10, "`baseStep` is imported from './shared'"),
    ("computed.ts", 8, 24, "`50 * 2` is a computed value"),
    ("unknown_name.ts", 2, 50, "`TABLE_NAME` is not declared in this file"),
    ("template_call.ts", 7, 35, "substitutes `${new Date().toISOString()}`"),
    ("template_item.ts", 9, 30, "a workflow template is written {{item.customer_id}}"),
    ("let_binding.ts", 6, 77, "`pageSize` is declared with let (line 3)"),
    ("syntax.ts", 5, 5, "syntax error near"),
    ("computed_key.ts", 4, 76, "the computed key `[COLUMN]`"),
    ("undefined_value.ts", 2, 65, "`undefined` has no JSON value"),
    ("function_value.ts", 6, 30, "is a function, which cannot be evaluated"),
    ("env_secret.ts", 6, 24, "`process.env` is read when the code runs"),
    ("cycle.ts", 2, 16, "`A` refers to itself (A -> B -> A)"),
]


@pytest.mark.parametrize(("name", "line", "column", "fragment"), BAD, ids=[b[0] for b in BAD])
def test_what_cannot_be_converted_names_file_line_and_column(
    name: str, line: int, column: int, fragment: str
) -> None:
    _, problems = convert(CORPUS / "bad" / name)
    assert [str(p).split(": ", 1)[0] for p in problems] == [f"{name}:{line}:{column}"]
    assert fragment in str(problems[0])
    assert "; expected " in str(problems[0])


def test_pointer_into_the_workflow_is_named() -> None:
    _, problems = convert(CORPUS / "bad" / "computed.ts")
    assert "(at #/steps/0/params/limit of the workflow)" in str(problems[0])


def test_nothing_is_written_when_one_file_cannot_be_converted(tmp_path: Path) -> None:
    src = tmp_path / "app"
    shutil.copytree(CORPUS / "docs-app", src)
    shutil.copy(CORPUS / "bad" / "call.ts", src / "src/server/workflows/call.ts")
    (src / "src/server/workflows/db.ts").write_text(
        "export const db = { steps: [{ sql: connect('postgresql://ops:hunter2pw@db/x') }] };\n"
    )
    dest = tmp_path / "defs" / "apps" / "docs"
    (dest / "workflows").mkdir(parents=True)
    (dest / "workflows" / "kept.json").write_text("{}\n")
    result = workflows("import-ts", str(src), str(dest))
    assert result.returncode == 1
    assert "src/server/workflows/call.ts:5:10: `buildSteps('shop')`" in result.stderr
    assert "src/server/workflows/db.ts:1:36: " in result.stderr
    assert "hunter2pw" not in result.stderr  # messages go through redaction
    assert "2 problem(s); nothing was written." in result.stderr
    assert sorted(p.name for p in dest.rglob("*")) == ["kept.json", "workflows"]


def test_schedules_that_name_no_single_workflow_are_errors(tmp_path: Path) -> None:
    _, problems = convert(CORPUS / "bad-schedules")
    assert [str(p).split(":")[0] for p in problems] == [
        "schedules.json#/schedules/1/workflow",
        "schedules.json#/schedules/2/workflow",
    ]
    assert "exports several workflows ('daily', 'weekly') and none is named 'reports'" in str(
        problems[0]
    )
    assert "e.g. ./workflows/daily.json" in str(problems[0])
    assert "'./src/server/workflows/archive.ts' names no file" in str(problems[1])


def test_literals_evaluate_as_javascript_does(tmp_path: Path) -> None:
    source = tmp_path / "values.ts"
    source.write_bytes(
        "const NAME = 'café';\r\n"
        "export default {\r\n"
        "  name: `${NAME} \\u{1F600}\\x41\\u0042`,\r\n"
        "  description: 'line\\\r\ncontinued\\ttab \\'q\\' \"d\" \\uD83D\\uDE00',\r\n"
        "  variables: { a: { type: 'param', default: [0x1f, 1e3, 5.0, -2.5, .5, 1_000] } },\r\n"
        "  steps: [{ sql: `SELECT 1\r\n  AS one`, outputTable: 'o', 'dependsOn': [], }],\r\n"
        "} satisfies JobDefinition;\r\n".encode()
    )
    files, problems = convert(source)
    assert problems == []
    value = json.loads(files["workflows/values.json"])  # a default export: the file's stem
    assert value["name"] == "café \U0001f600AB"
    assert value["description"] == "linecontinued\ttab 'q' \"d\" \U0001f600"
    assert value["variables"]["a"]["default"] == [31, 1000, 5, -2.5, 0.5, 1000]
    assert value["steps"] == [{"sql": "SELECT 1\n  AS one", "outputTable": "o", "dependsOn": []}]


def test_one_name_exported_by_two_files_is_an_error(tmp_path: Path) -> None:
    for name in ("a.ts", "b.ts"):
        (tmp_path / name).write_text("\n\nexport const sync = { steps: [] };\n")
    _, problems = convert(tmp_path)
    assert [str(p) for p in problems] == [
        "b.ts:3:1: the workflow 'sync' is also exported by a.ts:3; expected one export per "
        "name (each becomes workflows/<name>.json)"
    ]


def test_a_folder_without_workflows_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "helpers.ts").write_text("export const limit = compute();\n")
    _, problems = convert(tmp_path)
    assert [p.message for p in problems] == ["holds no JobDefinition export"]


def test_dest_must_be_an_app_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "apps" / "my app"
    assert main(["import-ts", str(CORPUS / "bad-schedules" / "src"), str(dest)]) == 1
    assert "'my app' is not an app id" in capsys.readouterr().err
    assert not dest.exists()
