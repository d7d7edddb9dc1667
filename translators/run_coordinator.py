"""Job idempotency (SPEC 5.5): a launch whose `idempotencyKey` tag matches a run that is
queued or running is refused, whether it comes from the UI, a schedule or the CLI."""

from __future__ import annotations

import dagster as dg
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext

IDEMPOTENCY_TAG = "idempotencyKey"
ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def active_run_with_key(
    instance: dg.DagsterInstance, key: str, *, other_than: str | None = None
) -> str | None:
    """The id of an active run tagged with this idempotency key, if there is one."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={IDEMPOTENCY_TAG: key}, statuses=ACTIVE_STATUSES), limit=2
    )
    return next((r.dagster_run.run_id for r in records if r.dagster_run.run_id != other_than), None)


class IdempotentRunCoordinator(QueuedRunCoordinator):
    """The run queue, refusing duplicates of an active run's `idempotencyKey`.

    A refused run is marked CANCELED with the reason, so it shows in the UI. Two launches
    of the same key in the same instant can both pass the check; the key guards against
    repeated launches, not against a race of milliseconds.
    """

    def submit_run(self, context: SubmitRunContext) -> dg.DagsterRun:
        run = context.dagster_run
        key = run.tags.get(IDEMPOTENCY_TAG)
        if key and run.status == dg.DagsterRunStatus.NOT_STARTED:
            duplicate = active_run_with_key(self._instance, key, other_than=run.run_id)
            if duplicate:
                self._instance.report_run_canceled(
                    run,
                    message=f"refused: run {duplicate} with idempotencyKey '{key}' is still active",
                )
                refused = self._instance.get_run_by_id(run.run_id)
                assert refused is not None
                return refused
        return super().submit_run(context)
