"""The cross-step pass over one workflow: names, the DAG, SQL, and each step's checks.

Order of work (SPEC 3, 4): name every step; register the tables they produce; collect
every reference (tables read by SQL, forEach.source, sourceTable, dependsOn) and
resolve it against ALL steps, so that a reference to a later step can be told apart
from an unknown name (and a cycle shown as one); then, in step order, check each step
and settle its output schema, binding SQL against the schemas of earlier steps.

Steps that failed model validation keep a slot (their names and tables count, so other
steps do not get follow-on errors) but are not checked themselves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from translators.check_context import CheckContext, Ref, Slot, SqlText, canonical_schema
from translators.errors import join_pointer, one_of
from translators.last_value import check_last_values
from translators.naming import NameSource, step_names
from translators.plans import StepPlan
from translators.spec import BaseStepSpec, VariableSpec
from translators.spec.steps import step_kind_of
from translators.sql_analysis import (
    SELECT_EXPECTED,
    SqlBindError,
    referenced_tables,
    statement_kind_problem,
)
from translators.step_checks import check_templates
from translators.steps.kind import SqlRead, StepKind
from translators.steps.registry import STEP_KINDS, kind_of
from translators.templates import TemplateError, find_malformed, find_refs, sql_with_params

VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class _Registry:
    """Who defines each name; the first definer wins."""

    steps: dict[str, int] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)
    tables_folded: dict[str, int] = field(default_factory=dict)  # SQL ignores case


def check_workflow(
    ctx: CheckContext, raw_steps: Sequence[Any], specs: Sequence[BaseStepSpec | None]
) -> list[StepPlan]:
    """Check every step of a workflow; the plans of the steps that parsed."""
    slots = [Slot(i, raw, spec) for i, (raw, spec) in enumerate(zip(raw_steps, specs, strict=True))]
    _name_steps(ctx, slots)
    registry = _register(ctx, slots)
    for slot in slots:
        _collect_refs(ctx, slot)
    _resolve(ctx, slots, registry)
    _add_wait_edges(slots)
    for slot in slots:
        if slot.spec is not None:
            _check_step(ctx, slot, slots)
            _settle_schema(ctx, slot, slots)
    check_last_values(ctx, slots)
    return [_plan(slot, slots) for slot in slots if slot.spec is not None]


def _check_step(ctx: CheckContext, slot: Slot, slots: Sequence[Slot]) -> None:
    """Every check of one step that needs no SQL binding: templates, then the kind's own."""
    kind = kind_of(slot.spec)
    check_templates(ctx, slot, slots, kind)
    if kind.check is not None:
        kind.check(ctx, slot, slot.spec, slots)


def check_variables(ctx: CheckContext, names: Sequence[str]) -> None:
    """Variable names are plain identifiers, distinct ignoring case (they become DuckDB
    parameters, whose names ignore case)."""
    seen: dict[str, str] = {}
    for name in names:
        pointer = join_pointer("/variables", name)
        if not VARIABLE_NAME.match(name):
            ctx.report(
                pointer,
                f"variable name '{name}' cannot be used in a template",
                "letters, digits and _ (not starting with a digit)",
            )
        elif name.lower() in seen:
            ctx.report(
                pointer,
                f"variable '{name}' differs from '{seen[name.lower()]}' only in case",
                "variable names that differ in more than case",
            )
        seen.setdefault(name.lower(), name)


# ---------------------------------------------------------------------------- names, tables


def _name_source(slot: Slot) -> NameSource:
    spec, raw = slot.spec, slot.raw if isinstance(slot.raw, dict) else {}
    table = _produced_table(slot)
    if spec is not None:
        step_id, stem = spec.id, spec.default_name_stem
    else:
        step_id = raw.get("id") if isinstance(raw.get("id"), str) else None
        stem = step_kind_of(raw) or "step"
    if step_id is not None:
        return NameSource(step_id, slot.at("id"), stem, slot.pointer)
    return NameSource(table[0] if table else None, table[1] if table else "", stem, slot.pointer)


