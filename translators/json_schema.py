"""JSON Schemas of the definition files, generated from the spec models (`workflows schema`).

The models are the one source: their field descriptions become the schemas' descriptions
(what an editor shows on hover), their constraints the schemas' keywords, and the rules
of their validators are stated next to each validator (`translators/spec/schema_rules.py`).
So an editor flags the same shape errors that `workflows check` reports; the checks that
need more than one file (references, SQL, templates, cron) stay with `workflows check`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel

from translators.spec import AppSpec, SchedulesFileSpec, ServiceSpec, WorkflowSpec

DIALECT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class SchemaFile:
    """One schema: the file it is written to, its model, and the definition files it fits."""

    name: str
    model: type[BaseModel]
    # Where the files it describes sit, relative to the definitions folder (SPEC 1).
    pattern: str
    title: str


SCHEMA_FILES = (
    SchemaFile("workflow.schema.json", WorkflowSpec, "apps/*/workflows/*.json", "Workflow"),
    SchemaFile("service.schema.json", ServiceSpec, "services/*.json", "Service"),
    SchemaFile("schedules.schema.json", SchedulesFileSpec, "apps/*/schedules.json", "Schedules"),
    SchemaFile("app.schema.json", AppSpec, "apps/*/app.json", "App"),
)


def schema_file_for(relative: PurePath) -> str | None:
    """The schema of a file at `relative` (to the definitions folder), or None."""
    for schema in SCHEMA_FILES:
        # PurePath.match anchors a relative pattern at the end; the length check anchors
        # it at the start too, so `x/services/a.json` is not a service file.
        if relative.match(schema.pattern) and len(relative.parts) == schema.pattern.count("/") + 1:
            return schema.name
    return None


def schema_of(schema: SchemaFile) -> dict[str, Any]:
    """The JSON Schema of one kind of file, keys as they are written in JSON (camelCase)."""
    generated = schema.model.model_json_schema(by_alias=True, mode="validation")
    _drop_property_titles(generated)
    generated.setdefault("properties", {})["$schema"] = {
        "type": "string",
        "description": "The JSON Schema this file follows, for editors (a path or URL); "
        "ignored by the loader.",
    }
    return {
        "$schema": DIALECT,
        "$id": schema.name,
        **generated,
        "title": f"{schema.title} definition ({schema.pattern})",
    }


def all_schemas() -> dict[str, dict[str, Any]]:
    """File name -> schema, for every kind of definition file."""
    return {schema.name: schema_of(schema) for schema in SCHEMA_FILES}


def _drop_property_titles(node: Any) -> None:
    """Pydantic titles each property after its Python name ("Dependson"); editors would
    show that instead of the JSON key, so only the objects keep their titles."""
    if isinstance(node, dict):
        for prop in node.get("properties", {}).values():
            if isinstance(prop, dict):
                prop.pop("title", None)
        for value in node.values():
            _drop_property_titles(value)
    elif isinstance(node, list):
        for value in node:
            _drop_property_titles(value)
