"""`workflows state show|reset APP_ID/WORKFLOW`: the lastValue variables of a workflow
(incremental loads, translators/last_value.py) per param set."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from resources.secrets import redact
from translators import last_value
from translators.cli_home import cli_instance, ensure_dagster_home
from translators.cli_output import load_all, unknown_workflow
from translators.spec import ParamVariableSpec


def state(action: str, ref: str, param_args: Sequence[str]) -> int:
    loaded = load_all()
    workflow = next((w for w in loaded.workflows if f"{w.app_id}/{w.stem}" == ref), None)
    if workflow is None:
        return unknown_workflow(ref, loaded)
    specs = last_value.last_value_specs(workflow.spec.variables)
    if not specs:
        print(f"{ref} has no lastValue variables; nothing is kept between its runs")
        return 0 if action == "show" else 1
    instance = cli_instance(ensure_dagster_home())
    if action == "reset":
        return _reset(instance, workflow, param_args)
    return _show(instance, workflow.job_name, specs)


def _reset(instance: Any, workflow: Any, param_args: Sequence[str]) -> int:
    key = None
    if param_args:
        try:
            params = _param_set(workflow.spec.variables, param_args)
        except ValueError as error:
            print(redact(f"cannot pick the param set: {error}"), file=sys.stderr)
            return 1
        key = last_value.params_key(params)
        what = f"params {json.dumps(params, sort_keys=True, default=str)}"
    else:
        what = "every param set"
    last_value.reset(instance, workflow.job_name, key)
    print(
        redact(
            f"reset {workflow.app_id}/{workflow.stem} ({what}): the next run starts "
            "from each lastValue's initial value"
        )
    )
    return 0


def _param_set(variables: Any, param_args: Sequence[str]) -> dict[str, Any]:
    """The param set as a run gets it: the given params, defaults for the others."""
    import datetime as dt

    from translators.variables import parse_param_value, resolve_variables

    given: dict[str, Any] = {}
    for arg in param_args:
        name, sep, text = arg.partition("=")
        if not sep:
            raise ValueError(f"--param '{arg}' is not K=V")
        given[name] = parse_param_value(text)
    params = {n: s for n, s in variables.items() if isinstance(s, ParamVariableSpec)}
    return resolve_variables(params, given, dt.datetime.now(dt.UTC))


def _show(instance: Any, job_name: str, specs: dict[str, Any]) -> int:
    for name, spec in specs.items():
        print(
            f"{name}: lastValue of {spec.from_}, initial {json.dumps(spec.initial)}"
            + (f", lookback {spec.lookback}" if spec.lookback else "")
        )
    sets = last_value.current_values(instance, job_name)
    if not sets:
        print("no successful run yet: the next run of any param set starts from initial")
    for params, run, counted in sets:
        values = {n: json.loads(run.tags.get(last_value.VALUE_PREFIX + n, "null")) for n in specs}
        shown = ", ".join(f"{n} = {json.dumps(v, default=str)}" for n, v in values.items())
        state = f"after run {run.run_id}" if counted else "reset since: next run from initial"
        print(
            redact(f"params {json.dumps(params, sort_keys=True, default=str)}: {shown} ({state})")
        )
    return 0
