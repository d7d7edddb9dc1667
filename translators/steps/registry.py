"""The ONE table of step kinds. Adding a kind: a module with its `KIND` (see `kind.py`),
and a line here (or, for a kind defined outside this package, `register_step_kind`).

Importing this module also tells the parser which kinds there are: the step union of
`translators.spec` is built from this table (`spec.step_union`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from translators.spec import WorkflowSpec
from translators.spec.steps import use_step_kinds
from translators.steps import branch, import_db, persist, service_call, sql, wait
from translators.steps.kind import StepKind

if TYPE_CHECKING:
    from translators.plans import StepPlan, WorkflowPlan

STEP_KINDS: tuple[StepKind, ...] = (
    service_call.KIND,
    sql.KIND,
    import_db.KIND,
    persist.KIND,
    branch.KIND,
    wait.KIND,
)
_BY_NAME: dict[str, StepKind] = {}


def _publish() -> None:
    """The table -> the parser: the step union, and the models that hold steps."""
    _BY_NAME.clear()
    _BY_NAME.update({kind.name: kind for kind in STEP_KINDS})
    use_step_kinds(STEP_KINDS)
    WorkflowSpec.model_rebuild(force=True)


def register_step_kind(kind: StepKind) -> None:
    """Adds (or replaces, by name) a kind: it is parsed, checked, built and run from now on."""
    global STEP_KINDS
    if kind.spec.kind != kind.name:
        raise ValueError(f"step kind {kind.name!r}: its spec model says kind={kind.spec.kind!r}")
    STEP_KINDS = (*(k for k in STEP_KINDS if k.name != kind.name), kind)
    _publish()


def kind_named(name: str) -> StepKind:
    return _BY_NAME[name]


def kind_of(step: Any) -> StepKind:
    """The kind of a step plan or a parsed step (both carry the kind's name as `kind`)."""
    return _BY_NAME[step.kind]


def split_dependencies(workflow: WorkflowPlan, step: StepPlan) -> tuple[list[str], list[str]]:
    """A step's upstream steps: those it needs, and those a barrier only comes after.

    A wait depends on every earlier step (SPEC 3.6) only to come after them. Those edges
    are one fan-in input, which Dagster skips only when *all* its sources are skipped, so
    a false branch before a wait does not skip everything after the wait. What the wait
    names in `dependsOn` stays a real dependency.
    """
    if not kind_of(step).barrier:
        return list(step.depends_on), []
    named = set(step.spec.depends_on)
    tables = {other.name: other.output_table for other in workflow.steps}
    direct = [up for up in step.depends_on if up in named or tables.get(up) in named]
    return direct, [up for up in step.depends_on if up not in direct]


_publish()


def unregister_step_kind(name: str) -> None:
    """Removes a kind added by `register_step_kind` (a test's cleanup)."""
    global STEP_KINDS
    STEP_KINDS = tuple(k for k in STEP_KINDS if k.name != name)
    _publish()
