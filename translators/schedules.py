"""`schedules.json` entries -> Dagster schedules (SPEC 6)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import dagster as dg

from translators.job_builder import VARIABLES_OP
from translators.loader import SchedulePlan
from translators.pause import has_paused_run
from translators.variables import iso_utc

SCHEDULE_TAG = "workflow/schedule"


def partitions_for(schedule: SchedulePlan) -> dg.TimeWindowPartitionsDefinition | None:
    """Extension `backfillStart`: one partition per tick from that date, so a range of
    ticks can be backfilled from the UI, each run with its tick as logical time.

    `end_offset=1` makes the newest partition the one starting at the latest tick, so a
    partition's start time *is* its tick time.
    """
    spec = schedule.spec
    if spec.backfill_start is None:
        return None
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=spec.cron,
        start=dt.datetime.combine(spec.backfill_start, dt.time()),
        timezone=spec.timezone,
        fmt="%Y-%m-%dT%H:%M",
        end_offset=1,
    )


def run_config_for(
    params: Mapping[str, Any], logical_time: dt.datetime | None, timezone: str
) -> dict[str, Any]:
    """The run config that hands params (and the logical time) to `resolve_variables`."""
    config: dict[str, Any] = {"params": dict(params), "timezone": timezone}
    if logical_time is not None:
        config["logical_time"] = iso_utc(logical_time)
    return {"ops": {VARIABLES_OP: {"config": config}}}


def build_schedule(
    schedule: SchedulePlan,
    job: dg.JobDefinition | str,
    partitions_def: dg.PartitionsDefinition | None = None,
) -> dg.ScheduleDefinition:
    """`job` may be just its name (with its `partitions_def`): a location whose jobs are
    built lazily does not build them for its schedules."""
    spec = schedule.spec
    if isinstance(job, dg.JobDefinition):
        partitions_def = job.partitions_def
    job_name = job.name if isinstance(job, dg.JobDefinition) else job

    def evaluate(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        if spec.skip_if_running and _has_active_run(context.instance, job_name):
            return dg.SkipReason(f"a run of {job_name} is still active (skipIfRunning)")
        tick = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
        partition_key = None
        if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
            # With end_offset=1 the partition that starts at the tick is already open.
            partition_key = partitions_def.get_partition_key_for_timestamp(tick.timestamp())
        return dg.RunRequest(
            run_config=run_config_for(spec.params, tick, spec.timezone),
            tags={SCHEDULE_TAG: spec.name},
            partition_key=partition_key,
        )

    return dg.ScheduleDefinition(
        name=schedule.schedule_name,
        cron_schedule=spec.cron,
        execution_timezone=spec.timezone,
        **({"job": job} if isinstance(job, dg.JobDefinition) else {"job_name": job}),
        execution_fn=evaluate,
        description=spec.description or f"{spec.name} from {schedule.file}",
        # Decision: a schedule in schedules.json is meant to run; switching each one on
        # in the UI after every deploy is a step people forget.
        default_status=dg.DefaultScheduleStatus.RUNNING,
        tags={SCHEDULE_TAG: spec.name},
    )


def _has_active_run(instance: dg.DagsterInstance, job_name: str) -> bool:
    active = [
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
    ]
    runs = instance.get_run_records(
        filters=dg.RunsFilter(job_name=job_name, statuses=active), limit=1
    )
    # A run paused at a long wait is not finished either (its continuation is active).
    return bool(runs) or has_paused_run(instance, job_name)
