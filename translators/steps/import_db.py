"""importFromDatabase steps: stream an app table into the step's table (SPEC 3.3)."""

from __future__ import annotations

from typing import Any

from translators.errors import Problem
from translators.spec import ImportFromDatabaseStepSpec, ServiceSpec
from translators.step_checks import check_import
from translators.steps.db_errors import retry_transient_db_errors
from translators.steps.db_tables import find_table
from translators.steps.kind import Lineage, StepKind, app_id_at_load
from translators.steps.mapping import map_batches, render_str, source_columns
from translators.steps.runtime import StepResult, StepRuntime
from translators.templates import render


def run_import(spec: ImportFromDatabaseStepSpec, rt: StepRuntime) -> StepResult:
    source = spec.import_from_database
    # Refused before the database is opened when the workflow may not reach it (SPEC 8).
    app_id = rt.app_access.ensure(rt.plan.name, render_str(source.app_id, rt.variables))
    mapping = source.field_mapping
    columns = source.columns
    if mapping is not None:
        # Read only what the mapping needs (plus any columns listed explicitly).
        columns = list(dict.fromkeys([*(columns or []), *source_columns(mapping)]))
    where_value = render(source.where_value, rt.variables) if source.where_column else None
    with retry_transient_db_errors(rt), rt.open_writer(spec.schema_) as writer:
        batches = rt.app_db.read_batches(
            app_id, source.table_name, columns, source.where_column, where_value
        )
        writer.write_batches(map_batches(batches, mapping))
    handle = writer.handle
    assert handle is not None  # set when the writer closes without error
    return StepResult(handle, {"rows": handle.row_count, "source": f"{app_id}:{source.table_name}"})


def check_import_database(app_db: Any, workflow: Any, step: Any) -> list[Problem]:
    """`check --db`: the table and every column the step reads exist."""
    spec = step.spec
    inner = spec.import_from_database
    info, problem, problems = find_table(app_db, workflow, step, "importFromDatabase", inner)
    if info is None:
        return problems
    wanted = list(inner.columns or [])
    if inner.where_column:
        wanted.append(inner.where_column)
    for source in (inner.field_mapping or {}).values():
        if isinstance(source, str):
            wanted.append(source)
    if inner.field_mapping is None:
        wanted += list(spec.schema_ or {})  # the output columns are the table's own
    missing = [c for c in dict.fromkeys(wanted) if c not in info.columns]
    if missing:
        return [
            problem(
                "columns",
                f"table {info.name!r} has no column(s) {missing}",
                f"columns among {list(info.columns)}",
            )
        ]
    return []


def _describe(workflow: Any, step: Any, catalog: dict[str, ServiceSpec]) -> str:
    source = step.spec.import_from_database
    app_id = app_id_at_load(workflow, source.app_id)
    writes = f" Writes table `{step.output_table}`." if step.output_table else ""
    return f"Reads table `{source.table_name}` of app `{app_id}`.{writes}"


def _lineage(spec: ImportFromDatabaseStepSpec) -> Lineage:
    source = spec.import_from_database
    return Lineage(app_tables_read=((source.app_id, source.table_name),))


KIND = StepKind(
    name="importFromDatabase",
    spec=ImportFromDatabaseStepSpec,
    keys=("importFromDatabase",),
    badge="import",
    template_sites=("/importFromDatabase/appId", "/importFromDatabase/whereValue"),
    nested_output="importFromDatabase",
    check=lambda ctx, slot, spec, slots: check_import(ctx, slot, spec),
    check_database=check_import_database,
    describe=_describe,
    lineage=_lineage,
    run=run_import,
)
