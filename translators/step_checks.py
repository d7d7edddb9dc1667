"""Checks of one step against the catalog, the variables and its upstream tables.

Runs after the DAG is known (`checks.py`), so the schemas of the tables a step reads are
known whenever they can be: declared, inferred from SQL, or None when unknown.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from translators.check_context import CheckContext, Slot
from translators.errors import join_pointer, one_of
from translators.naming import APP_ID_EXPECTED, APP_ID_PATTERN
from translators.spec import (
    ImportFromDatabaseStepSpec,
    PersistToDatabaseStepSpec,
    ServiceCallStepSpec,
    ServiceSpec,
    WaitStepSpec,
)
from translators.templates import (
    EXPECTED_FORM,
    TemplateRef,
    find_malformed,
    find_refs,
    single_ref,
)

if TYPE_CHECKING:
    from translators.steps.kind import StepKind

FIELD_MAPPING_EXPECTED = 'a dot path, exactly one {{item.X}}, or {"generate": "cuid"|"uuid"|"now"}'


def _site(pointer: str, sites: Sequence[str]) -> str | None:
    return next((s for s in sites if pointer == s or pointer.startswith(s + "/")), None)


def _columns(slots: Sequence[Slot], index: int | None) -> dict[str, str] | None:
    """The known schema of the step at `index`, else None."""
    return slots[index].schema if index is not None else None


def check_templates(ctx: CheckContext, slot: Slot, slots: Sequence[Slot], kind: StepKind) -> None:
    """Malformed templates, templates where nothing renders them (the kind says where
    they do), unknown variables, and `{{item.X}}` outside forEach or naming a column the
    source lacks."""
    sites = kind.template_sites
    for bad in find_malformed(slot.raw):
        ctx.report(
            slot.pointer + bad.pointer,
            f"malformed template '{bad.text}': {bad.reason}",
            EXPECTED_FORM,
        )
    for ref in find_refs(slot.raw):
        pointer = slot.pointer + ref.pointer
        site = _site(ref.pointer, sites)
        if site is None:
            ctx.report(
                pointer,
                "templates are not rendered in this field",
                f"templates only in {', '.join(s.lstrip('/') for s in sites)}",
            )
        elif ref.scope == "var":
            _check_var(ctx, ref, pointer)
        else:
            _check_item(ctx, slot, ref, pointer, site, slots, kind)


def _check_var(ctx: CheckContext, ref: TemplateRef, pointer: str) -> None:
    if ref.name not in ctx.variables:
        ctx.report(
            pointer,
            f"unknown variable '{ref.name}'",
            f"a variable declared in `variables`, {one_of(ctx.variables, ref.name)}",
        )


def _check_item(
    ctx: CheckContext,
    slot: Slot,
    ref: TemplateRef,
    pointer: str,
    site: str,
    slots: Sequence[Slot],
    kind: StepKind,
) -> None:
    text = f"{{{{item.{ref.name}}}}}"
    if site in kind.sql_sites:
        ctx.report(pointer, f"{text} cannot be used in SQL", "{{var.NAME}}")
        return
    items = next((r for r in slot.refs if r.role == kind.item_role), None)
    if items is None or site not in kind.item_sites:
        ctx.report(
            pointer,
            f"{text} is only available inside a forEach step",
            "{{var.NAME}} here, or {{item.X}} in the params, preExecute.params, fieldMapping "
            "or runAsUser of a serviceCall with forEach",
        )
        return
    columns = _columns(slots, items.target)
    if columns is not None and ref.name not in columns:
        ctx.report(
            pointer,
            f"the {items.role} source '{items.name}' has no column '{ref.name}'",
            one_of(columns, ref.name),
        )


def check_service_call(
    ctx: CheckContext, slot: Slot, spec: ServiceCallStepSpec, slots: Sequence[Slot]
) -> None:
    service = check_operation(ctx, slot.pointer, spec.service, spec.operation, spec.params)
    if spec.pre_execute is not None:
        pre = spec.pre_execute
        check_operation(ctx, slot.at("preExecute"), pre.service, pre.operation, pre.params)
    for_each = spec.for_each
    if for_each is not None:
        if for_each.run_as_user is not None and service and not service.user_tokens_env:
            ctx.report(
                slot.at("forEach", "runAsUser"),
                f"service '{service.name}' has no userTokensEnv, so runAsUser has no user tokens",
                f"userTokensEnv in services/{service.name}.json, or no runAsUser",
            )
        columns = _columns(slots, slot.target_of("forEach"))
        key = for_each.item_key
        if key is not None and columns is not None and key not in columns:
            ctx.report(
                slot.at("forEach", "itemKey"),
                f"the forEach source '{for_each.source}' has no column '{key}'",
                one_of(columns, key),
            )
    _check_service_mapping(ctx, slot, spec)


def _check_service_mapping(ctx: CheckContext, slot: Slot, spec: ServiceCallStepSpec) -> None:
    for column, source in (spec.field_mapping or {}).items():
        pointer = slot.at("fieldMapping", column)
        if isinstance(source, str) and "{{" in source:
            ref = single_ref(source)
            if ref is None or ref.scope != "item":
                ctx.report(
                    pointer, f"invalid fieldMapping value {source!r}", FIELD_MAPPING_EXPECTED
                )
            elif spec.pre_execute is not None and spec.for_each is None:
                # Records found by preExecute belong to no item, so nothing fills this column
                # (under forEach it runs per item and its records are that item's).
                ctx.report(
                    pointer,
                    f"{source} cannot be filled for the records preExecute returns",
                    "a dot path or a generator in fieldMapping of a step with preExecute "
                    "and no forEach",
                )
        if spec.output_schema and column not in spec.output_schema:
            ctx.report(
                pointer,
                f"column '{column}' is not in outputSchema, so this mapping is unused",
                one_of(spec.output_schema, column),
            )


def check_operation(
    ctx: CheckContext, base: str, service_name: str, operation: str, params: Mapping[str, Any]
) -> ServiceSpec | None:
    """The service and operation exist, and params fill the path's placeholders."""
    service = ctx.services.get(service_name)
    if service is None:
        if service_name in ctx.broken_services:
            where = ctx.broken_services[service_name]
            ctx.report(
                join_pointer(base, "service"),
                f"service '{service_name}' ({where}) has problems of its own",
                f"a valid {where}",
            )
        else:
            ctx.report(
                join_pointer(base, "service"),
                f"unknown service '{service_name}'",
                f"a service of the catalog, {one_of(ctx.services, service_name)}",
            )
        return None
    op = service.operations.get(operation)
    if op is None:
        ctx.report(
            join_pointer(base, "operation"),
            f"service '{service_name}' has no operation '{operation}'",
            one_of(service.operations, operation),
        )
        return service
    for placeholder in re.findall(r"\{([^{}/]+)\}", op.path):
        if placeholder not in params:
            ctx.report(
                join_pointer(base, "params"),
                f"no param '{placeholder}' for the path placeholder of {service_name}."
                f"{operation} ({op.path})",
                f"params.{placeholder}",
            )
    return service


