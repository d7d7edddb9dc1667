"""What a step kind is: the one object that says everything the translator needs to know
about one kind of step (issue 11). Each module of `translators/steps/` defines a `KIND`;
`registry.STEP_KINDS` lists them; checks, the job builder, the UI and the lineage ask the
kind instead of testing the step's class.

Nothing here imports Dagster or the runtime libraries: `workflows check` uses the kinds
too, and a kind's `run` imports what running needs when it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from translators.check_context import CheckContext, Slot
    from translators.errors import Problem
    from translators.plans import StepPlan, WorkflowPlan
    from translators.spec import BaseStepSpec, ServiceSpec
    from translators.steps.runtime import StepResult, StepRuntime


@dataclass(frozen=True)
class TableRead:
    """A table a step reads by name (`forEach.source`, `sourceTable`), at `at` (JSON
    pointer tokens relative to the step); `role` names the field in messages."""

    name: str
    at: tuple[str, ...]
    role: str


@dataclass(frozen=True)
class SqlRead:
    """A query of the step (its tables are found by parsing it), at `at`."""

    text: str
    at: tuple[str, ...]


@dataclass(frozen=True)
class Lineage:
    """What a step's data comes from and goes to, for the assets (issue 9). App ids are
    as written in the file (maybe templates); `translators.assets` resolves them."""

    app_tables_read: tuple[tuple[str, str], ...] = ()  # (appId, table)
    operations_kept: tuple[tuple[str, str], ...] = ()  # (service, operation) whose records it keeps
    app_table_written: tuple[str, str, str] | None = None  # (appId, table, mode)


def _no_reads(spec: Any) -> Iterable[TableRead | SqlRead]:
    return ()


def _no_services(spec: Any) -> list[str]:
    return []


def _bound_as_is(step: StepPlan, catalog: dict[str, ServiceSpec]) -> Any:
    return step.spec


def _no_policy(bound: Any) -> Any:
    return None


def _no_lineage(spec: Any) -> Lineage:
    return Lineage()


@dataclass(frozen=True)
class StepKind:
    """One kind of step (SPEC 3). Only `name`, `spec`, `keys`, `describe` and `run` are
    required; the rest default to "a step that reads nothing and needs nothing".

    - name: as in errors, docs, op tags (`serviceCall`); `spec.kind` must equal it.
    - spec: its pydantic model; `keys`: the JSON keys that identify it in a raw step.
    - badge: its Dagster kind (a badge on the op).
    - template_sites / item_sites / sql_sites: where templates / `{{item.X}}` render,
      and which are SQL (pointers relative to the step); item_role: the role of the
      read whose rows are the items (`forEach`), when the step has one.
    - produces_table: False for a step that never makes a table (persist, wait);
      nested_output: a block whose `outputTable`/`outputSchema` count as the step's.
    - reads: the tables and queries it reads; infers_schema: its output schema comes
      from its SQL; fixed_schema: its table's schema whatever the file says.
    - barrier: runs after every earlier step and before every later one (a wait).
    - skips_dependents: may withhold its output, so dependents are skipped (a branch).
    - check(ctx, slot, spec, slots): its own checks, after the DAG is known;
      check_database(app_db, workflow, step): `workflows check --db`.
    - services(spec): catalog services it calls (their resources, pool, badges).
    - bind(step, catalog): resolved once when the job is built; what `run` gets.
    - retry_policy(bound): the op's Dagster RetryPolicy, if any.
    - describe(workflow, step, catalog): what it does, in the UI's words.
    - lineage(spec): the app tables and service operations behind it.
    - run(bound, rt): the op's work.
    """

    name: str
    spec: type[BaseStepSpec]
    keys: tuple[str, ...]
    describe: Callable[[WorkflowPlan, StepPlan, dict[str, ServiceSpec]], str]
    run: Callable[[Any, StepRuntime], StepResult]
    badge: str = ""
    template_sites: tuple[str, ...] = ()
    item_sites: tuple[str, ...] = ()
    sql_sites: tuple[str, ...] = ()
    item_role: str | None = None
    produces_table: bool = True
    nested_output: str | None = None
    reads: Callable[[Any], Iterable[TableRead | SqlRead]] = _no_reads
    infers_schema: bool = False
    fixed_schema: dict[str, str] | None = None
    barrier: bool = False
    skips_dependents: bool = False
    check: Callable[[CheckContext, Slot, Any, Sequence[Slot]], None] | None = None
    check_database: Callable[[Any, WorkflowPlan, StepPlan], list[Problem]] | None = None
    services: Callable[[Any], list[str]] = _no_services
    bind: Callable[[StepPlan, dict[str, ServiceSpec]], Any] = _bound_as_is
    retry_policy: Callable[[Any], Any] = _no_policy
    lineage: Callable[[Any], Lineage] = _no_lineage

    @property
    def dagster_kind(self) -> str:
        return self.badge or self.name


def app_id_at_load(workflow: WorkflowPlan, value: str) -> str:
    """The app id a step's `appId` names, from the files alone (the UI, lineage and
    `check --db`): a literal as is; a template rendered with the params' defaults; the
    workflow's own app when a value is only known at launch (SPEC 8: a workflow reaches
    its own app's database unless app.json grants more)."""
    if "{{" not in value:
        return value
    from translators.spec import ParamVariableSpec
    from translators.templates import render

    defaults = {
        name: spec.default
        for name, spec in workflow.spec.variables.items()
        if isinstance(spec, ParamVariableSpec) and spec.default is not None
    }
    try:
        rendered = render(value, defaults)
    except Exception:  # a variable without a default: the workflow's own app
        return workflow.app_id
    return str(rendered) if rendered not in (None, "") else workflow.app_id
