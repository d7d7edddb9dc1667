"""What the database steps share for `workflows check --db` (SPEC 7): finding the app
table a step names, and telling whether a column's type fits another's."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from resources.app_db_schema import AppDatabaseError, TableInfo
from translators.errors import Problem
from translators.steps.kind import app_id_at_load

if TYPE_CHECKING:
    from translators.plans import StepPlan, WorkflowPlan

ProblemAt = Callable[..., Problem]  # (field, message, expected=None) -> Problem

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


def category(duckdb_type: str) -> str | None:
    return _CATEGORIES.get(duckdb_type.split("(")[0].strip().upper())


def find_table(
    app_db: Any, workflow: WorkflowPlan, step: StepPlan, key: str, inner: Any
) -> tuple[TableInfo | None, ProblemAt, list[Problem]]:
    """The table `inner` (the step's `key` block) names, and a maker of problems inside
    that block; or None and the problem that stopped the look-up."""
    pointer = f"{step.pointer}/{key}"

    def problem(field: str, message: str, expected: str | None = None) -> Problem:
        return Problem(workflow.file, f"{pointer}/{field}", message, expected)

    app_id = app_id_at_load(workflow, inner.app_id)
    refused = workflow.access.refusal(app_id)
    if refused is not None:
        return None, problem, [problem("appId", *refused)]
    try:
        return app_db.table_info(app_id, inner.table_name), problem, []
    except AppDatabaseError as error:
        return None, problem, [problem("tableName", str(error), "an existing table")]


def source_schema(workflow: WorkflowPlan, step: StepPlan, table: str) -> dict[str, str]:
    """The schema of an earlier step's table this step reads."""
    producer = step.reads.get(table)
    for other in workflow.steps:
        if other.name == producer:
            return dict(other.output_schema or {})
    return {}
