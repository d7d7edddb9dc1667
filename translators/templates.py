"""Templates: `{{var.X}}` and `{{item.X}}`, nothing else; no expressions (SPEC 5.4).

Used at load time (find every reference, report malformed ones) and at run time (render
values, turn SQL templates into bound DuckDB parameters). Spaces inside the braces are
accepted: `{{ var.x }}` is `{{var.x}}`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from translators.errors import join_pointer
from translators.naming import dagster_name

Scope = Literal["var", "item"]

# A variable or column name usable in a template.
NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_-]*"
_REF = re.compile(rf"(var|item)\.({NAME_PATTERN})")
_SCOPED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\.(.*)", re.DOTALL)
EXPECTED_FORM = "{{var.NAME}} or {{item.NAME}}"


class TemplateError(ValueError):
    """A template that cannot be rendered: malformed, or naming an unknown value."""


@dataclass(frozen=True)
class TemplateRef:
    """A well-formed reference. `pointer` is relative to the value that was searched."""

    scope: Scope
    name: str
    pointer: str = ""


@dataclass(frozen=True)
class MalformedTemplate:
    """Something that opens a template but is not `{{var.X}}` / `{{item.X}}`."""

    pointer: str
    text: str
    reason: str


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    scope: Scope | None
    name: str
    reason: str | None


def _classify(inner: str) -> tuple[Scope | None, str, str | None]:
    """(scope, name, None) for a good template body, else (None, "", reason)."""
    body = inner.strip()
    match = _REF.fullmatch(body)
    if match:
        scope: Scope = "var" if match.group(1) == "var" else "item"
        return scope, match.group(2), None
    if not body:
        return None, "", "the template is empty"
    scoped = _SCOPED.fullmatch(body)
    if scoped is None:
        return None, "", f"'{body}' names no scope"
    scope_name, name = scoped.groups()
    if scope_name not in ("var", "item"):
        return None, "", f"unknown scope '{scope_name}' (only var and item exist)"
    if not name.strip():
        return None, "", f"no name after '{scope_name}.'"
    return None, "", f"'{name}' is not a plain name (no expressions, paths or filters)"


def _scan(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while (start := text.find("{{", pos)) >= 0:
        end = text.find("}}", start + 2)
        if end < 0:
            tokens.append(_Token(start, len(text), None, "", "'{{' is never closed by '}}'"))
            break
        scope, name, reason = _classify(text[start + 2 : end])
        tokens.append(_Token(start, end + 2, scope, name, reason))
        pos = end + 2
    return tokens


def _walk(value: Any, pointer: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a nested value, with its JSON pointer suffix."""
    if isinstance(value, str):
        yield pointer, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(item, join_pointer(pointer, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk(item, join_pointer(pointer, index))


def find_refs(value: Any) -> list[TemplateRef]:
    """Every well-formed template reference in a nested value (dicts, lists, strings)."""
    refs = []
    for pointer, text in _walk(value):
        for token in _scan(text):
            if token.scope is not None:
                refs.append(TemplateRef(token.scope, token.name, pointer))
    return refs


def find_malformed(value: Any) -> list[MalformedTemplate]:
    """Every malformed template in a nested value: `{{foo.x}}`, `{{var.}}`, an unclosed `{{`."""
    found = []
    for pointer, text in _walk(value):
        for token in _scan(text):
            if token.reason is not None:
                found.append(
                    MalformedTemplate(pointer, text[token.start : token.end], token.reason)
                )
    return found


def single_ref(value: Any) -> TemplateRef | None:
    """The reference when `value` is a string that is exactly one template, else None."""
    if not isinstance(value, str):
        return None
    tokens = _scan(value)
    if len(tokens) != 1 or tokens[0].start != 0 or tokens[0].end != len(value):
        return None
    scope = tokens[0].scope
    return TemplateRef(scope, tokens[0].name) if scope is not None else None


def has_template(value: Any) -> bool:
    """True when a nested value opens any template, well-formed or not."""
    return any("{{" in text for _, text in _walk(value))


# ---------------------------------------------------------------------------- rendering


def as_text(value: Any) -> str:
    """How a value reads inside a longer string: None -> "", booleans -> true/false,
    objects and arrays -> JSON, dates -> ISO-8601."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _lookup(token: _Token, variables: Mapping[str, Any], item: Mapping[str, Any] | None) -> Any:
    if token.scope == "var":
        if token.name not in variables:
            raise TemplateError(f"unknown variable '{token.name}' in {{{{var.{token.name}}}}}")
        return variables[token.name]
    if item is None:
        raise TemplateError(f"{{{{item.{token.name}}}}} is only available inside forEach")
    if token.name not in item:
        columns = ", ".join(sorted(item)) or "none"
        raise TemplateError(f"the item has no column '{token.name}' (columns: {columns})")
    return item[token.name]


def _render_text(text: str, variables: Mapping[str, Any], item: Mapping[str, Any] | None) -> Any:
    tokens = _scan(text)
    if not tokens:
        return text
    for token in tokens:
        if token.reason is not None:
            raise TemplateError(f"malformed template: {token.reason}")
    if len(tokens) == 1 and tokens[0].start == 0 and tokens[0].end == len(text):
        return _lookup(tokens[0], variables, item)
    parts, pos = [], 0
    for token in tokens:
        parts.append(text[pos : token.start])
        parts.append(as_text(_lookup(token, variables, item)))
        pos = token.end
    parts.append(text[pos:])
    return "".join(parts)


def render(value: Any, variables: Mapping[str, Any], item: Mapping[str, Any] | None = None) -> Any:
    """Render every template in a nested value.

    A string that is exactly one template becomes the referenced value with its own type
    (`"{{var.limit}}"` -> 100); a template inside a longer string is rendered as text
    (see `as_text`). Dict keys are not rendered.

    Raises:
        TemplateError: a malformed template, an unknown variable or item column, or
            `{{item.X}}` without an item.
    """
    if isinstance(value, str):
        return _render_text(value, variables, item)
    if isinstance(value, Mapping):
        return {key: render(inner, variables, item) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [render(inner, variables, item) for inner in value]
    return value


# ---------------------------------------------------------------------------- SQL


def param_name(variable: str) -> str:
    """The DuckDB named parameter for a variable: its Dagster name (`org-id` -> `org_id`,
    `3d` -> `k_3d`), the one sanitiser of names that must be identifiers."""
    return dagster_name(variable)


# Single-quoted literals ('' escapes), double-quoted identifiers, comments, other text.
_SQL_LEX = re.compile(
    r"(?P<lit>'(?:[^']|'')*'?)|(?P<ident>\"(?:[^\"]|\"\")*\"?)"
    r"|(?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))|(?P<code>[^'\"/-]+|[/-])",
    re.DOTALL,
)


class _SqlParams:
    """Collects the variables a SQL text binds, in order of first use."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._by_param: dict[str, str] = {}

    def param(self, token: _Token) -> str:
        if token.reason is not None:
            raise TemplateError(f"malformed template in SQL: {token.reason}")
        if token.scope != "var":
            raise TemplateError(f"{{{{item.{token.name}}}}} cannot be used in SQL")
        param = param_name(token.name)
        known = self._by_param.setdefault(param.lower(), token.name)
        if known != token.name:
            raise TemplateError(f"variables '{known}' and '{token.name}' share parameter ${param}")
        if token.name not in self.names:
            self.names.append(token.name)
        return f"${param}"

    def code(self, text: str) -> str:
        parts, pos = [], 0
        for token in _scan(text):
            parts += [text[pos : token.start], self.param(token)]
            pos = token.end
        return "".join(parts) + text[pos:]

    def literal(self, text: str) -> str:
        body = text[1:-1] if len(text) >= 2 and text.endswith("'") else text[1:]
        tokens = _scan(body)
        if not tokens:
            return text
        if len(tokens) == 1 and tokens[0].start == 0 and tokens[0].end == len(body):
            return self.param(tokens[0])
        # A template inside a longer literal: concatenate text, never splice values.
        pieces, pos = [], 0
        for token in tokens:
            if token.start > pos:
                pieces.append(f"'{body[pos : token.start]}'")
            pieces.append(f"coalesce(CAST({self.param(token)} AS VARCHAR), '')")
            pos = token.end
        if pos < len(body):
            pieces.append(f"'{body[pos:]}'")
        return "(" + " || ".join(pieces) + ")"


def sql_with_params(sql: str) -> tuple[str, list[str]]:
    """Replace each `{{var.X}}` in SQL with the DuckDB named parameter `$X`.

    `'{{var.X}}'` (the template is the whole literal) loses its quotes and becomes `$X`,
    so the value keeps its type; a template inside a longer literal (`'%{{var.q}}%'`)
    becomes a concatenation with the parameter cast to VARCHAR. Templates in comments are
    left alone. Values are never spliced into the text.

    Returns:
        The new SQL and the names of the variables to bind (in order of first use); the
        parameter of variable `n` is `param_name(n)`.

    Raises:
        TemplateError: a malformed template, `{{item.X}}`, or a template inside a
            double-quoted identifier.
    """
    params = _SqlParams()
    out: list[str] = []
    code: list[str] = []  # consecutive code pieces are scanned together
    for match in _SQL_LEX.finditer(sql):
        kind, text = match.lastgroup, match.group()
        if kind == "code":
            code.append(text)
            continue
        out.append(params.code("".join(code)))
        code = []
        if kind == "lit":
            out.append(params.literal(text))
        elif kind == "ident" and "{{" in text:
            raise TemplateError("templates cannot name a column or table (inside double quotes)")
        else:
            out.append(text)
    out.append(params.code("".join(code)))
    return "".join(out), params.names
