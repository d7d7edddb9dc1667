"""`workflows schema`: JSON Schemas of the definition files, generated from the models.

The schemas must accept every definition file of the repository, reject what the models
reject (the shape errors of the invalid-definition corpus, and the rules of the models'
validators), accept what the models accept, and describe every field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError

from tests.definition_files import FETCH_ORDERS, SHOP_SERVICE, schedule, workflow
from tests.test_invalid_definitions import CASES
from translators.cli import main
from translators.json_schema import SCHEMA_FILES, all_schemas, schema_file_for

ROOT = Path(__file__).resolve().parents[1]
DEF_FOLDERS = [
    ROOT / "workflow_defs",
    ROOT / "docs" / "examples" / "workflow_defs",
    ROOT / "translators" / "component_scaffold" / "example",
]
SCHEMAS = all_schemas()
MODELS: dict[str, type[BaseModel]] = {f.name: f.model for f in SCHEMA_FILES}


def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(SCHEMAS[name], format_checker=Draft202012Validator.FORMAT_CHECKER)


def _schema_errors(name: str, doc: Any) -> list[str]:
    """JSON pointers of the schema's errors for `doc`."""
    errors = _validator(name).iter_errors(doc)
    return ["".join(f"/{token}" for token in e.absolute_path) for e in errors]


def _model_accepts(name: str, doc: Any) -> bool:
    try:
        MODELS[name].model_validate(doc)
    except ValidationError:
        return False
    return True


def _definition_files() -> list[tuple[Path, Path]]:
    return [
        (folder, path)
        for folder in DEF_FOLDERS
        for path in sorted(folder.rglob("*.json"))
        if schema_file_for(path.relative_to(folder)) is not None
    ]