def _produced_table(slot: Slot) -> tuple[str, str] | None:
    """(table, pointer of its declaration) of the table a step produces. A step that
    failed validation is read from its raw JSON, any kind's nested block included."""
    spec, raw = slot.spec, slot.raw if isinstance(slot.raw, dict) else {}
    kinds = [kind_of(spec)] if spec is not None else STEP_KINDS
    if spec is not None and not kinds[0].produces_table:
        return None
    outer = raw.get("outputTable")
    if isinstance(outer, str) and outer:
        return outer, slot.at("outputTable")
    for block in (kind.nested_output for kind in kinds if kind.nested_output):
        inner = raw.get(block)
        if isinstance(inner, dict) and isinstance(inner.get("outputTable"), str):
            return inner["outputTable"], slot.at(block, "outputTable")
    return None


def _name_steps(ctx: CheckContext, slots: Sequence[Slot]) -> None:
    names, clashes = step_names([_name_source(slot) for slot in slots])
    for slot, name in zip(slots, names, strict=True):
        slot.name = name
    for clash in clashes:
        ctx.report(clash.pointer, clash.message, clash.expected)


def _register(ctx: CheckContext, slots: Sequence[Slot]) -> _Registry:
    registry = _Registry()
    for slot in slots:
        registry.steps.setdefault(slot.name, slot.index)
        if slot.spec is not None and slot.spec.id:
            registry.steps.setdefault(slot.spec.id, slot.index)
        produced = _produced_table(slot)
        if produced is None:
            continue
        slot.table, slot.table_pointer = produced
        first = registry.tables_folded.get(slot.table.lower())
        if first is not None:
            other = slots[first].table
            same = "" if other == slot.table else f" (as '{other}'; SQL ignores case)"
            ctx.report(
                slot.table_pointer,
                f"table '{slot.table}' is already produced by the step at /steps/{first}{same}",
                "a unique outputTable",
            )
        registry.tables.setdefault(slot.table, slot.index)
        registry.tables_folded.setdefault(slot.table.lower(), slot.index)
    return registry


# ---------------------------------------------------------------------------- references


def _collect_refs(ctx: CheckContext, slot: Slot) -> None:
    """What the step reads, as its kind says: queries (parsed for their tables) and
    tables by name; then its dependsOn."""
    spec = slot.spec
    for read in kind_of(spec).reads(spec) if spec is not None else ():
        if isinstance(read, SqlRead):
            _parse_sql(ctx, slot, read.text, *read.at)
        else:
            slot.refs.append(Ref(read.name, slot.at(*read.at), read.role))
    for index, name in enumerate(spec.depends_on if spec else []):
        slot.refs.append(Ref(name, slot.at("dependsOn", index), "dependsOn"))


def _parse_sql(ctx: CheckContext, slot: Slot, text: str, *tokens: str) -> None:
    """Templates -> parameters, exactly one SELECT, and the tables it reads."""
    pointer = slot.at(*tokens)
    slot.unresolved = True
    try:
        sql, params = sql_with_params(text)
    except TemplateError as exc:
        # Malformed templates and {{item.X}} are reported by the template check.
        if not find_malformed(text) and all(r.scope == "var" for r in find_refs(text)):
            ctx.report(pointer, str(exc), "{{var.NAME}} where SQL takes a value")
        return
    problem = statement_kind_problem(sql)
    if problem is not None:
        ctx.report(pointer, problem, SELECT_EXPECTED)
        return
    try:
        tables = referenced_tables(sql)
    except ValueError as exc:
        ctx.report(pointer, str(exc), "a query the SQL parser (sqlglot, duckdb dialect) reads")
        return
    slot.unresolved = False
    slot.sql.append(SqlText(pointer, sql, params, tables))
    slot.refs += [Ref(table, pointer, "sql") for table in sorted(tables)]


