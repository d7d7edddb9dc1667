"""persistToDatabase steps: write a table into the app database, exactly once per run
lineage (SPEC 3.4)."""

from __future__ import annotations

from translators.spec import PersistToDatabaseStepSpec
from translators.steps.db_errors import retry_transient_db_errors
from translators.steps.mapping import map_batches, render_str, source_columns
from translators.steps.runtime import StepResult, StepRuntime


def run_persist(spec: PersistToDatabaseStepSpec, rt: StepRuntime) -> StepResult:
    # Imported here: persist_request brings SQLAlchemy, which building the job never needs.
    from resources.persist_request import PersistRequest

    target = spec.persist_to_database
    # Refused before anything is read or written when the workflow may not reach it (SPEC 8).
    app_id = rt.app_access.ensure(rt.plan.name, render_str(target.app_id, rt.variables))
    source = rt.table(target.source_table)
    request = PersistRequest(
        table=target.table_name,
        mode=target.mode,
        upsert_key=target.upsert_key,
        match_columns=target.replace_where.match_columns if target.replace_where else None,
        on_row_error=target.on_row_error,
    )
    batches = map_batches(
        rt.table_store.read_batches(source, source_columns(target.field_mapping)),
        target.field_mapping,
    )
    with retry_transient_db_errors(rt):
        result = rt.app_db.persist(app_id, request, batches, lineage=rt.lineage, step=rt.plan.name)
    if result.already_done:
        rt.log.info(
            f"{rt.plan.name}: already written by this run lineage ({rt.lineage}); nothing to do"
        )
    elif result.rows_skipped:
        rt.log.warning(
            f"{rt.plan.name}: skipped {result.rows_skipped} bad row(s); first: {result.errors[:3]}"
        )
    metadata = {
        "target": f"{app_id}:{target.table_name}",
        "mode": target.mode,
        "rows written": result.rows_written,
        "rows skipped": result.rows_skipped,
        "row errors": result.errors,
        "already done": result.already_done,
        "duration s": round(result.duration_s, 3),
    }
    return StepResult(None, metadata)
