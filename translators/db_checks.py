"""`workflows check --db`: check the database steps against the app databases (SPEC 7).

Tables and columns exist, `upsertKey` has a unique constraint, required columns are
mapped, and mapped types are compatible. The app id comes from the step's `appId` with
params at their defaults; an `appId` that needs a param without a default is checked
against the workflow's own app's database (SPEC 8), and one that renders to an app the
workflow may not reach is a problem (its database is not opened).
"""

from __future__ import annotations

from typing import Any

from resources.app_database import AppDatabaseResource
from resources.app_db_schema import AppDatabaseError, TableInfo
from translators.errors import Problem
from translators.loader import LoadResult, StepPlan, WorkflowPlan
from translators.spec import (
    GenerateSpec,
    ImportFromDatabaseStepSpec,
    ParamVariableSpec,
    PersistToDatabaseStepSpec,
)
from translators.templates import find_refs, render

_CATEGORIES = {
    "TINYINT": "number",
    "SMALLINT": "number",
    "INTEGER": "number",
    "BIGINT": "number",
    "HUGEINT": "number",
    "DOUBLE": "number",
    "FLOAT": "number",
    "REAL": "number",
    "DECIMAL": "number",
    "BOOLEAN": "boolean",
    "DATE": "time",
    "TIMESTAMP": "time",
    "TIMESTAMP WITH TIME ZONE": "time",
    "TIMESTAMPTZ": "time",
    "VARCHAR": "text",
    "JSON": "text",
    "UUID": "text",
}


def _category(duckdb_type: str) -> str | None:
    return _CATEGORIES.get(duckdb_type.split("(")[0].strip().upper())


def check_against_databases(loaded: LoadResult) -> list[Problem]:
    problems: list[Problem] = []
    app_db = AppDatabaseResource()
    for workflow in loaded.workflows:
        for step in workflow.steps:
            if isinstance(step.spec, ImportFromDatabaseStepSpec | PersistToDatabaseStepSpec):
                problems += _check_step(app_db, workflow, step)
    return problems


def _check_step(
    app_db: AppDatabaseResource, workflow: WorkflowPlan, step: StepPlan
) -> list[Problem]:
    spec = step.spec
    inner: Any
    if isinstance(spec, ImportFromDatabaseStepSpec):
        is_import, key, inner = True, "importFromDatabase", spec.import_from_database
    else:
        assert isinstance(spec, PersistToDatabaseStepSpec)
        is_import, key, inner = False, "persistToDatabase", spec.persist_to_database
    pointer = f"{step.pointer}/{key}"

    def problem(field: str, message: str, expected: str | None = None) -> Problem:
        return Problem(workflow.file, f"{pointer}/{field}", message, expected)

    app_id = _app_id(workflow, inner.app_id)
    refused = workflow.access.refusal(app_id)
    if refused is not None:
        return [problem("appId", *refused)]
    try:
        info = app_db.table_info(app_id, inner.table_name)
    except AppDatabaseError as error:
        return [problem("tableName", str(error), "an existing table")]
    if is_import:
        assert isinstance(spec, ImportFromDatabaseStepSpec)
        return _check_import(inner, spec.schema_, info, problem)
    return _check_persist(inner, info, step, workflow, problem)


def _app_id(workflow: WorkflowPlan, template: str) -> str:
    """The appId with params at their defaults; the workflow's own app when it needs a
    value only known at launch (a param without a default): that is the database a run
    normally reaches, and the only one reachable without app.json (SPEC 8)."""
    defaults: dict[str, Any] = {}
    for name, spec in workflow.spec.variables.items():
        if isinstance(spec, ParamVariableSpec) and "default" in spec.model_fields_set:
            defaults[name] = spec.default
    if any(ref.name not in defaults for ref in find_refs(template)):
        return workflow.app_id
    return str(render(template, defaults))


def _check_import(
    inner: Any, schema: dict[str, str] | None, info: TableInfo, problem: Any
) -> list[Problem]:
    wanted = list(inner.columns or [])
    if inner.where_column:
        wanted.append(inner.where_column)
    for source in (inner.field_mapping or {}).values():
        if isinstance(source, str):
            wanted.append(source)
    if inner.field_mapping is None:
        wanted += list(schema or {})  # the output columns are the table's own
    missing = [c for c in dict.fromkeys(wanted) if c not in info.columns]
    if missing:
        return [
            problem(
                "columns",
                f"table {info.name!r} has no column(s) {missing}",
                f"columns among {list(info.columns)}",
            )
        ]
    return []


def _check_persist(
    inner: Any, info: TableInfo, step: StepPlan, workflow: WorkflowPlan, problem: Any
) -> list[Problem]:
    problems: list[Problem] = []
    mapping = inner.field_mapping
    unknown = [c for c in mapping if c not in info.columns]
    if unknown:
        problems.append(
            problem(
                "fieldMapping",
                f"table {info.name!r} has no column(s) {unknown}",
                f"columns among {list(info.columns)}",
            )
        )
    if inner.upsert_key and not info.has_unique_key(inner.upsert_key):
        problems.append(
            problem(
                "upsertKey",
                f"no primary key or unique constraint on {inner.upsert_key} in table {info.name!r}",
                "a unique constraint on exactly the upsertKey columns",
            )
        )
    required = [
        c.name
        for c in info.columns.values()
        if not c.nullable and not c.has_default and c.name not in mapping
    ]
    if required:
        problems.append(
            problem(
                "fieldMapping",
                f"required column(s) {required} of table {info.name!r} are not mapped",
                "every NOT NULL column mapped",
            )
        )
    source_schema = _source_schema(workflow, step, inner.source_table)
    for target, source in mapping.items():
        if isinstance(source, GenerateSpec) or target not in info.columns:
            continue
        found, wanted = source_schema.get(source), info.columns[target].duckdb_type
        if found and _category(found) and _category(wanted) not in (None, "text", _category(found)):
            problems.append(
                problem(
                    f"fieldMapping/{target}",
                    f"column {source!r} is {found} but {info.name}.{target} is {wanted}",
                    f"a {wanted} value",
                )
            )
    return problems


def _source_schema(workflow: WorkflowPlan, step: StepPlan, table: str) -> dict[str, str]:
    producer = step.reads.get(table)
    for other in workflow.steps:
        if other.name == producer:
            return dict(other.output_schema or {})
    return {}
