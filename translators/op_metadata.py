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
from translators.plans import StepPlan, WorkflowPlan
from translators.spec import ServiceSpec
from translators.steps import StepResult
from translators.steps.registry import kind_of
from translators.steps.runtime import TableWritten

PREVIEW_ROWS = 5
PREVIEW_CELL_CHARS = 40


def op_tags(workflow: WorkflowPlan, step: StepPlan, services: list[str]) -> dict[str, str]:
    """Source pointer tags, and the step's kinds as Dagster kind tags (plus the legacy
    `kind` tag, which the op graph shows as a badge)."""
    badge = kind_of(step).dagster_kind  # a short word (SPEC 3 name -> badge)
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
    return f"{kind_of(step).describe(workflow, step, catalog)}\n\n{source}"


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
