"""App tables and service operations as Dagster assets, for the Catalog and Lineage pages
(issue 9).

Jobs stay op jobs, an op per step (SPEC 5.6): an asset here is an *external* asset that
the persist op reports a materialization of, not something Dagster computes by itself.
- every table a `persistToDatabase` step writes is an asset `<app_id>/<table>`, grouped
  per app, owned by the app's team, with kinds (`table` and the database);
- its upstream assets are what its data comes from, followed back through the
  workflow's steps: tables read by `importFromDatabase` (`<app_id>/<table>`, so a table
  that one workflow writes and another reads links the two) and the service operations
  called (`<service>/<operation>`, group `services`).
The keys are worked out at load time from the files alone: an `appId` given as a
template takes the workflow params' defaults, else the workflow's own app.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import dagster as dg

from resources.env_names import app_db_url_variable
from translators.loader import LoadResult
from translators.naming import dagster_name
from translators.plans import StepPlan, WorkflowPlan
from translators.steps.kind import app_id_at_load
from translators.steps.registry import kind_of

SERVICES_GROUP = "services"


def app_table_key(app_id: str, table: str) -> dg.AssetKey:
    return dg.AssetKey([app_id, table])


def service_operation_key(service: str, operation: str) -> dg.AssetKey:
    return dg.AssetKey([service, operation])


@dataclass
class _Table:
    """What the workflows say about one app table: who writes it, from what."""

    app_id: str
    table: str
    writers: list[str] = field(default_factory=list)  # "job step (mode)"
    upstream: set[dg.AssetKey] = field(default_factory=set)


def persist_target(workflow: WorkflowPlan, step: StepPlan) -> dg.AssetKey | None:
    """The app table a step writes, as far as the files say (None for most steps)."""
    written = kind_of(step).lineage(step.spec).app_table_written
    if written is None:
        return None
    return app_table_key(app_id_at_load(workflow, written[0]), written[1])


def asset_specs(loaded: LoadResult) -> list[dg.AssetSpec]:
    """Every app table written and every source it reads from, with its lineage."""
    tables: dict[dg.AssetKey, _Table] = {}
    sources: dict[dg.AssetKey, set[str]] = {}  # service operation -> job names
    for workflow in loaded.workflows:
        steps = {step.name: step for step in workflow.steps}
        for step in workflow.steps:
            key = persist_target(workflow, step)
            if key is None:
                continue
            app_id, table = key.path
            entry = tables.setdefault(key, _Table(app_id, table))
            written = kind_of(step).lineage(step.spec).app_table_written
            mode = written[2] if written else ""
            entry.writers.append(f"`{workflow.job_name}` step `{step.name}` ({mode})")
            for upstream, service_call in _sources(workflow, steps, step):
                entry.upstream.add(upstream)
                if service_call:
                    sources.setdefault(upstream, set()).add(workflow.job_name)
    specs = [_table_spec(key, entry) for key, entry in sorted(tables.items())]
    read_only = {up for entry in tables.values() for up in entry.upstream} - set(tables)
    for key in sorted(read_only):
        specs.append(_source_spec(key, sources.get(key)))
    return specs


def _sources(
    workflow: WorkflowPlan, steps: dict[str, StepPlan], persist: StepPlan
) -> Iterator[tuple[dg.AssetKey, bool]]:
    """(upstream asset, is a service operation) for what the persisted data comes from."""
    for step in _ancestors(steps, persist):
        lineage = kind_of(step).lineage(step.spec)
        for app_id, table in lineage.app_tables_read:
            yield app_table_key(app_id_at_load(workflow, app_id), table), False
        for service, operation in lineage.operations_kept:
            yield service_operation_key(service, operation), True


def _ancestors(steps: dict[str, StepPlan], step: StepPlan) -> Iterable[StepPlan]:
    seen: dict[str, StepPlan] = {}
    pending = list(step.depends_on)
    while pending:
        name = pending.pop()
        if name in seen or name not in steps:
            continue
        seen[name] = steps[name]
        pending.extend(steps[name].depends_on)
    return seen.values()


def _table_spec(key: dg.AssetKey, entry: _Table) -> dg.AssetSpec:
    writers = "\n".join(f"- {writer}" for writer in entry.writers)
    return dg.AssetSpec(
        key=key,
        deps=sorted(entry.upstream),
        description=f"Table `{entry.table}` of app `{entry.app_id}`, written by:\n\n{writers}",
        group_name=dagster_name(entry.app_id),
        owners=[f"team:{dagster_name(entry.app_id)}"],
        kinds={"table", _database_kind(entry.app_id)},
        metadata={"dagster/table_name": entry.table},
    )


def _source_spec(key: dg.AssetKey, readers: set[str] | None) -> dg.AssetSpec:
    first, second = key.path
    if readers is None:  # an app table that workflows read but none writes
        return dg.AssetSpec(
            key=key,
            description=f"Table `{second}` of app `{first}`, read by workflows.",
            group_name=dagster_name(first),
            kinds={"table", _database_kind(first)},
            metadata={"dagster/table_name": second},
        )
    return dg.AssetSpec(
        key=key,
        description=f"Operation `{second}` of service `{first}`, called by "
        + ", ".join(f"`{job}`" for job in sorted(readers)),
        group_name=SERVICES_GROUP,
        kinds={"api", dagster_name(first)},
    )


def _database_kind(app_id: str) -> str:
    """`postgres` or `sqlite`, from the URL the app database resource would use."""
    url = os.environ.get(app_db_url_variable(app_id)) or os.environ.get("APP_DB_URL", "")
    return "postgres" if url.startswith("postgres") else "sqlite"
