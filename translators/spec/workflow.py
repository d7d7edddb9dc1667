"""A workflow file (SPEC 2) and its variables (SPEC 5.4)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from translators.spec.base import MAX_STEPS, SpecModel
from translators.spec.steps import StepSpec


class ParamVariableSpec(SpecModel):
    """Given at launch: run config, CLI `--param`, or a schedule's `params`."""

    type: Literal["param"]
    optional: bool = False
    default: Any = None

    @property
    def required(self) -> bool:
        return not self.optional and "default" not in self.model_fields_set


class DateOffsetVariableSpec(SpecModel):
    """The date `days` from the run's logical time, `YYYY-MM-DD`."""

    type: Literal["dateOffset"]
    days: int = 0


class NowVariableSpec(SpecModel):
    """The run's logical time, ISO-8601 UTC."""

    type: Literal["now"]


VariableSpec = Annotated[
    ParamVariableSpec | DateOffsetVariableSpec | NowVariableSpec,
    Field(discriminator="type"),
]


class SettingsSpec(SpecModel):
    max_parallel_steps: Annotated[int, Field(ge=1, le=64)] = 4
    inline_wait_max_seconds: Annotated[int, Field(ge=0)] = 300
    # "threads": steps run in the run worker; "process": one process per step (SPEC 5.6).
    isolation: Literal["threads", "process"] = "threads"
    # "celery": steps run on Celery workers (deploy/celery/, docs/scaling.md).
    executor: Literal["default", "celery"] = "default"


class WorkflowSpec(SpecModel):
    name: str | None = None
    description: str | None = None
    id: str | None = None
    variables: dict[str, VariableSpec] = Field(default_factory=dict)
    settings: SettingsSpec = Field(default_factory=SettingsSpec)
    steps: Annotated[list[StepSpec], Field(min_length=1, max_length=MAX_STEPS)]
