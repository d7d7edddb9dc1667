"""A run's variables (SPEC 5.4): the `resolve_variables` op, and the same values for every
step without an edge from that op into each of them (issue 9: the graph shows data flow).

The launchpad config lives on `resolve_variables`; it validates the params, records the
values as its output and metadata, and runs before the workflow's first steps. Every step
resolves the same values from the same inputs: the run config, the partition, and the
launch time of the *root* run, so a retry, a re-execution from failure or the
continuation of a paused run sees the values of the original run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg

from resources.secrets import redact
from translators.last_value import last_value_specs, pinned_last_values
from translators.loader import WorkflowPlan
from translators.naming import VARIABLES_STEP_NAME
from translators.run_secrets import redacted_failures, register_run_secrets
from translators.spec import ParamVariableSpec, ServiceSpec
from translators.variables import iso_utc, resolve_variables

VARIABLES_OP = VARIABLES_STEP_NAME
_LAUNCH_TIMES: dict[str, dt.datetime] = {}


def variables_op(workflow: WorkflowPlan, catalog: dict[str, ServiceSpec]) -> dg.OpDefinition:
    """The op that holds the launchpad config and records the run's variables."""

    def compute(context, _inputs: Mapping[str, Any]) -> Iterator[Any]:
        register_run_secrets(catalog)
        with redacted_failures():
            resolved = run_variables(context, workflow)
        values = resolved["values"]
        yield dg.Output(
            resolved,
            "result",
            metadata={
                "logical time": resolved["logical_time"],
                "timezone": resolved["timezone"],
                **{
                    f"var {name}": dg.MetadataValue.text(redact(_plain(value)))
                    for name, value in values.items()
                },
            },
        )

    return dg.OpDefinition(
        name=f"{workflow.job_name}__{VARIABLES_OP}",
        compute_fn=compute,
        config_schema=_config_schema(workflow),
        outs={"result": dg.Out(dict)},
        description="Resolves the workflow's variables against the run's logical time.",
    )


def _config_schema(workflow: WorkflowPlan) -> dict[str, dg.Field]:
    """The launchpad's form: each param with its type, default and description; the
    variables computed from the logical time named in its description (issue 9)."""
    variables = workflow.spec.variables
    param_fields = {
        name: _param_field(spec)
        for name, spec in variables.items()
        if isinstance(spec, ParamVariableSpec)
    }
    return {
        "params": dg.Field(
            param_fields, is_required=any(f.is_required for f in param_fields.values())
        ),
        "logical_time": dg.Field(str, is_required=False, description=_logical_time_help(variables)),
        "timezone": dg.Field(str, default_value="UTC", description="zone of dateOffset dates"),
    }


# A param's config type follows its default: the launchpad then checks what is typed.
_CONFIG_TYPES: dict[type, Any] = {bool: dg.Bool, int: dg.Int, float: dg.Float, str: dg.String}


def _param_field(spec: ParamVariableSpec) -> dg.Field:
    if spec.required:
        return dg.Field(dg.Any, is_required=True, description="workflow param (required)")
    if spec.default is None:
        return dg.Field(dg.Any, is_required=False, description="workflow param (optional)")
    config_type = _CONFIG_TYPES.get(type(spec.default), dg.Any)
    if config_type is dg.Any:  # a list or an object: shown, not typed
        return dg.Field(
            dg.Any, is_required=False, description=f"workflow param; default {spec.default!r}"
        )
    return dg.Field(
        config_type, default_value=spec.default, description="workflow param", is_required=False
    )


def _logical_time_help(variables: Mapping[str, Any]) -> str:
    """What the logical time decides, with the values a run launched at load time gets."""
    text = "ISO-8601; default: the partition's start, else the launch time."
    derived = {
        name: spec
        for name, spec in variables.items()
        if not isinstance(spec, ParamVariableSpec) and name not in last_value_specs(variables)
    }
    if not derived:
        return text
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    values = resolve_variables(derived, {}, now, "UTC")
    shown = ", ".join(f"{name} = {_plain(values[name])}" for name in derived)
    return f"{text} It sets {shown} (for a run launched at {iso_utc(now)}, UTC)."


def _plain(value: Any) -> str:
    """A variable's value as a user wrote it: `demo-shop`, not `'demo-shop'`."""
    if isinstance(value, str):
        return value
    import json  # lazy: only metadata needs it

    return json.dumps(value, default=str)


def run_variables(context: Any, workflow: WorkflowPlan) -> dict[str, Any]:
    """{"values", "logical_time", "timezone"} of this run, the same in every step."""
    config = _variables_config(context)
    partition_start = context.partition_time_window.start if context.has_partition_key else None
    root_run_id = context.run.root_run_id or context.run_id
    launched = None
    if config.get("logical_time") is None and partition_start is None:
        launched = _launch_time(context.instance, root_run_id)
    logical_time, timezone = _logical_time(config, partition_start, launched)
    specs, params = workflow.spec.variables, config.get("params") or {}
    values = resolve_variables(specs, params, logical_time, timezone)
    if last_value_specs(specs):  # kept per param set: the params with defaults applied
        given = {n: values[n] for n, s in specs.items() if isinstance(s, ParamVariableSpec)}
        pinned = pinned_last_values(context, workflow.job_name, specs, given)
        values = resolve_variables(specs, params, logical_time, timezone, pinned)
    return {"values": values, "logical_time": iso_utc(logical_time), "timezone": timezone}


def _variables_config(context: Any) -> dict[str, Any]:
    """The `resolve_variables` config as launched (defaults are applied below)."""
    ops = context.run_config.get("ops") or {}
    return dict((ops.get(VARIABLES_OP) or {}).get("config") or {})


def _launch_time(instance: Any, run_id: str) -> dt.datetime:
    """When the run was launched: one query per run and process (steps share it)."""
    if run_id in _LAUNCH_TIMES:
        return _LAUNCH_TIMES[run_id]
    record = instance.get_run_record_by_id(run_id)
    created = record.create_timestamp if record else dt.datetime.now(dt.UTC)
    if len(_LAUNCH_TIMES) > 256:  # a long-lived code server: keep it bounded
        _LAUNCH_TIMES.clear()
    _LAUNCH_TIMES[run_id] = created.astimezone(dt.UTC)
    return _LAUNCH_TIMES[run_id]


def _logical_time(
    config: Mapping[str, Any], partition_start: dt.datetime | None, launched: dt.datetime | None
) -> tuple[dt.datetime, str]:
    """Schedule tick (from config), else partition start, else the root run's launch."""
    timezone = config.get("timezone") or "UTC"
    configured = config.get("logical_time")
    if configured:
        moment = dt.datetime.fromisoformat(configured.replace("Z", "+00:00"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)), timezone
    if partition_start is not None:
        # Backfills take dates in the partitions' (= the schedule's) timezone.
        return partition_start, getattr(partition_start.tzinfo, "key", timezone)
    assert launched is not None
    return launched, timezone
