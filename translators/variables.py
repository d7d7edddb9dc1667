"""Workflow variables resolved once per run against its logical time (SPEC 5.4)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from translators.spec import (
    DateOffsetVariableSpec,
    LastValueVariableSpec,
    NowVariableSpec,
    ParamVariableSpec,
)
from translators.spec.workflow import VariableSpec


class VariableError(ValueError):
    """A launch that does not give the workflow what its variables need."""


def resolve_variables(
    specs: Mapping[str, VariableSpec],
    params: Mapping[str, Any],
    logical_time: dt.datetime,
    timezone: str = "UTC",
    last_values: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Every variable's value for one run.

    Args:
        specs: the workflow's `variables`.
        params: values given at launch (run config, `--param`, schedule `params`).
        logical_time: the tick, partition or launch time (timezone-aware).
        timezone: where `dateOffset` dates are taken (the schedule's zone, else UTC).
        last_values: per `lastValue` variable, `{"value", "run"}` the run starts from
            (translators.last_value); `lookback` applies to a value a run reached, not
            to `initial`. Missing: `initial`.
    """
    unknown = sorted(
        set(params) - {n for n, s in specs.items() if isinstance(s, ParamVariableSpec)}
    )
    if unknown:
        raise VariableError(f"unknown params {unknown}; expected params among {sorted(specs)}")
    local_day = logical_time.astimezone(ZoneInfo(timezone)).date()
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        if isinstance(spec, ParamVariableSpec):
            if name in params:
                values[name] = params[name]
            elif spec.required:
                raise VariableError(f"param '{name}' is required; give it at launch")
            else:
                values[name] = spec.default
        elif isinstance(spec, DateOffsetVariableSpec):
            values[name] = (local_day + dt.timedelta(days=spec.days)).isoformat()
        elif isinstance(spec, NowVariableSpec):
            values[name] = iso_utc(logical_time)
        elif isinstance(spec, LastValueVariableSpec):
            values[name] = _last_value(spec, (last_values or {}).get(name))
    return values


def _last_value(spec: LastValueVariableSpec, used: Mapping[str, Any] | None) -> Any:
    if used is None or used.get("run") is None:
        return spec.initial if used is None else used.get("value")
    from translators.last_value import apply_lookback

    return apply_lookback(used.get("value"), spec.lookback)


def iso_utc(moment: dt.datetime) -> str:
    """`2026-11-25T03:00:00Z`: the form `now` variables and run tags use."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_param_value(text: str) -> Any:
    """A CLI `--param k=v` value: JSON when it parses (`42`, `true`, `[1]`), else the text."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text