def _lookup(ref: Ref, registry: _Registry) -> int | None:
    if ref.role == "dependsOn" and ref.name in registry.steps:
        return registry.steps[ref.name]
    if ref.role == "sql":
        return registry.tables_folded.get(ref.name.lower())
    return registry.tables.get(ref.name)


def _resolve(ctx: CheckContext, slots: Sequence[Slot], registry: _Registry) -> None:
    for slot in slots:
        for ref in slot.refs:
            ref.target = _lookup(ref, registry)
    edges = {s.index: {r.target for r in s.refs if r.target is not None} for s in slots}
    for slot in slots:
        for ref in slot.refs:
            if ref.target is None:
                _report_unknown(ctx, slot, ref, slots, registry)
            elif ref.target >= slot.index:
                _report_not_earlier(ctx, slot, ref, slots, edges)
                ref.target = None
            elif ref.target not in slot.upstream:
                slot.upstream.append(ref.target)
            if ref.target is None and ref.reads:
                slot.unresolved = True


def _report_unknown(
    ctx: CheckContext, slot: Slot, ref: Ref, slots: Sequence[Slot], registry: _Registry
) -> None:
    earlier = slots[: slot.index]
    candidates = [s.table for s in earlier if s.table]
    what = "table"
    if not ref.reads:
        candidates += [s.name for s in earlier]
        what = "step or table"
    message = f"unknown {what} '{ref.name}'"
    step = registry.steps.get(ref.name)
    if ref.reads and step is not None and slots[step].table:
        message += f": that is a step; the table it produces is '{slots[step].table}'"
    if candidates:
        expected = f"a {what} of an earlier step, {one_of(candidates, ref.name)}"
    else:
        expected = f"a {what} of an earlier step (there is none before this one)"
    ctx.report(ref.pointer, message, expected)


def _report_not_earlier(
    ctx: CheckContext, slot: Slot, ref: Ref, slots: Sequence[Slot], edges: Mapping[int, set[int]]
) -> None:
    assert ref.target is not None
    target = slots[ref.target]
    if ref.target == slot.index:
        ctx.report(ref.pointer, f"the step refers to itself ('{ref.name}')", _EARLIER)
        return
    cycle = _path(edges, ref.target, slot.index)
    message = f"'{ref.name}' is defined later, by the step at {target.pointer}"
    if cycle:
        names = " -> ".join(slots[i].name for i in [slot.index, *cycle])
        message += f", which depends on this step: a cycle ({names})"
        ctx.report(ref.pointer, message, "dependencies that only point to earlier steps")
    else:
        ctx.report(ref.pointer, message, f"{_EARLIER}; move this step after {target.pointer}")


_EARLIER = "a table or step defined by an earlier step"


def _path(edges: Mapping[int, set[int]], start: int, goal: int) -> list[int]:
    """A dependency path start -> ... -> goal (inclusive), or [] when there is none."""
    stack, seen = [[start]], {start}
    while stack:
        path = stack.pop()
        if path[-1] == goal:
            return path
        for nxt in sorted(edges.get(path[-1], ())):
            if nxt not in seen:
                seen.add(nxt)
                stack.append([*path, nxt])
    return []


def _add_wait_edges(slots: Sequence[Slot]) -> None:
    """SPEC 3.6: a wait step depends on every earlier step; every later step on it."""
    waits: list[int] = []
    for slot in slots:
        is_wait = slot.spec is not None and kind_of(slot.spec).barrier
        extra = range(slot.index) if is_wait else waits
        slot.upstream += [i for i in extra if i not in slot.upstream]
        if is_wait:
            waits.append(slot.index)


# ---------------------------------------------------------------------------- schemas, plans


def _declared(slot: Slot, kind: StepKind) -> tuple[dict[str, str] | None, str]:
    spec = slot.spec
    assert spec is not None
    if kind.nested_output and spec.output_schema is None:
        inner = getattr(spec, _attribute(spec, kind.nested_output)).output_schema
        return inner, slot.at(kind.nested_output, "outputSchema")
    return spec.output_schema, slot.at("outputSchema")


