"""sql steps: one DuckDB SELECT over earlier tables, sandboxed, variables bound (SPEC 3.2)."""

from __future__ import annotations

from translators.spec import SqlStepSpec
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