def check_app_id(ctx: CheckContext, value: str, pointer: str) -> None:
    """A literal appId must be a valid app id of a database the workflow reaches (SPEC 8);
    a template is checked as a template, and its value before the step runs."""
    if "{{" in value:
        return
    if not APP_ID_PATTERN.match(value):
        ctx.report(pointer, f"invalid appId {value!r}", APP_ID_EXPECTED)
    elif ctx.app_access is not None and (refused := ctx.app_access.refusal(value)):
        ctx.report(pointer, *refused)


def check_persist(
    ctx: CheckContext, slot: Slot, spec: PersistToDatabaseStepSpec, slots: Sequence[Slot]
) -> None:
    target = spec.persist_to_database
    check_app_id(ctx, target.app_id, slot.at("persistToDatabase", "appId"))
    columns = _columns(slots, slot.target_of("sourceTable"))
    for column, source in target.field_mapping.items():
        if not isinstance(source, str) or "{{" in source or columns is None:
            continue
        if source not in columns:
            ctx.report(
                slot.at("persistToDatabase", "fieldMapping", column),
                f"table '{target.source_table}' has no column '{source}'",
                one_of(columns, source),
            )
    mapped = list(target.field_mapping)
    keys = [("upsertKey", k, i) for i, k in enumerate(target.upsert_key or [])]
    if target.replace_where is not None:
        keys += [
            ("replaceWhere/matchColumns", k, i)
            for i, k in enumerate(target.replace_where.match_columns)
        ]
    for where, key, index in keys:
        if key not in mapped:
            ctx.report(
                slot.at("persistToDatabase", *where.split("/"), index),
                f"{where.split('/')[-1]} column '{key}' is not a target column of fieldMapping",
                one_of(mapped, key),
            )


def check_import(ctx: CheckContext, slot: Slot, spec: ImportFromDatabaseStepSpec) -> None:
    source = spec.import_from_database
    check_app_id(ctx, source.app_id, slot.at("importFromDatabase", "appId"))
    if source.columns is None:
        return
    for column, value in (source.field_mapping or {}).items():
        if isinstance(value, str) and "{{" not in value and value not in source.columns:
            ctx.report(
                slot.at("importFromDatabase", "fieldMapping", column),
                f"column '{value}' is not among the imported columns",
                one_of(source.columns, value),
            )


def check_wait(ctx: CheckContext, slot: Slot, spec: WaitStepSpec) -> None:
    until = spec.wait.until
    if until is None or "{{" in until:
        return
    try:
        dt.datetime.fromisoformat(until.replace("Z", "+00:00"))
    except ValueError:
        ctx.report(
            slot.at("wait", "until"),
            f"invalid time {until!r}",
            "ISO-8601, e.g. 2026-01-31T08:00:00Z (no offset means UTC)",
        )
