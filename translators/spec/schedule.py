"""An app's `schedules.json` (SPEC 6)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import Field

from translators.spec.base import SpecModel


class ScheduleEntrySpec(SpecModel):
    """One schedule: a cron that launches a workflow with params."""

    name: Annotated[str, Field(min_length=1)] = Field(
        description="Unique among the schedules; names the Dagster schedule."
    )
    cron: str = Field(description="A cron expression of 5 fields, e.g. 0 3 * * *.")
    timezone: str = Field("UTC", description="IANA timezone of the cron, e.g. Europe/Berlin.")
    skip_if_running: bool = Field(
        False, description="Skip a tick while a run of the workflow is active."
    )
    workflow: str = Field(
        description="Path of the workflow file inside the app folder, e.g. "
        "./workflows/syncOrders.json."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Values of the workflow's param variables."
    )
    backfill_start: dt.date | None = Field(
        None,
        description="Extension: the job is partitioned by this cron from this date "
        "(YYYY-MM-DD), so ranges of ticks can be backfilled.",
    )
    description: str | None = Field(None, description="Shown with the schedule in the UI.")


class SchedulesFileSpec(SpecModel):
    """An app's schedules (`apps/<app_id>/schedules.json`, SPEC 6)."""

    schedules: list[ScheduleEntrySpec] = Field(description="The app's schedules.")
