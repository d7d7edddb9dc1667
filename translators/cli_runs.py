"""`workflows runs` and `workflows resume` (SPEC 10), and how the CLI creates and executes
its runs: the run exists before it executes, so its idempotency key is claimed
atomically first (translators/run_coordinator.py), exactly as the run queue does."""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from typing import Any

import dagster as dg
from dagster._core.execution.api import create_execution_plan, execute_run
from dagster._core.execution.plan.state import KnownExecutionState
from dagster._core.storage.tags import PARENT_RUN_ID_TAG, RESUME_RETRY_TAG, ROOT_RUN_ID_TAG

from translators.run_coordinator import IDEMPOTENCY_TAG, claim_key, refuse
from translators.run_status import failure_reason, workflow_status
from translators.run_worker import fail_if_worker_lost

RECENT_RUNS = 30
# Dagster tags a resumed run keeps: the partition gives it the parent's logical time.
_KEPT_SYSTEM_TAGS = ("dagster/partition", "dagster/partition_set")


def reconstructable(job_name: str) -> dg.ReconstructableJob:
    return dg.build_reconstructable_job(
        "translators.definitions", "job_by_name", reconstructable_args=(job_name,)
    )


def create_run(
    instance: dg.DagsterInstance,
    job_name: str,
    run_config: dict,
    tags: dict[str, str],
    parent: dg.DagsterRun | None = None,
    remote_job_origin: Any = None,
) -> dg.DagsterRun:
    """A new run of the job, or a re-execution of `parent` from its failure (the steps
    that succeeded are not run again; their tables are reused)."""
    recon = reconstructable(job_name)
    job_def = recon.get_definition()
    lineage: dict[str, object] = {}
    if parent is not None:
        steps, known = KnownExecutionState.build_resume_retry_reexecution(instance, parent)
        root = parent.root_run_id or parent.run_id
        lineage = {
            "execution_plan": create_execution_plan(
                recon, run_config, step_keys_to_execute=steps, known_state=known, tags=parent.tags
            ),
            "root_run_id": root,
            "parent_run_id": parent.run_id,
        }
        tags = {**tags, PARENT_RUN_ID_TAG: parent.run_id, ROOT_RUN_ID_TAG: root}
    return instance.create_run_for_job(
        job_def=job_def,
        run_config=run_config,
        tags={**job_def.run_tags, **tags},
        job_code_origin=recon.get_python_origin(),
        # Set for a run the queue launches (the resume sensor's continuations).
        remote_job_origin=remote_job_origin,
        **lineage,  # type: ignore[arg-type]
    )


def claim_or_refuse(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """Claims the run's idempotency key; the refusal message when another run holds it
    (the refused run is then CANCELED)."""
    key = run.tags.get(IDEMPOTENCY_TAG)
    holder = claim_key(instance, key, run.run_id) if key else None
    return refuse(instance, run, key, holder) if key and holder else None


def execute(instance: dg.DagsterInstance, job_name: str, run: dg.DagsterRun) -> bool:
    """Executes the run in this process (this process is its run worker)."""
    return execute_run(reconstructable(job_name), run, instance, raise_on_error=False).success


def list_runs(ref: str | None) -> int:
    from translators.cli_run import ensure_dagster_home

    job_name = _job_name(ref) if ref else None
    if ref and job_name is None:
        return 1
    ensure_dagster_home()
    instance = dg.DagsterInstance.get()
    filters = dg.RunsFilter(job_name=job_name) if job_name else None
    runs = instance.get_runs(filters=filters, limit=RECENT_RUNS)
    lines = [f"{'STATUS':<10} {'RUN ID':<36} {'JOB':<36} {'LOGICAL TIME':<25} REASON"]
    for run in runs:
        if fail_if_worker_lost(instance, run):
            run = instance.get_run_by_id(run.run_id) or run
        when = _logical_time(instance, run)
        lines.append(
            f"{workflow_status(run):<10} {run.run_id:<36} {run.job_name:<36} {when:<25} "
            f"{failure_reason(instance, run)}".rstrip()
        )
    print("\n".join(lines) if runs else "no runs yet")
    return 0


def resume(run_id: str, now: bool) -> int:
    """Re-executes a FAILED run from failure; a run whose worker died is marked FAILED
    first. (`--now` is for PAUSED runs, which a later change adds.)"""
    from translators.cli_run import INVOCATION_TAG, claim_and_execute, ensure_dagster_home

    ensure_dagster_home()
    instance = dg.DagsterInstance.get()
    parent = instance.get_run_by_id(run_id)
    if parent is None:
        print(f"unknown run '{run_id}'; `workflows runs` lists the recent ones", file=sys.stderr)
        return 1
    if fail_if_worker_lost(instance, parent):
        parent = instance.get_run_by_id(run_id) or parent
        print(f"run {run_id}: {failure_reason(instance, parent)}; marked FAILED")
    status = workflow_status(parent)
    if status == "PAUSED":
        from translators.cli_pause import resume_paused

        return resume_paused(instance, parent, now)
    if status != "FAILED":
        print(f"run {run_id} is {status}; only a FAILED run can be resumed", file=sys.stderr)
        return 1
    tags = {
        key: value
        for key, value in parent.tags.items()
        if not key.startswith("dagster/") or key in _KEPT_SYSTEM_TAGS
    }
    tags |= {INVOCATION_TAG: uuid.uuid4().hex, RESUME_RETRY_TAG: "true"}
    tags["workflow/launched_by"] = "cli"
    run = create_run(instance, parent.job_name, dict(parent.run_config), tags, parent=parent)
    announce = f"resuming run {run_id} from failure as run {run.run_id}"
    return claim_and_execute(instance, parent.job_name, run, tags[INVOCATION_TAG], announce)


def _job_name(ref: str) -> str | None:
    from translators.cli import _unknown_workflow
    from translators.definitions import load_plans

    loaded = load_plans()
    workflow = next((w for w in loaded.workflows if f"{w.app_id}/{w.stem}" == ref), None)
    if workflow is None:
        _unknown_workflow(ref, loaded)
        return None
    return workflow.job_name


def _logical_time(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """The run's logical time as its config gives it (schedule ticks), else its partition,
    else when it was created."""
    ops: Any = dict(run.run_config).get("ops") or {}
    configured = ((ops.get("resolve_variables") or {}).get("config") or {}).get("logical_time")
    if configured:
        return str(configured)
    if run.tags.get("dagster/partition"):
        return run.tags["dagster/partition"]
    record = instance.get_run_record_by_id(run.run_id)
    created = record.create_timestamp if record else None
    return created.astimezone(dt.UTC).isoformat(timespec="seconds") if created else ""
