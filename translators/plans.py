"""What loading produces: validated workflows as plans of steps, schedules, and problems.

The job builder turns these into Dagster objects; nothing here touches Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from translators.app_access import AppAccess
from translators.errors import DefinitionError, Problem
from translators.spec import BaseStepSpec, ScheduleEntrySpec, ServiceSpec, WorkflowSpec


@dataclass(frozen=True)
class StepPlan:
    """One step, with its name, place in the DAG and tables.

    Attributes:
        name: the op name (id, else outputTable, else a unique `<kind>_<target>` stem).
        index: position in the workflow's `steps`.
        pointer: JSON pointer of the step (`/steps/3`).
        spec: the parsed step.
        kind: `serviceCall`, `sql`, `importFromDatabase`, `persistToDatabase`,
            `conditional` or `waitFor`.
        depends_on: names of the upstream steps, in step order, without repeats.
        reads: table name (as its producer declares it) -> producing step name, for
            the tables this step reads: sql / branch.sql tables, forEach.source,
            persistToDatabase.sourceTable.
        output_table: the table this step produces, if any.
        output_schema: declared, else inferred (sql), else None when unknown (an
            importFromDatabase without outputSchema) or no table.
    """

    name: str
    index: int
    pointer: str
    spec: BaseStepSpec
    kind: str
    depends_on: tuple[str, ...] = ()
    reads: dict[str, str] = field(default_factory=dict)
    output_table: str | None = None
    output_schema: dict[str, str] | None = None


@dataclass(frozen=True)
class WorkflowPlan:
    app_id: str
    stem: str
    file: str  # relative to the definitions folder: apps/<app_id>/workflows/<stem>.json
    job_name: str
    spec: WorkflowSpec
    steps: list[StepPlan]
    # Other apps whose databases the workflow reaches: `databases` of its app.json (SPEC 8).
    databases: tuple[str, ...] = ()

    @property
    def access(self) -> AppAccess:
        return AppAccess(self.app_id, self.databases)

    @property
    def allowed_app_ids(self) -> frozenset[str]:
        """The app ids an importFromDatabase or persistToDatabase step may name."""
        return self.access.allowed


@dataclass(frozen=True)
class SchedulePlan:
    app_id: str
    name: str
    schedule_name: str  # the Dagster name: <app_id>__<name>, sanitised
    spec: ScheduleEntrySpec
    workflow: str  # the job name of the scheduled workflow
    file: str
    pointer: str


@dataclass(frozen=True)
class BrokenWorkflow:
    """A workflow file with problems: left out of the jobs, shown as a failing job.

    Attributes:
        spec: the parsed workflow when only the cross-step checks failed (its schedules
            are kept, pointing at the failing job), else None.
        related: problems of the service files the workflow uses that have problems.
    """

    app_id: str
    stem: str
    file: str
    job_name: str
    problems: list[Problem]
    spec: WorkflowSpec | None = None
    related: list[Problem] = field(default_factory=list)


@dataclass
class LoadResult:
    """Everything found under the definitions folder; `problems` holds ALL problems."""

    defs_dir: Path
    services: dict[str, ServiceSpec] = field(default_factory=dict)
    workflows: list[WorkflowPlan] = field(default_factory=list)
    schedules: list[SchedulePlan] = field(default_factory=list)
    broken: list[BrokenWorkflow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        """Raise `DefinitionError` with every problem, if there is any."""
        if self.problems:
            raise DefinitionError(self.problems)
