"""`workflows run`: execute a workflow's job in the Dagster instance, with progress lines."""

from __future__ import annotations

import datetime as dt
import sys
import uuid

import dagster as dg

from translators.cli_errors import register_service_secrets
from translators.cli_home import cli_instance, ensure_dagster_home
from translators.cli_output import unknown_workflow
from translators.cli_progress import INVOCATION_TAG, claim_and_execute
from translators.run_coordinator import IDEMPOTENCY_TAG
from translators.run_creation import create_run
from translators.variables import VariableError, parse_param_value, resolve_variables

# Kept importable from here (bench/, older scripts): they moved to cli_home.
__all__ = ["cli_instance", "ensure_dagster_home", "parse_params", "run_workflow"]


def parse_params(pairs: list[str]) -> dict[str, object]:
    params: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--param expects K=V, got '{pair}'")
        params[key] = parse_param_value(value)
    return params


def run_workflow(ref: str, param_pairs: list[str], idempotency_key: str | None) -> int:
    params = parse_params(param_pairs)
    home = ensure_dagster_home()
    # Dagster definitions only when a run is asked for, not on `import`.
    from translators.definitions import job_by_name, load_plans, load_plans_of
    from translators.schedules import run_config_for

    loaded = load_plans_of(ref)  # this workflow's file only, when that answers
    workflow = next((w for w in loaded.workflows if f"{w.app_id}/{w.stem}" == ref), None)
    if workflow is None:
        return unknown_workflow(ref, load_plans())  # its message lists every workflow
    try:
        # The same check `resolve_variables` makes in the run, before a run is created.
        resolve_variables(workflow.spec.variables, params, dt.datetime.now(dt.UTC))
    except VariableError as error:
        print(f"{ref}: {error}", file=sys.stderr)
        return 1
    instance = cli_instance(home)
    register_service_secrets(loaded.services)
    tags = {INVOCATION_TAG: uuid.uuid4().hex, "workflow/launched_by": "cli"}
    if idempotency_key:
        tags[IDEMPOTENCY_TAG] = idempotency_key
    run_config = run_config_for(params, None, "UTC")
    # The console logger would repeat every debug event; progress lines replace it.
    run_config["loggers"] = {"console": {"config": {"log_level": "CRITICAL"}}}
    job = job_by_name(workflow.job_name)  # builds this job only
    if job.partitions_def is not None:
        tags.update(_latest_partition_tags(job))
    # The run is created first and claims its idempotency key atomically (as the run
    # queue does); this process then executes it as its run worker.
    run = create_run(instance, workflow.job_name, run_config, tags)
    return claim_and_execute(instance, workflow.job_name, run, tags[INVOCATION_TAG])


def _latest_partition_tags(job: dg.JobDefinition) -> dict[str, str]:
    partitions_def = job.partitions_def
    assert partitions_def is not None
    key = partitions_def.get_last_partition_key()
    return {"dagster/partition": key} if key else {}
