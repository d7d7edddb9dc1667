"""A workflow file (SPEC 2) and its variables (SPEC 5.4)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from translators.spec.base import MAX_STEPS, SpecModel
from translators.spec.steps import StepSpec


class ParamVariableSpec(SpecModel):
    """Given at launch: run config, CLI `--param`, or a schedule's `params`."""

    type: Literal["param"] = Field(description="Variable type: param.")
    optional: bool = Field(
        False, description="When true and no value is given, the variable is null."
    )
    default: Any = Field(
        None, description="The value when none is given at launch (any JSON value)."
    )

    @property
    def required(self) -> bool:
        return not self.optional and "default" not in self.model_fields_set


class DateOffsetVariableSpec(SpecModel):
    """The date `days` from the run's logical time, `YYYY-MM-DD`."""

    type: Literal["dateOffset"] = Field(description="Variable type: dateOffset.")
    days: int = Field(0, description="Days after the run's logical date; negative for days before.")


class NowVariableSpec(SpecModel):
    """The run's logical time, ISO-8601 UTC."""

    type: Literal["now"] = Field(description="Variable type: now.")


class LastValueVariableSpec(SpecModel):
    """Extension (incremental loads): the largest value of a column of an output table at
    the end of the last successful run for the same params, `initial` the first time."""

    type: Literal["lastValue"] = Field(description="Variable type: lastValue.")
    from_: str = Field(
        alias="from",
        pattern=r"^[^.]+\.[^.]+$",
        description="`<outputTable>.<column>`: the column whose largest value is kept.",
    )
    initial: Any = Field(
        None, description="The value until a run succeeded (or after a reset); any JSON value."
    )
    lookback: str | None = Field(
        None,
        pattern=r"^[0-9]+[smhd]$",
        description="Subtracted from a date or timestamp value when used, e.g. `2d`, `6h`.",
    )


VariableSpec = Annotated[
    ParamVariableSpec | DateOffsetVariableSpec | NowVariableSpec | LastValueVariableSpec,
    Field(discriminator="type"),
]


class SettingsSpec(SpecModel):
    """Extension: how the workflow's job runs (SPEC 2, 5.6)."""

    max_parallel_steps: Annotated[int, Field(ge=1, le=64)] = Field(
        4, description="Independent steps that run at once (1..64)."
    )
    inline_wait_max_seconds: Annotated[int, Field(ge=0)] = Field(
        300,
        description="A wait up to this many seconds sleeps in its op; a longer one pauses "
        "the run and a sensor resumes it when due.",
    )
    # "threads": steps run in the run worker; "process": one process per step (SPEC 5.6).
    isolation: Literal["threads", "process"] = Field(
        "threads",
        description="threads: steps run in threads of the run worker. process: each step in "
        "a process of its own (slower to start).",
    )
    # "celery": steps run on Celery workers (deploy/celery/, docs/scaling.md).
    executor: Literal["default", "celery"] = Field(
        "default",
        description="default: steps run where the run runs. celery: on Celery workers "
        "(deploy/celery/, docs/scaling.md).",
    )


class WorkflowSpec(SpecModel):
    """A workflow (`apps/<app_id>/workflows/<name>.json`): the Dagster job
    `<app_id>__<name>`, one op per step (SPEC 2)."""

    name: str | None = Field(None, description="A display name, shown in the Dagster UI.")
    description: str | None = Field(None, description="The job's description in the UI.")
    id: str | None = Field(None, description="An identifier, kept as a tag of the job.")
    variables: dict[str, VariableSpec] = Field(
        default_factory=dict,
        description="Name -> variable; steps read them as {{var.NAME}} (SPEC 5.4).",
    )
    settings: SettingsSpec = Field(
        default_factory=SettingsSpec, description="Extension: how the job runs."
    )
    steps: Annotated[list[StepSpec], Field(min_length=1, max_length=MAX_STEPS)] = Field(
        description="The steps; a step's kind follows from its key (service + operation, sql, "
        "importFromDatabase, persistToDatabase, branch or wait), and each may refer only to "
        "steps above it."
    )
