"""Pydantic validation errors -> problems at JSON pointers of the RAW document.

Pydantic's error `loc` mixes field aliases with union labels: discriminator tags
(`('steps', 0, 'sql', 'sql')`: the tag `sql`, then the field `sql`), `type` tags
(`('paginate', 'cursor', 'cursorField')`) and member names of plain unions
(`('fieldMapping', 'x', 'GenerateSpec', 'generate')`). The location is walked together
with the model's type annotations, so a label is recognised because a union stands at
that position, never by guessing from the name.
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError
from pydantic_core import ErrorDetails

from translators.errors import Problem, did_you_mean, join_pointer, one_of, short_repr
from translators.spec.steps import (
    DURATION_PATTERN,
    KIND_KEYS,
    STEP_ID_PATTERN,
    step_kind_expected,
)

_MISSING = object()

_PATTERN_HINTS = {
    DURATION_PATTERN: "a duration such as 30s, 5m, 2h, 1d or 1h30m",
    STEP_ID_PATTERN: "letters, digits and _ only",
    r"^[A-Za-z0-9][A-Za-z0-9_-]*$": "letters, digits, _ and - (not first)",
    r"^https?://": "an http:// or https:// URL",
    r"^/": "a path starting with /",
}


@dataclass
class _Located:
    """Where an error points: the raw pointer, and what stands there."""

    tokens: list[str | int] = field(default_factory=list)
    raw: Any = None
    tp: Any = None
    parent_model: type[BaseModel] | None = None
    # The innermost plain (not discriminated) union passed: its pointer, raw value, type,
    # and whether the member the error came from is a model.
    union: tuple[str, Any, Any, bool] | None = None


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _strip(tp: Any) -> Any:
    """Drop Annotated wrappers and `| None`."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif hasattr(tp, "current_union"):  # the step union, built from the registry
            tp = tp.current_union()
        elif _is_union(tp) and len(members := _members(tp)) == 1:
            tp = members[0]
        else:
            return tp


def _members(union: Any) -> list[Any]:
    return [m for m in get_args(union) if m is not type(None)]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _type_tags(tp: Any) -> tuple[Any, ...]:
    """The `type` literal values of a model, if it has that discriminator."""
    field_info = tp.model_fields.get("type") if _is_model(tp) else None
    if field_info is None or get_origin(field_info.annotation) is not Literal:
        return ()
    return get_args(field_info.annotation)


def _member_for(union: Any, label: Any) -> tuple[Any, bool] | None:
    """(member type, is discriminated) for a union label, else None."""
    for member in _members(union):
        if get_origin(member) is Annotated:
            tags = [m.tag for m in get_args(member)[1:] if isinstance(m, Tag)]
            if label in tags:
                return _strip(member), True
        inner = _strip(member)
        if label in _type_tags(inner):
            return inner, True
        if getattr(inner, "__name__", None) == label:
            return inner, False
    return None


def union_tags(tp: Any) -> list[str]:
    """Every tag of a discriminated union (for `union_tag_not_found`)."""
    tp = _strip(tp)
    if not _is_union(tp):
        return []
    tags: list[str] = []
    for member in _members(tp):
        if get_origin(member) is Annotated:
            tags += [str(m.tag) for m in get_args(member)[1:] if isinstance(m, Tag)]
        tags += [str(t) for t in _type_tags(_strip(member))]
    return tags


def _child_type(tp: Any, token: Any) -> Any:
    if _is_model(tp):
        for name, info in tp.model_fields.items():
            if token in (info.alias, name):
                return info.annotation
        return Any
    origin = get_origin(tp)
    if origin is list and isinstance(token, int):
        return get_args(tp)[0]
    if origin is dict:
        return get_args(tp)[1]
    return Any


def _child_raw(raw: Any, token: Any) -> Any:
    if isinstance(raw, dict) and token in raw:
        return raw[token]
    if isinstance(raw, list) and isinstance(token, int) and 0 <= token < len(raw):
        return raw[token]
    return _MISSING


def locate(loc: tuple[str | int, ...], raw: Any, model: type[BaseModel]) -> _Located:
    """Walk `loc` through the raw document and the model's annotations together."""
    here = _Located(raw=raw, tp=model)
    for token in loc:
        tp = _strip(here.tp)
        if _is_union(tp):
            found = _member_for(tp, token)
            if found is not None:
                member, discriminated = found
                if not discriminated:
                    pointer = join_pointer("", *here.tokens)
                    here.union = (pointer, here.raw, tp, _is_model(member))
                here.tp = member
                continue
        here.parent_model = tp if _is_model(tp) else None
        here.tp = _child_type(tp, token)
        here.raw = _child_raw(here.raw, token)
        here.tokens.append(token)
    return here


