"""The rules of the models' validators, stated as JSON Schema (for `workflows schema`).

A model validator is code, which no JSON Schema generator can read; each model that has
one passes the same rule here as `json_schema_extra`, next to the validator, so an editor
flags what the loader would. tests/test_json_schema.py checks each rule against its model.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def is_set(key: str) -> Schema:
    """`key` is present and not null."""
    return {"required": [key], "properties": {key: {"not": {"type": "null"}}}}


def is_unset(key: str) -> Schema:
    """`key` is absent or null."""
    return {"properties": {key: {"type": "null"}}}


def non_empty_object(key: str) -> Schema:
    """`key` holds an object with at least one key (a truthy mapping)."""
    return {"required": [key], "properties": {key: {"type": "object", "minProperties": 1}}}


def non_empty_text(key: str) -> Schema:
    """`key` holds a string that is not empty (a truthy one)."""
    return {"required": [key], "properties": {key: {"type": "string", "minLength": 1}}}


def empty_or_null(key: str) -> Schema:
    """`key` is absent, null or `{}` (a falsy mapping)."""
    return {"properties": {key: {"anyOf": [{"type": "null"}, {"maxProperties": 0}]}}}


def inside(key: str, rule: Schema) -> Schema:
    """`rule` holds for the object at `key`, which is present."""
    return {"required": [key], "properties": {key: rule}}


def when_equals(key: str, value: str, then: Schema) -> Schema:
    """When `key` is `value`, `then` holds."""
    return {"if": {"required": [key], "properties": {key: {"const": value}}}, "then": then}


def rules(*schemas: Schema) -> Schema:
    """Several rules for one object. `allOf` keeps the generated `properties` intact."""
    return {"allOf": list(schemas)}


def one_output_of(inner: str) -> Schema:
    """outputTable on the step or inside `inner` (at least one), outputSchema not in both."""
    return rules(
        {"anyOf": [is_set("outputTable"), inside(inner, non_empty_text("outputTable"))]},
        {
            "not": rules(
                non_empty_object("outputSchema"), inside(inner, non_empty_object("outputSchema"))
            )
        },
    )


def no_output() -> Schema:
    """A step that produces no table: no `outputTable`, no (non-empty) `outputSchema`."""
    return rules(is_unset("outputTable"), empty_or_null("outputSchema"))
