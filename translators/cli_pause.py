"""`workflows resume` of a PAUSED run (SPEC 10); how `workflows run` / `resume` report a
run that paused at a long wait (SPEC 5.6) is `cli_progress.finish`."""

from __future__ import annotations

import datetime as dt
import sys
import uuid

import dagster as dg

from translators.cli_progress import INVOCATION_TAG, claim_and_execute
from translators.pause import (
    RESUMED_AS_TAG,
    continuation_tags,
    create_continuation,
    is_resumed,
    iso,
    paused_until,
)


def resume_paused(instance: dg.DagsterInstance, parent: dg.DagsterRun, now: bool) -> int:
    """Runs the continuation of a paused run in this process: when due, or at once with
    `--now` (its wait then passes without waiting for the rest)."""
    run_id = parent.run_id
    if is_resumed(parent):
        follow = parent.tags.get(RESUMED_AS_TAG)
        print(
            f"run {run_id} is already resumed as run {follow}; "
            f"`workflows resume {follow}` continues that one if it failed",
            file=sys.stderr,
        )
        return 1
    due = paused_until(parent)
    left = (due - dt.datetime.now(dt.UTC)).total_seconds()
    if left > 0 and not now:
        print(
            f"run {run_id} is PAUSED until {iso(due)} ({left:.0f}s from now): the resume "
            f"sensor continues it then; `workflows resume {run_id} --now` continues it at once",
            file=sys.stderr,
        )
        return 1
    tags = continuation_tags(parent, now) | {
        INVOCATION_TAG: uuid.uuid4().hex,
        "workflow/launched_by": "cli",
    }
    run = create_continuation(instance, parent, tags)
    if isinstance(run, str):
        print(run, file=sys.stderr)
        return 1
    skipped = " (--now: the rest of the wait is skipped)" if left > 0 else ""
    announce = f"resuming paused run {run_id} as run {run.run_id}{skipped}"
    return claim_and_execute(instance, parent.job_name, run, tags[INVOCATION_TAG], announce)
