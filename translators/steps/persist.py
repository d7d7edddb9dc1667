"""persistToDatabase steps: write a table into the app database, exactly once per run
lineage (SPEC 3.4)."""

from __future__ import annotations

from typing import Any

from translators.errors import Problem
from translators.spec import GenerateSpec, PersistToDatabaseStepSpec, ServiceSpec
from translators.step_checks import check_persist
from translators.steps.db_errors import retry_transient_db_errors
from translators.steps.db_tables import category, find_table, source_schema
from translators.steps.kind import Lineage, StepKind, TableRead, app_id_at_load
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
        "rows inserted": result.rows_inserted,
        "rows updated": result.rows_updated,
        "rows deleted": result.rows_deleted,
        "rows skipped": result.rows_skipped,
    }
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
        columns, row_count = rt.app_db.table_summary(app_id, table)
    except Exception as exc:
        rt.log.warning(f"{rt.plan.name}: could not describe {app_id}:{table}: {exc}")
        return TableWritten(app_id, table, {}, None)
    return TableWritten(app_id, table, columns, row_count)


def check_persist_database(app_db: Any, workflow: Any, step: Any) -> list[Problem]:
    """`check --db`: the mapped columns exist, upsertKey is unique, every required column
    is mapped, and mapped types fit."""
    inner = step.spec.persist_to_database
    info, problem, problems = find_table(app_db, workflow, step, "persistToDatabase", inner)
    if info is None:
        return problems
    mapping = inner.field_mapping
    unknown = [c for c in mapping if c not in info.columns]
    if unknown:
        problems.append(
            problem(
                "fieldMapping",
                f"table {info.name!r} has no column(s) {unknown}",
                f"columns among {list(info.columns)}",
            )
        )
    if inner.upsert_key and not info.has_unique_key(inner.upsert_key):
        problems.append(
            problem(
                "upsertKey",
                f"no primary key or unique constraint on {inner.upsert_key} in table {info.name!r}",
                "a unique constraint on exactly the upsertKey columns",
            )
        )
    required = [
        c.name
        for c in info.columns.values()
        if not c.nullable and not c.has_default and c.name not in mapping
    ]
    if required:
        problems.append(
            problem(
                "fieldMapping",
                f"required column(s) {required} of table {info.name!r} are not mapped",
                "every NOT NULL column mapped",
            )
        )
    return problems + _type_problems(
        inner, info, source_schema(workflow, step, inner.source_table), problem
    )


def _type_problems(
    inner: Any, info: Any, found_types: dict[str, str], problem: Any
) -> list[Problem]:
    problems = []
    for target, source in inner.field_mapping.items():
        if isinstance(source, GenerateSpec) or target not in info.columns:
            continue
        found, wanted = found_types.get(source), info.columns[target].duckdb_type
        if found and category(found) and category(wanted) not in (None, "text", category(found)):
            problems.append(
                problem(
                    f"fieldMapping/{target}",
                    f"column {source!r} is {found} but {info.name}.{target} is {wanted}",
                    f"a {wanted} value",
                )
            )
    return problems


def _describe(workflow: Any, step: Any, catalog: dict[str, ServiceSpec]) -> str:
    target = step.spec.persist_to_database
    key = f" on {', '.join(target.upsert_key)}" if target.upsert_key else ""
    app_id = app_id_at_load(workflow, target.app_id)
    return (
        f"Writes `{target.source_table}` into table `{target.table_name}` of app "
        f"`{app_id}` ({target.mode}{key}): the asset `{app_id}/{target.table_name}`."
    )


def _lineage(spec: PersistToDatabaseStepSpec) -> Lineage:
    target = spec.persist_to_database
    return Lineage(app_table_written=(target.app_id, target.table_name, target.mode))


def _reads(spec: PersistToDatabaseStepSpec) -> list[TableRead]:
    source = spec.persist_to_database.source_table
    return [TableRead(source, ("persistToDatabase", "sourceTable"), "sourceTable")]


KIND = StepKind(
    name="persistToDatabase",
    spec=PersistToDatabaseStepSpec,
    keys=("persistToDatabase",),
    badge="persist",
    template_sites=("/persistToDatabase/appId",),
    produces_table=False,
    reads=_reads,
    check=check_persist,
    check_database=check_persist_database,
    describe=_describe,
    lineage=_lineage,
    run=run_persist,
)
