"""importFromDatabase steps: stream an app table into the step's table (SPEC 3.3)."""

from __future__ import annotations

from translators.spec import ImportFromDatabaseStepSpec
from translators.steps.db_errors import retry_transient_db_errors
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
