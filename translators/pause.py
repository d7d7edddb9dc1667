"""Long waits (SPEC 5.6): a run that stops at a wait longer than `inlineWaitMaxSeconds`,
and its continuation.

Dagster has no PAUSED status, so a pause is a failed run with tags. The wait op records
until when (`workflow/paused_until`), at which step, and `dagster/max_retries=0` (run
retries must not relaunch it at once), then fails with a "paused until ..." message: the
steps after it are not run and no process stays behind. The continuation is a
re-execution of that run from failure (finished steps' tables are reused); its wait op
finds the recorded due time on its parent and passes at once when it is due. The resume
sensor (translators/resume_sensor.py) or `workflows resume` creates it.

A paused run shows as PAUSED and holds its idempotency key and `skipIfRunning` until
its continuation has finished (SPEC 5.5: "queued, running or paused"); the continuation
shows as RESUMING while it is queued or running and takes the key over from its parent.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NoReturn

import dagster as dg
from dagster._core.storage.tags import MAX_RETRIES_TAG

from translators.run_creation import create_run

PAUSE_TAG = "workflow/pause"  # "paused", then "resumed" once a continuation exists
PAUSED_UNTIL_TAG = "workflow/paused_until"  # ISO-8601 UTC
PAUSED_STEP_TAG = "workflow/paused_step"
RESUMED_AS_TAG = "workflow/resumed_as"  # on the paused run: its continuation
RESUME_OF_TAG = "workflow/resume_of"  # on the continuation: the paused run
RESUME_NOW_TAG = "workflow/resume_now"  # `workflows resume --now`: skip the rest
# A polling wait (wait.poll): when it gives up, kept over its continuations.
POLL_DEADLINE_TAG = "workflow/poll_deadline"  # ISO-8601 UTC
PAUSE_TAGS = (PAUSE_TAG, PAUSED_UNTIL_TAG, PAUSED_STEP_TAG, RESUMED_AS_TAG, POLL_DEADLINE_TAG)
PAUSED_PREFIX = "paused until"
_ACTIVE = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.MANAGED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def is_paused(run: dg.DagsterRun) -> bool:
    return run.status == dg.DagsterRunStatus.FAILURE and PAUSED_UNTIL_TAG in run.tags


def is_resumed(run: dg.DagsterRun) -> bool:
    return run.tags.get(PAUSE_TAG) == "resumed"


def is_continuation(run: dg.DagsterRun) -> bool:
    return RESUME_OF_TAG in run.tags


def paused_until(run: dg.DagsterRun) -> dt.datetime:
    return dt.datetime.fromisoformat(run.tags[PAUSED_UNTIL_TAG])


def pause_reason(run: dg.DagsterRun) -> str:
    """`until <time>`, and the continuation once there is one (`workflows runs`)."""
    text = f"until {run.tags[PAUSED_UNTIL_TAG]} (step {run.tags.get(PAUSED_STEP_TAG, '?')})"
    follow = run.tags.get(RESUMED_AS_TAG)
    return f"{text}; resumed as run {follow}" if follow else text


# --- inside the wait op ---------------------------------------------------------------


def recorded_due(context: Any, step: str) -> tuple[dt.datetime | None, bool]:
    """The due time a paused parent recorded for `step`, and whether this continuation
    was started with `--now`. (None, False) for a first run."""
    run = context.run
    parent_id = run.parent_run_id
    parent = context.instance.get_run_by_id(parent_id) if parent_id else None
    if parent is None or parent.tags.get(PAUSED_STEP_TAG) != step:
        return None, False
    return paused_until(parent), run.tags.get(RESUME_NOW_TAG) == "true"


def pause_run(
    context: Any,
    step: str,
    due: dt.datetime,
    limit: int,
    *,
    why: str | None = None,
    tags: dict[str, str] | None = None,
) -> NoReturn:
    """Ends the run here: the tags say until when, the failure says why (`why`: what
    the step waits for, instead of a wait's length; `tags`: more for the continuation)."""
    context.instance.add_run_tags(
        context.run_id,
        {
            PAUSE_TAG: "paused",
            PAUSED_UNTIL_TAG: iso(due),
            PAUSED_STEP_TAG: step,
            # Run retries would re-execute a failed run at once; the sensor does it when due.
            MAX_RETRIES_TAG: "0",
            **(tags or {}),
        },
    )
    seconds = (due - dt.datetime.now(dt.UTC)).total_seconds()
    why = why or f"waits {seconds:.0f}s, more than settings.inlineWaitMaxSeconds ({limit}s)"
    raise dg.Failure(
        description=(
            f"{PAUSED_PREFIX} {iso(due)}: step {step} {why}, so the run pauses and holds no "
            f"worker; the resume sensor continues it when due, or `workflows resume "
            f"{context.run_id} [--now]`"
        ),
        allow_retries=False,
    )


def recorded_poll_deadline(context: Any, step: str) -> dt.datetime | None:
    """When the polling wait `step` gives up, as its paused parent recorded it; None in a
    first run (the poll starts now)."""
    parent_id = context.run.parent_run_id
    parent = context.instance.get_run_by_id(parent_id) if parent_id else None
    if parent is None or parent.tags.get(PAUSED_STEP_TAG) != step:
        return None
    text = parent.tags.get(POLL_DEADLINE_TAG)
    return dt.datetime.fromisoformat(text) if text else None


# --- the continuation -----------------------------------------------------------------


def continuation_tags(parent: dg.DagsterRun, now: bool) -> dict[str, str]:
    """The parent's own tags (its params, key, partition) without the pause's and
    Dagster's run-bound ones; the continuation then says whose it is."""
    kept = ("dagster/partition", "dagster/partition_set")
    tags = {
        key: value
        for key, value in parent.tags.items()
        if key not in PAUSE_TAGS and (not key.startswith("dagster/") or key in kept)
    }
    tags.pop(RESUME_NOW_TAG, None)
    tags[RESUME_OF_TAG] = parent.run_id
    if now:
        tags[RESUME_NOW_TAG] = "true"
    return tags


def claim_continuation(instance: dg.DagsterInstance, parent: dg.DagsterRun, run_id: str) -> str:
    """Makes `run_id` THE continuation of `parent` (one INSERT, so the sensor and a
    `workflows resume` at the same moment cannot both continue it); returns the run
    that continues it, `run_id` when this call won."""
    # Imported here: SQLAlchemy costs every process that builds a job ~0.3 s (issue 8).
    import sqlalchemy as sa

    from translators.instance_db import CLAIMS, connect

    key = f"workflow/resume:{parent.run_id}"
    try:
        with connect(instance) as conn:
            conn.execute(CLAIMS.insert().values(key=key, run_id=run_id, claimed_at=_now()))
    except sa.exc.IntegrityError:
        with connect(instance) as conn:
            holder = conn.execute(sa.select(CLAIMS.c.run_id).where(CLAIMS.c.key == key))
            return holder.scalar_one()
    instance.add_run_tags(parent.run_id, {PAUSE_TAG: "resumed", RESUMED_AS_TAG: run_id})
    return run_id


def create_continuation(
    instance: dg.DagsterInstance,
    parent: dg.DagsterRun,
    tags: dict[str, str],
    remote_job_origin: Any = None,
) -> dg.DagsterRun | str:
    """The continuation run (NOT_STARTED), or why there is none: the run that already
    continues `parent`."""
    run = create_run(
        instance,
        parent.job_name,
        dict(parent.run_config),
        tags,
        parent=parent,
        remote_job_origin=remote_job_origin,
    )
    winner = claim_continuation(instance, parent, run.run_id)
    if winner != run.run_id:
        message = f"run {parent.run_id} is already resumed as run {winner}"
        instance.report_run_canceled(run, message=message)
        return message
    return run


def _now() -> float:
    return dt.datetime.now(dt.UTC).timestamp()


# --- what a pause holds ---------------------------------------------------------------


def paused_run_holds(
    instance: dg.DagsterInstance, run: dg.DagsterRun, claimant: str | None = None
) -> bool:
    """Whether a PAUSED run still holds its idempotency key: until its continuation has
    finished. The continuation itself (`claimant`) takes the key over."""
    if claimant is not None:
        claiming = instance.get_run_by_id(claimant)
        if claiming is not None and claiming.tags.get(RESUME_OF_TAG) == run.run_id:
            return False
    follow_id = run.tags.get(RESUMED_AS_TAG)
    if follow_id is None:
        return True
    follow = instance.get_run_by_id(follow_id)
    # The continuation holds the key itself once it claimed it; until then its parent.
    return follow is not None and follow.status in _ACTIVE


def has_paused_run(instance: dg.DagsterInstance, job_name: str) -> bool:
    """A run of the job waits at a long wait with no continuation yet (skipIfRunning)."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(
            job_name=job_name, statuses=[dg.DagsterRunStatus.FAILURE], tags={PAUSE_TAG: "paused"}
        ),
        limit=1,
    )
    return bool(records)


def due_paused_runs(instance: dg.DagsterInstance, limit: int = 100) -> list[dg.DagsterRun]:
    """Paused runs without a continuation whose time has come, oldest first."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], tags={PAUSE_TAG: "paused"}),
        limit=limit,
        ascending=True,
    )
    now = dt.datetime.now(dt.UTC)
    runs = [r.dagster_run for r in records]
    return [run for run in runs if PAUSED_UNTIL_TAG in run.tags and paused_until(run) <= now]
