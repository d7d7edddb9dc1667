"""sql steps: one DuckDB SELECT over earlier tables, sandboxed, variables bound (SPEC 3.2)."""

from __future__ import annotations

from typing import Any

from translators.spec import ServiceSpec, SqlStepSpec
from translators.steps.kind import SqlRead, StepKind
from translators.steps.runtime import StepResult, StepRuntime
from translators.templates import sql_with_params


def run_sql(spec: SqlStepSpec, rt: StepRuntime) -> StepResult:
    sql, names = sql_with_params(spec.sql)
    params = {name: rt.variables[name] for name in names}
    inputs = {table: rt.table(table) for table in rt.plan.reads}
    with (
        rt.table_store.query(sql, params, inputs) as reader,
        rt.open_writer(rt.plan.output_schema if spec.output_schema else None) as writer,
    ):
        writer.write_batches(reader)
    handle = writer.handle
    assert handle is not None  # set when the writer closes without error
    return StepResult(handle, {"rows": handle.row_count})


def _describe(workflow: Any, step: Any, catalog: dict[str, ServiceSpec]) -> str:
    reads = ", ".join(f"`{table}`" for table in step.reads)
    writes = f" Writes table `{step.output_table}`." if step.output_table else ""
    return f"Runs SQL over {reads or 'no step table'}.{writes}"


KIND = StepKind(
    name="sql",
    spec=SqlStepSpec,
    keys=("sql",),
    badge="sql",
    template_sites=("/sql",),
    sql_sites=("/sql",),
    reads=lambda spec: [SqlRead(spec.sql, ("sql",))],
    infers_schema=True,
    describe=_describe,
    run=run_sql,
)