def test_schema_command_writes_valid_schemas(tmp_path: Path, capsys) -> None:
    out = tmp_path / "schemas"
    assert main(["schema", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(SCHEMAS)
    assert {"workflow.schema.json", "service.schema.json", "schedules.schema.json"} <= set(written)
    for name in written:
        schema = json.loads((out / name).read_text(encoding="utf-8"))
        assert schema == SCHEMAS[name]
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)
    printed = capsys.readouterr().out
    assert "workflow.schema.json" in printed and "apps/*/workflows/*.json" in printed


def test_schema_command_names_the_cause_when_it_cannot_write(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    assert main(["schema", str(blocker)]) == 1
    err = capsys.readouterr().err
    assert "cannot write the schemas" in err and "taken" in err


# Subschemas that state a validator's rule (translators/spec/schema_rules.py) restate
# fields described where they are declared.
_RULE_KEYWORDS = {"allOf", "anyOf", "oneOf", "not", "if", "then", "else"}


def _properties(schema: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (location, property schema) of a schema, in $defs and nested ones too."""
    if isinstance(schema, dict):
        for key, value in schema.get("properties", {}).items():
            yield f"{where}/properties/{key}", value
        for key, value in schema.items():
            if key not in _RULE_KEYWORDS:
                yield from _properties(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from _properties(value, f"{where}/{index}")


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_field_and_object_has_a_description(name: str) -> None:
    schema = SCHEMAS[name]
    fields = list(_properties(schema))
    assert fields
    undescribed = [where for where, prop in fields if not prop.get("description")]
    assert not undescribed, f"fields without a description: {undescribed}"
    objects = {"#": schema, **{f"#/$defs/{k}": v for k, v in schema.get("$defs", {}).items()}}
    bare = [where for where, obj in objects.items() if not obj.get("description")]
    assert not bare, f"objects without a description: {bare}"


def test_json_keys_are_the_camel_case_aliases() -> None:
    steps = SCHEMAS["workflow.schema.json"]["$defs"]["ServiceCallStepSpec"]["properties"]
    assert {"outputTable", "dependsOn", "forEach", "preExecute", "retryDelayMs"} <= set(steps)
    assert not [key for key in steps if "_" in key]


def test_every_definition_file_of_the_repository_is_valid() -> None:
    files = _definition_files()
    kinds = {schema_file_for(path.relative_to(folder)) for folder, path in files}
    assert len(files) >= 20
    assert {"workflow.schema.json", "service.schema.json", "schedules.schema.json"} <= kinds
    for folder, path in files:
        name = schema_file_for(path.relative_to(folder))
        assert name is not None
        doc = json.loads(path.read_text(encoding="utf-8"))
        assert _schema_errors(name, doc) == [], f"{path.relative_to(ROOT)} fails {name}"


# The corpus cases whose problem is the file's shape: a schema must reject each of them.
SHAPE_CASES = {
    "unknown-step-key", "unknown-top-key", "unknown-nested-key", "tag-equals-field",
    "missing-sql-output-table", "step-kind-unknown", "step-kind-several",
    "paginate-type-unknown", "foreach-parallel-51", "variable-type-unknown",
    "service-output-without-schema", "field-mapping-bad-generator", "wait-bad-duration",
    "branch-condition-and-sql", "persist-upsert-without-key", "bad-step-id",
    "schedule-unknown-key", "not-an-object",
}  # fmt: skip


def _corpus() -> Iterator[tuple[str, str, Any, str]]:
    """(case id, schema file, document, pointer) of each JSON document of the corpus."""
    for case in CASES:
        files, file, pointer, _ = case.values
        name = schema_file_for(PurePosixPath(file))
        content = files.get(file)
        if name is None or content is None:
            continue  # a problem of the layout (an app folder's name), not of a file
        try:
            doc = json.loads(content) if isinstance(content, str) else content
        except json.JSONDecodeError:
            continue  # malformed JSON: no schema applies
        yield str(case.id), name, doc, pointer


def test_schemas_agree_with_the_models_on_the_invalid_corpus() -> None:
    rejected = set()
    for case_id, name, doc, pointer in _corpus():
        where = _schema_errors(name, doc)
        assert (not where) == _model_accepts(name, doc), f"{case_id}: schema says {where}"
        if where:
            rejected.add(case_id)
            # The schema points at the problem's place or at an object enclosing it.
            assert any(pointer.startswith(w) for w in where), f"{case_id}: {where} vs {pointer}"
    assert rejected == SHAPE_CASES


def _wf(step: dict[str, Any]) -> dict[str, Any]:
    return workflow(FETCH_ORDERS, step) if "persistToDatabase" in step else workflow(step)


PERSIST = {"appId": "shop", "tableName": "t", "sourceTable": "orders", "mode": "append",
           "fieldMapping": {"id": "id"}}  # fmt: skip
IMPORT = {"appId": "shop", "tableName": "customers"}
WAIT = {"wait": {"duration": "1s"}}

# The rules of the models' validators, each as the schema states it: (id, file, doc, valid).
RULES = [
    ("rate-limit-one", "service", {**SHOP_SERVICE, "rateLimit": {"requestsPerSecond": 5}}, True),
    ("rate-limit-both", "service", {**SHOP_SERVICE, "rateLimit": {
        "requestsPerSecond": 5, "requestsPerMinute": 5}}, False),
    ("rate-limit-neither", "service", {**SHOP_SERVICE, "rateLimit": {}}, False),
    ("no-operations", "service", {**SHOP_SERVICE, "operations": {}}, False),
    ("not-http", "service", {**SHOP_SERVICE, "baseUrl": "ftp://x"}, False),
    ("auth-type-unknown", "service", {**SHOP_SERVICE, "auth": {"type": "oauth"}}, False),
    ("branch-condition-null", "workflow", _wf({"branch": {"condition": None}}), True),
    ("branch-condition-sql-null", "workflow", _wf({"branch": {"condition": 1, "sql": None}}),
     True),
    ("branch-sql", "workflow", _wf({"branch": {"sql": "SELECT true"}}), True),
    ("branch-neither", "workflow", _wf({"branch": {}}), False),
    ("branch-schema", "workflow", _wf({"branch": {"sql": "SELECT 1"}, "outputSchema": {
        "value": "BOOLEAN"}}), False),
    ("wait-until", "workflow", _wf({"wait": {"until": "{{var.at}}"}}), True),
    ("wait-neither", "workflow", _wf({"wait": {}}), False),
    ("wait-with-table", "workflow", _wf({**WAIT, "outputTable": "t"}), False),
    ("wait-empty-schema", "workflow", _wf({**WAIT, "outputSchema": {}}), True),
    ("import-inner-table", "workflow", _wf({"importFromDatabase": {**IMPORT,
        "outputTable": "c"}}), True),
    ("import-no-table", "workflow", _wf({"importFromDatabase": IMPORT}), False),
    ("import-two-schemas", "workflow", _wf({"outputTable": "c", "outputSchema": {"a": "INT"},
        "importFromDatabase": {**IMPORT, "outputSchema": {"a": "INT"}}}), False),
    ("import-where-pair", "workflow", _wf({"outputTable": "c", "importFromDatabase": {
        **IMPORT, "whereColumn": "org", "whereValue": None}}), True),
    ("import-where-value-only", "workflow", _wf({"outputTable": "c", "importFromDatabase": {
        **IMPORT, "whereValue": 1}}), False),
    ("import-where-column-only", "workflow", _wf({"outputTable": "c", "importFromDatabase": {
        **IMPORT, "whereColumn": "org"}}), False),
    ("persist-append", "workflow", _wf({"persistToDatabase": PERSIST}), True),
    ("persist-replace-all-without-where", "workflow", _wf({"persistToDatabase": {
        **PERSIST, "mode": "replaceAll"}}), False),
    ("persist-with-table", "workflow", _wf({"persistToDatabase": PERSIST, "outputTable": "x"}),
     False),
    ("call-empty-schema", "workflow", _wf({**FETCH_ORDERS, "outputSchema": {}}), False),
    ("call-no-table", "workflow", _wf({"service": "shop", "operation": "listOrders"}), True),
    ("call-service-only", "workflow", _wf({"service": "shop"}), False),
    # Templates stand where a value of any type goes (params), never in a number field.
    ("template-in-params", "workflow", _wf({**FETCH_ORDERS, "params": {"n": "{{var.n}}"}}),
     True),
    ("template-as-number", "workflow", _wf({**FETCH_ORDERS, "maxRetries": "{{var.n}}"}), False),
    ("no-steps", "workflow", {"steps": []}, False),
    ("settings-executor", "workflow", {**_wf(WAIT), "settings": {"executor": "celery"}}, True),
    ("schedule-backfill-date", "schedules", {"schedules": [schedule(
        backfillStart="2024-01-01")]}, True),
    ("schedule-backfill-not-a-date", "schedules", {"schedules": [schedule(
        backfillStart="2024-13-01")]}, False),
    ("schedule-empty-name", "schedules", {"schedules": [schedule(name="")]}, False),
    ("app-databases", "app", {"databases": ["other-app"]}, True),
    ("app-bad-id", "app", {"databases": ["other app"]}, False),
]  # fmt: skip


@pytest.mark.parametrize(("doc", "name", "valid"), [
    pytest.param(doc, f"{kind}.schema.json", valid, id=case_id)
    for case_id, kind, doc, valid in RULES
])  # fmt: skip
def test_schemas_state_the_rules_of_the_models(doc: Any, name: str, valid: bool) -> None:
    assert _model_accepts(name, doc) is valid  # the case says what the models do ...
    assert (_schema_errors(name, doc) == []) is valid  # ... and the schema says the same


def test_the_editor_page_maps_every_schema_to_its_files() -> None:
    page = (ROOT / "docs" / "editor.md").read_text(encoding="utf-8")
    [settings] = [
        json.loads(block)
        for block in re.findall(r"^```json\n(.*?)^```", page, flags=re.M | re.S)
        if "json.schemas" in block
    ]
    mapped = {
        entry["url"].removeprefix("./schemas/"): entry["fileMatch"]
        for entry in settings["json.schemas"]
    }
    assert mapped == {f.name: [f"**/workflow_defs/{f.pattern}"] for f in SCHEMA_FILES}
    for kind in SCHEMA_FILES:
        assert f"| `{kind.name}` | `{kind.pattern}` |" in page


def test_a_file_may_name_its_schema(tmp_path: Path) -> None:
    """`"$schema"` at the top of a definition file is for editors: the loader ignores it
    and the generated schema accepts it; any other unknown key stays an error."""
    from translators.loader import load_definitions

    workflows = tmp_path / "apps" / "shop" / "workflows"
    workflows.mkdir(parents=True)
    document = {
        "$schema": "../../../../schemas/workflow.schema.json",
        "steps": [{"sql": "SELECT 1 AS one", "outputTable": "one"}],
    }
    (workflows / "w.json").write_text(json.dumps(document))
    loaded = load_definitions(tmp_path)
    assert loaded.ok, [str(p) for p in loaded.problems]
    Draft202012Validator(all_schemas()["workflow.schema.json"]).validate(document)
    (workflows / "w.json").write_text(json.dumps({**document, "$comment": "x"}))
    assert not load_definitions(tmp_path).ok
