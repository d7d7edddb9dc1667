"""persistToDatabase steps: write a table into the app database, exactly once per run
lineage (SPEC 3.4)."""

from __future__ import annotations

from translators.spec import PersistToDatabaseStepSpec
from translators.steps.db_errors import retry_transient_db_errors
from translators.steps.mapping import map_batches, render_str, source_columns
from translators.steps.runtime import StepResult, StepRuntime, TableWritten


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
    counts = {
        "rows written": result.rows_written,
        "rows inserted": getattr(result, "rows_inserted", None),
        "rows updated": getattr(result, "rows_updated", None),
        "rows deleted": getattr(result, "rows_deleted", None),
        "rows skipped": result.rows_skipped,
    }
    counts = {name: value for name, value in counts.items() if value is not None}
    metadata = {
        "target": f"{app_id}:{target.table_name}",
        "mode": target.mode,
        **counts,
        "row errors": result.errors,
        "already done": result.already_done,
        "duration s": round(result.duration_s, 3),
    }
    written = _table_written(rt, app_id, target.table_name)
    written.metadata = {"mode": target.mode, **counts, "already done": result.already_done}
    return StepResult(None, metadata, materialized=written)


def _table_written(rt: StepRuntime, app_id: str, table: str) -> TableWritten:
    """The table as it is now, for its asset. Describing it is a courtesy: a failure here
    is logged, never fails a step whose rows are written."""
    try:
        columns = rt.app_db.table_columns(app_id, table)
        row_count = rt.app_db.row_count(app_id, table)
    except Exception as exc:
        rt.log.warning(f"{rt.plan.name}: could not describe {app_id}:{table}: {exc}")
        return TableWritten(app_id, table, {}, None)
    return TableWritten(app_id, table, columns, row_count)
