"""An app's `schedules.json` (SPEC 6)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import Field

from translators.spec.base import SpecModel


class ScheduleEntrySpec(SpecModel):
    name: Annotated[str, Field(min_length=1)]
    cron: str
    timezone: str = "UTC"
    skip_if_running: bool = False
    workflow: str
    params: dict[str, Any] = Field(default_factory=dict)
    backfill_start: dt.date | None = None
    description: str | None = None


class SchedulesFileSpec(SpecModel):
    schedules: list[ScheduleEntrySpec]