def _attribute(spec: BaseStepSpec, alias: str) -> str:
    """The model attribute of a JSON key (`importFromDatabase` -> import_from_database)."""
    fields = type(spec).model_fields
    return next(name for name, info in fields.items() if (info.alias or name) == alias)


def _settle_schema(ctx: CheckContext, slot: Slot, slots: Sequence[Slot]) -> None:
    """The step's output schema: declared, the kind's fixed one, or inferred from SQL."""
    kind = kind_of(slot.spec)
    declared, pointer = _declared(slot, kind)
    if declared is not None:
        slot.schema = dict(declared)
        slot.bind_schema = canonical_schema(ctx, declared, pointer)
    if kind.fixed_schema is not None:
        slot.schema = dict(kind.fixed_schema)
        slot.bind_schema = dict(kind.fixed_schema)
    for text in slot.sql:
        inferred = _bind(ctx, slot, text, slots)
        if not kind.infers_schema or inferred is None:
            continue
        if declared is None:
            slot.schema = slot.bind_schema = inferred
        else:
            _compare(ctx, pointer, declared, inferred)
    if slot.table is None:
        slot.schema = slot.bind_schema = None


def _bind(
    ctx: CheckContext, slot: Slot, text: SqlText, slots: Sequence[Slot]
) -> dict[str, str] | None:
    """Bind a query against its inputs' schemas; None when an input is unknown."""
    if slot.unresolved:
        return None
    inputs: dict[str, dict[str, str]] = {}
    for ref in slot.refs:
        if ref.role != "sql" or ref.target is None:
            continue
        upstream = slots[ref.target]
        if upstream.bind_schema is None or upstream.table is None:
            return None  # unknown (e.g. an import without outputSchema): tables only
        inputs[upstream.table] = upstream.bind_schema
    try:
        return ctx.binder.bind(text.sql, text.params, inputs)
    except SqlBindError as exc:
        ctx.report(text.pointer, f"the query does not bind: {exc}", _visible(inputs))
        return None


def _visible(inputs: Mapping[str, Mapping[str, str]]) -> str:
    if not inputs:
        return "tables of earlier steps only (this query reads none)"
    shown = "; ".join(f"{table}({', '.join(schema)})" for table, schema in inputs.items())
    return f"tables and columns of earlier steps: {shown}"


def _compare(
    ctx: CheckContext, pointer: str, declared: Mapping[str, str], inferred: Mapping[str, str]
) -> None:
    returned = {column.lower() for column in inferred}
    for column in declared:
        if column.lower() not in returned:
            ctx.report(
                join_pointer(pointer, column),
                f"the query returns no column '{column}'",
                one_of(inferred, column),
            )


def _plan(slot: Slot, slots: Sequence[Slot]) -> StepPlan:
    assert slot.spec is not None
    reads: dict[str, str] = {}
    for ref in slot.refs:
        upstream = slots[ref.target] if ref.target is not None else None
        if ref.reads and upstream is not None and upstream.table:
            reads.setdefault(upstream.table, upstream.name)
    return StepPlan(
        name=slot.name,
        index=slot.index,
        pointer=slot.pointer,
        spec=slot.spec,
        kind=slot.spec.kind,
        depends_on=tuple(slots[i].name for i in sorted(set(slot.upstream))),
        reads=reads,
        output_table=slot.table,
        output_schema=slot.schema,
    )


def variables_of(raw: Any, parsed: Mapping[str, VariableSpec] | None) -> dict[str, Any]:
    """Declared variable names -> specs (None for a variable that failed validation)."""
    if parsed is not None:
        return dict(parsed)
    names = raw.get("variables") if isinstance(raw, dict) else None
    return dict.fromkeys(names, None) if isinstance(names, dict) else {}
