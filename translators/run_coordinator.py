"""Job idempotency (SPEC 5.5): a launch whose `idempotencyKey` tag matches a run that is
queued, running or paused is refused, whether it comes from the UI, the GraphQL API, a schedule,
a run retry or the CLI.

A key is claimed with one INSERT into `workflow_idempotency_claims` (the key is the
primary key), made atomic by the database itself, so two launches in the same instant
cannot both win. The row names the holding run. A later launch takes the key over with
one `UPDATE ... WHERE run_id = <old holder>` once that holder no longer holds it:
finished, canceled, deleted, or STARTED with a dead worker (then first marked FAILED,
"worker lost"). Of two launches taking over the same stale key, the UPDATE lets one win.
"""

from __future__ import annotations

import time

import dagster as dg
import sqlalchemy as sa
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext

from translators.instance_db import CLAIMS, connect
from translators.pause import is_paused, paused_run_holds
from translators.run_status import holds_key
from translators.run_worker import fail_if_worker_lost

IDEMPOTENCY_TAG = "idempotencyKey"


def claim_key(instance: dg.DagsterInstance, key: str, run_id: str) -> str | None:
    """Claims `key` for `run_id`: None when claimed, else the id of the run holding it."""
    for _ in range(5):
        try:
            with connect(instance) as conn:
                conn.execute(CLAIMS.insert().values(key=key, run_id=run_id, claimed_at=time.time()))
            return None
        except sa.exc.IntegrityError:
            pass  # the key has a holder: see whether it still holds it
        holder = _holder(instance, key)
        if holder is None:
            continue  # released between the INSERT and the SELECT: try again
        if holder == run_id or _still_holds(instance, holder, claimant=run_id):
            return None if holder == run_id else holder
        with connect(instance) as conn:
            taken = conn.execute(
                CLAIMS.update()
                .where(CLAIMS.c.key == key, CLAIMS.c.run_id == holder)
                .values(run_id=run_id, claimed_at=time.time())
            )
        if taken.rowcount == 1:
            return None
    raise RuntimeError(f"could not claim idempotency key '{key}': it changed hands 5 times")


def _still_holds(instance: dg.DagsterInstance, run_id: str, claimant: str | None = None) -> bool:
    run = instance.get_run_by_id(run_id)
    if run is None:
        return False
    if fail_if_worker_lost(instance, run):
        return False
    if is_paused(run):  # holds until its continuation (which takes the key over) finished
        return paused_run_holds(instance, run, claimant)
    return holds_key(run)


def active_run_with_key(instance: dg.DagsterInstance, key: str) -> str | None:
    """The run that holds `key` now, if any (a dead holder is marked FAILED first)."""
    holder = _holder(instance, key)
    return holder if holder and _still_holds(instance, holder) else None


def _holder(instance: dg.DagsterInstance, key: str) -> str | None:
    with connect(instance) as conn:
        return conn.execute(
            sa.select(CLAIMS.c.run_id).where(CLAIMS.c.key == key)
        ).scalar_one_or_none()


def refuse(instance: dg.DagsterInstance, run: dg.DagsterRun, key: str, holder: str) -> str:
    """Marks a refused run CANCELED with the reason, so it shows in the UI too."""
    message = f"refused: run {holder} with idempotency key '{key}' is still active"
    instance.report_run_canceled(run, message=message)
    return message


class IdempotentRunCoordinator(QueuedRunCoordinator):
    """The run queue, refusing a run whose `idempotencyKey` another active run holds."""

    def submit_run(self, context: SubmitRunContext) -> dg.DagsterRun:
        run = context.dagster_run
        key = run.tags.get(IDEMPOTENCY_TAG)
        if key and run.status == dg.DagsterRunStatus.NOT_STARTED:
            holder = claim_key(self._instance, key, run.run_id)
            if holder:
                refuse(self._instance, run, key, holder)
                refused = self._instance.get_run_by_id(run.run_id)
                assert refused is not None
                return refused
        return super().submit_run(context)
