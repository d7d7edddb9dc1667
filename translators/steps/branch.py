"""conditional steps: a one-row BOOLEAN table, and dependents skipped when false (SPEC 3.5)."""

from __future__ import annotations

from typing import Any

from translators.spec import BranchStepSpec, ServiceSpec
from translators.steps.kind import SqlRead, StepKind
from translators.steps.runtime import StepResult, StepRuntime
from translators.templates import render, sql_with_params

BRANCH_SCHEMA = {"value": "BOOLEAN"}


def is_truthy(value: Any) -> bool:
    """SPEC 3.5: `false`, `0`, `""` and `null` are false; everything else is true."""
    return not (value is None or value is False or value == 0 or value == "")


def run_branch(spec: BranchStepSpec, rt: StepRuntime) -> StepResult:
    if spec.branch.sql is not None:
        value = _first_value(spec.branch.sql, rt)
        source = "sql"
    else:
        value = render(spec.branch.condition, rt.variables)
        source = "condition"
    outcome = is_truthy(value)
    with rt.open_writer(dict(BRANCH_SCHEMA)) as writer:
        writer.write_records([{"value": outcome}])
    rt.log.info(
        f"branch {rt.plan.name}: {source} gave {value!r} -> "
        + ("true, dependents run" if outcome else "false, dependents are skipped")
    )
    return StepResult(writer.handle, {"value": outcome, "raw value": repr(value)}, emit=outcome)


def _first_value(sql_text: str, rt: StepRuntime) -> Any:
    """The first column of the first row; no row means false."""
    sql, names = sql_with_params(sql_text)
    params = {name: rt.variables[name] for name in names}
    inputs = {table: rt.table(table) for table in rt.plan.reads}
    with rt.table_store.query(sql, params, inputs) as reader:
        for batch in reader:
            if batch.num_rows:
                return batch.column(0)[0].as_py()
    return None


def _reads(spec: BranchStepSpec) -> list[SqlRead]:
    return [SqlRead(spec.branch.sql, ("branch", "sql"))] if spec.branch.sql is not None else []


def _describe(workflow: Any, step: Any, catalog: dict[str, ServiceSpec]) -> str:
    reads = ", ".join(f"`{table}`" for table in step.reads)
    return f"Branch: the steps after it run only when its condition holds (reads {reads})."


KIND = StepKind(
    name="conditional",
    spec=BranchStepSpec,
    keys=("branch",),
    badge="branch",
    template_sites=("/branch/condition", "/branch/sql"),
    sql_sites=("/branch/sql",),
    reads=_reads,
    fixed_schema=BRANCH_SCHEMA,
    skips_dependents=True,
    describe=_describe,
    run=run_branch,
)