def _quoted(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", text)


def _step_kind_message(raw: Any) -> str:
    if not isinstance(raw, dict):
        return f"a step must be an object, found {short_repr(raw)}"
    kinds = [k for k, keys in KIND_KEYS.items() if any(key in raw for key in keys)]
    if len(kinds) > 1:
        found = [key for keys in KIND_KEYS.values() for key in keys if key in raw]
        return f"the step has keys of several kinds ({', '.join(found)})"
    known = [key for keys in KIND_KEYS.values() for key in keys]
    hint = next((h for key in raw if (h := did_you_mean(str(key), known))), "")
    keys = ", ".join(f"'{k}'" for k in raw) or "none"
    return f"cannot tell the step's kind from its keys ({keys}){hint}"


def _type_error(err: ErrorDetails) -> tuple[str, str | None]:
    found = err["input"]
    kind = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(found), "a number" if isinstance(found, int | float) else "null"
    )
    expected = err["msg"].removeprefix("Input should be ")
    expected = {"a valid list": "an array", "a valid dictionary": "an object"}.get(
        expected, expected
    )
    if err["type"] == "model_type":
        expected = "an object"
    return f"wrong type: found {kind} {short_repr(found)}", expected


def describe(err: ErrorDetails, here: _Located) -> tuple[str, str | None, str]:
    """(message, expected, extra pointer token or "") for one error."""
    kind, ctx, msg = err["type"], err.get("ctx") or {}, err["msg"]
    key = str(here.tokens[-1]) if here.tokens else ""
    if kind == "missing":
        return f"missing required key '{key}'", None, ""
    if kind == "extra_forbidden":
        model = here.parent_model
        allowed = [info.alias or name for name, info in model.model_fields.items()] if model else []
        return f"unknown key '{key}'", one_of(allowed, key), ""
    if kind == "step_kind":
        return _step_kind_message(here.raw), step_kind_expected(), ""
    if kind == "union_tag_invalid":
        name = ctx.get("discriminator", "'type'").strip("'")
        tag = str(ctx.get("tag"))
        return f"unknown {name} '{tag}'", one_of(_quoted(ctx.get("expected_tags", "")), tag), name
    if kind == "union_tag_not_found":
        name = ctx.get("discriminator", "'type'").strip("'")
        return f"missing required key '{name}'", one_of(union_tags(here.tp)), name
    if kind in ("too_short", "too_long"):
        bound = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        size = "at least" if kind == "too_short" else "at most"
        return f"{'too few' if kind == 'too_short' else 'too many'} items", f"{size} {bound}", ""
    if kind == "value_error":
        return msg.removeprefix("Value error, "), None, ""
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        hint = _PATTERN_HINTS.get(pattern, f"text matching {pattern}")
        return f"invalid value {short_repr(err['input'])}", hint, ""
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        options = _quoted(expected)
        word = err["input"] if isinstance(err["input"], str) else None
        hint = one_of(options, word) if options else expected
        return f"invalid value {short_repr(err['input'])}", hint, ""
    if kind.endswith("_type"):
        message, expected_type = _type_error(err)
        return message, expected_type, ""
    if msg.startswith("Input should be "):
        return f"invalid value {short_repr(err['input'])}", msg.removeprefix("Input should be "), ""
    return msg, None, ""


def _union_problem(file: str, pointer: str, raw: Any, union: Any) -> Problem:
    """One problem for a value that fits no member of a plain union."""
    options = []
    for member in _members(union):
        inner = _strip(member)
        if _is_model(inner):
            keys = ", ".join(info.alias or n for n, info in inner.model_fields.items())
            options.append(f"an object with {keys}")
        else:
            options.append(
                {str: "a string", int: "an integer", float: "a number"}.get(
                    inner, getattr(inner, "__name__", str(inner))
                )
            )
    return Problem(file, pointer, f"invalid value {short_repr(raw)}", " or ".join(options))


def validation_problems(
    error: ValidationError, raw: Any, model: type[BaseModel], file: str, base: str = ""
) -> list[Problem]:
    """Every error of `error` as a problem in `file`, pointers relative to `base`."""
    problems: list[Problem] = []
    unions_done: set[str] = set()
    for err in error.errors(include_url=False):
        here = locate(err["loc"], raw, model)
        if here.union is not None:
            pointer, value, union, from_model = here.union
            if not isinstance(value, dict):
                if pointer not in unions_done:
                    unions_done.add(pointer)
                    problems.append(_union_problem(file, base + pointer, value, union))
                continue
            if not from_model:
                continue  # an object: only the object members' errors say what is wrong
        message, expected, extra = describe(err, here)
        pointer = join_pointer(base, *here.tokens, *([extra] if extra else []))
        problem = Problem(file, pointer, message, expected)
        if problem not in problems:
            problems.append(problem)
    return problems
