"""Run statuses in the terms of SPEC 5.6, and the reason a run failed."""

from __future__ import annotations

import dagster as dg

from translators.pause import is_continuation, is_paused, pause_reason

_STATUSES = {
    dg.DagsterRunStatus.QUEUED: "PENDING",
    dg.DagsterRunStatus.NOT_STARTED: "PENDING",
    dg.DagsterRunStatus.MANAGED: "PENDING",
    dg.DagsterRunStatus.STARTING: "RUNNING",
    dg.DagsterRunStatus.STARTED: "RUNNING",
    dg.DagsterRunStatus.CANCELING: "RUNNING",
    dg.DagsterRunStatus.SUCCESS: "COMPLETED",
    dg.DagsterRunStatus.FAILURE: "FAILED",
    dg.DagsterRunStatus.CANCELED: "CANCELLED",
}
# Statuses during which a run holds its idempotency key (SPEC 5.5: queued, running or
# paused). A PAUSED run holds it until its continuation has finished, which needs the
# instance: see `translators.pause.paused_run_holds`.
HOLDS_KEY = {"PENDING", "RUNNING", "RESUMING"}
_OUTSIDE_FAILURE = "This run has been marked as failed from outside the execution context."


def workflow_status(run: dg.DagsterRun) -> str:
    """PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, PAUSED or RESUMING (SPEC 5.6).

    A run that stopped at a long wait is a Dagster failure with a tag saying until when
    (PAUSED); its continuation is RESUMING while it is queued or running.
    """
    status = _STATUSES.get(run.status, run.status.value)
    if is_paused(run):
        return "PAUSED"
    if status in ("PENDING", "RUNNING") and is_continuation(run):
        return "RESUMING"
    return status


def holds_key(run: dg.DagsterRun) -> bool:
    return workflow_status(run) in HOLDS_KEY


def failure_reason(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """Why a FAILED run failed: "worker lost: ..." when its worker died, else the message
    of the failing step or of the run failure."""
    if is_paused(run):
        return pause_reason(run)
    if run.status != dg.DagsterRunStatus.FAILURE:
        return ""
    failed = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    message = (failed[-1].message or "").strip() if failed else ""
    if message and message != _OUTSIDE_FAILURE and "worker lost" in message:
        return message[message.index("worker lost") :].split("'")[0].strip()
    for entry in reversed(instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)):
        text = entry.message or ""
        # The code server's own notice that the run's process died under it.
        if "unexpectedly exited" in text or "was terminated by signal" in text:
            return f"worker lost: {text.strip().split('. ')[0].rstrip('.')}"
    steps = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    if steps and steps[-1].dagster_event is not None:
        error = steps[-1].dagster_event.step_failure_data.error
        first = (error.message if error else "").strip().splitlines()
        return f"{steps[-1].step_key}: {first[0] if first else 'failed'}"
    return message.splitlines()[0] if message else "failed"
