"""What a step op shows in the Dagster UI (issue 9): its kinds, a description that says what
it does, and typed metadata on its output and on the app table it writes.

Every text built from data (previews, descriptions, column names) is redacted: a table
row may hold a token the step was given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from resources.secrets import redact, redact_value
from translators.assets import app_id_at_load
from translators.loader import StepPlan, WorkflowPlan
from translators.spec import (
    BranchStepSpec,
    ImportFromDatabaseStepSpec,
    PersistToDatabaseStepSpec,
    ServiceCallStepSpec,
    ServiceSpec,
    SqlStepSpec,
    WaitStepSpec,
)
from translators.steps import StepResult
from translators.steps.runtime import TableWritten

# The Dagster kind of each step kind: a badge on the op (SPEC 3 names -> short words).
KIND_BADGES = {
    "serviceCall": "serviceCall",
    "sql": "sql",
    "importFromDatabase": "import",
    "persistToDatabase": "persist",
    "conditional": "branch",
    "waitFor": "wait",
}
PREVIEW_ROWS = 5
PREVIEW_CELL_CHARS = 40


def op_tags(workflow: WorkflowPlan, step: StepPlan, services: list[str]) -> dict[str, str]:
    """Source pointer tags, and the step's kinds as Dagster kind tags (plus the legacy
    `kind` tag, which the op graph shows as a badge)."""
    badge = KIND_BADGES.get(step.kind, step.kind)
    tags = {
        "workflow/file": workflow.file,
        "workflow/pointer": step.pointer,
        "workflow/kind": step.kind,
        "kind": badge,
        f"dagster/kind/{badge}": "",
    }
    tags |= {f"dagster/kind/{service}": "" for service in services}
    return tags


def op_description(workflow: WorkflowPlan, step: StepPlan, catalog: dict[str, ServiceSpec]) -> str:
    """What the step does, in the UI's words: calls, tables read and written, its source."""
    source = f"Defined at `{workflow.file}#{step.pointer}`."
    return f"{_what(workflow, step, catalog)}\n\n{source}"


def _what(workflow: WorkflowPlan, step: StepPlan, catalog: dict[str, ServiceSpec]) -> str:
    spec = step.spec
    writes = f" Writes table `{step.output_table}`." if step.output_table else ""
    reads = ", ".join(f"`{table}`" for table in step.reads)
    if isinstance(spec, ServiceCallStepSpec):
        return _service_call(spec, catalog) + writes
    if isinstance(spec, SqlStepSpec):
        return f"Runs SQL over {reads or 'no step table'}.{writes}"
    if isinstance(spec, ImportFromDatabaseStepSpec):
        source = spec.import_from_database
        app_id = app_id_at_load(workflow, source.app_id)
        return f"Reads table `{source.table_name}` of app `{app_id}`.{writes}"
    if isinstance(spec, PersistToDatabaseStepSpec):
        target = spec.persist_to_database
        key = f" on {', '.join(target.upsert_key)}" if target.upsert_key else ""
        return (
            f"Writes `{target.source_table}` into table `{target.table_name}` of app "
            f"`{app_id_at_load(workflow, target.app_id)}` ({target.mode}{key}): the asset "
            f"`{app_id_at_load(workflow, target.app_id)}/{target.table_name}`."
        )
    if isinstance(spec, BranchStepSpec):
        return f"Branch: the steps after it run only when its condition holds (reads {reads})."
    if isinstance(spec, WaitStepSpec):
        return "Waits before the steps after it."
    return f"A {step.kind} step."


def _service_call(spec: ServiceCallStepSpec, catalog: dict[str, ServiceSpec]) -> str:
    service = catalog.get(spec.service)
    operation = service.operations.get(spec.operation) if service else None
    call = f"`{spec.service}.{spec.operation}`"
    if operation is not None:
        call += f" ({operation.method} {operation.path})"
    text = f"Calls {call}"
    if spec.for_each is not None:
        text += f" once per row of `{spec.for_each.source}`"
    if spec.paginate is not None:
        text += f", following {spec.paginate.type} pages"
    return text + "."


def output_metadata(result: StepResult, preview: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The step table's row count, column schema and first rows, then the step's figures."""
    metadata: dict[str, Any] = {}
    handle = result.handle
    if handle is not None:
        metadata["table"] = handle.name
        metadata["dagster/row_count"] = handle.row_count
        metadata["dagster/column_schema"] = table_schema(handle.columns)
        if preview is not None:
            metadata["preview"] = dg.MetadataValue.md(markdown_rows(list(handle.columns), preview))
        metadata["path"] = dg.MetadataValue.path(handle.path)
    for key, value in result.metadata.items():
        metadata[key] = _value(value)
    return metadata


def materialization(written: TableWritten) -> dg.AssetMaterialization:
    """The app table's asset (`<app_id>/<table>`), as the persist step left it."""
    metadata: dict[str, Any] = {"dagster/table_name": written.table}
    if written.row_count is not None:
        metadata["dagster/row_count"] = written.row_count
    if written.columns:
        metadata["dagster/column_schema"] = table_schema(written.columns)
    metadata |= {name: _value(value) for name, value in written.metadata.items()}
    return dg.AssetMaterialization(
        asset_key=dg.AssetKey([written.app_id, written.table]), metadata=metadata
    )


def table_schema(columns: Mapping[str, str]) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name=name, type=kind) for name, kind in columns.items()]
    )


def markdown_rows(columns: list[str], rows: list[dict[str, Any]]) -> str:
    """A markdown table of `rows`, cells cut short, `|` escaped, every cell redacted."""
    if not rows:
        return "_no rows_"
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |"]
    lines.append("|" + "---|" * len(columns))
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = "" if value is None else redact(str(value))
    if len(text) > PREVIEW_CELL_CHARS:
        text = text[: PREVIEW_CELL_CHARS - 1] + "…"
    return text.replace("|", "\\|").replace("\n", " ")


def _value(value: Any) -> Any:
    """Figures as numbers, texts as plain text, lists and dicts as JSON; all redacted
    (row errors and skipped items quote values)."""
    value = redact_value(value)
    if isinstance(value, (dict, list)):
        return dg.MetadataValue.json(value)
    if isinstance(value, str):
        return dg.MetadataValue.text(value)
    return value
