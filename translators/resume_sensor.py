"""The resume sensor (SPEC 5.6): launches the continuation of every paused run whose
wait is due (for a polling wait: its next poll), through the run queue, as a
re-execution from failure.

A `RunRequest` cannot re-execute from failure, so the sensor does what Dagster's run
retry daemon does: it creates the re-executed run itself (translators/pause.py) and
submits it to the instance's run coordinator (the queue; the coordinator claims the
run's idempotency key, which the continuation takes over from its paused parent).
The run's origin is this sensor's own code location, so runs paused by `workflows run`
(which have no code location) are continued too.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.remote_origin import RemoteJobOrigin, RemoteRepositoryOrigin

from translators.pause import continuation_tags, create_continuation, due_paused_runs

RESUME_SENSOR = "workflow_resume_paused_runs"
# How late a continuation may start after its due time, at most (plus the run queue).
INTERVAL_SECONDS = 15


def _origin(context: dg.SensorEvaluationContext, job_name: str) -> RemoteJobOrigin | None:
    location = context.code_location_origin
    if location is None or context.repository_name is None:
        return None
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, context.repository_name), job_name)


def resume_due_runs(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    instance = context.instance
    repository = context.repository_def
    resumed, problems = [], []
    for parent in due_paused_runs(instance):
        if repository is not None and not repository.has_job(parent.job_name):
            problems.append(f"{parent.run_id}: job {parent.job_name} is no longer defined")
            continue
        origin = _origin(context, parent.job_name)
        tags = continuation_tags(parent, now=False) | {"workflow/launched_by": "resume sensor"}
        try:
            run = create_continuation(instance, parent, tags, remote_job_origin=origin)
            if isinstance(run, str):
                continue  # `workflows resume` continued it a moment ago
            instance.submit_run(run.run_id, workspace=None)  # type: ignore[arg-type]
        except Exception as error:  # one broken run must not stop the others
            context.log.exception(f"could not resume paused run {parent.run_id}")
            problems.append(f"{parent.run_id}: {error}")
            continue
        resumed.append(f"{parent.run_id} as {run.run_id}")
    text = "; ".join(
        ([f"resumed {', '.join(resumed)}"] if resumed else [])
        + ([f"could not resume {'; '.join(problems)}"] if problems else [])
    )
    return dg.SkipReason(text or "no paused run is due")


def build_resume_sensor() -> dg.SensorDefinition:
    return dg.SensorDefinition(
        name=RESUME_SENSOR,
        evaluation_fn=resume_due_runs,
        minimum_interval_seconds=INTERVAL_SECONDS,
        description=(
            "Continues runs paused at a long wait (longer than inlineWaitMaxSeconds) when "
            "their wait is due, or at a long polling wait when its next poll is due: a "
            "re-execution from failure through the run queue."
        ),
        # Decision: pausing relies on this sensor; switching it on by hand is forgotten.
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
