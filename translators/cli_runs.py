"""`workflows runs` and `workflows resume` (SPEC 10). A resumed run is created first
(translators/run_creation.py), then claims its idempotency key and runs in this process
(translators/cli_progress.py), as `workflows run` does."""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from typing import Any

import dagster as dg
from dagster._core.storage.tags import RESUME_RETRY_TAG

from translators.cli_home import ensure_dagster_home
from translators.cli_output import unknown_workflow
from translators.cli_pause import resume_paused
from translators.cli_progress import INVOCATION_TAG, claim_and_execute
from translators.run_creation import create_run, reconstructable
from translators.run_status import failure_reason, workflow_status
from translators.run_worker import fail_if_worker_lost

RECENT_RUNS = 30
# Dagster tags a resumed run keeps: the partition gives it the parent's logical time.
_KEPT_SYSTEM_TAGS = ("dagster/partition", "dagster/partition_set")
# `reconstructable` kept importable from here (bench/p4_load.py).
__all__ = ["list_runs", "reconstructable", "resume"]


def list_runs(ref: str | None) -> int:
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
    from translators.definitions import load_plans  # Dagster definitions only when asked

    loaded = load_plans()
    workflow = next((w for w in loaded.workflows if f"{w.app_id}/{w.stem}" == ref), None)
    if workflow is None:
        unknown_workflow(ref, loaded)
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
