"""Asset checks on app tables where they are cheap (issue 9): an upserted table's key is
unique, which the database guarantees only while a unique constraint covers exactly
that key. The check reads the table's constraints, never its rows.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from translators.assets import persist_target
from translators.loader import LoadResult
from translators.naming import dagster_name
from translators.spec import PersistToDatabaseStepSpec

APP_DB_KEY = "app_db"


def asset_checks(loaded: LoadResult) -> list[dg.AssetChecksDefinition]:
    """One `upsert_key_unique` check per (table, upsert key) the workflows upsert on."""
    keys: dict[tuple[dg.AssetKey, tuple[str, ...]], None] = {}
    for workflow in loaded.workflows:
        for step in workflow.steps:
            key = persist_target(workflow, step)
            spec = step.spec
            if key is None or not isinstance(spec, PersistToDatabaseStepSpec):
                continue
            upsert_key = spec.persist_to_database.upsert_key
            if spec.persist_to_database.mode == "upsert" and upsert_key:
                keys[(key, tuple(upsert_key))] = None
    return list(_checks(keys))


def _checks(
    keys: dict[tuple[dg.AssetKey, tuple[str, ...]], None],
) -> Iterator[dg.AssetChecksDefinition]:
    seen: set[tuple[dg.AssetKey, str]] = set()
    for asset_key, upsert_key in keys:
        name = dagster_name("upsert_key_unique_" + "_".join(upsert_key))
        if (asset_key, name) in seen:
            continue
        seen.add((asset_key, name))
        yield _unique_key_check(asset_key, upsert_key, name)


def _unique_key_check(
    asset_key: dg.AssetKey, upsert_key: tuple[str, ...], name: str
) -> dg.AssetChecksDefinition:
    app_id, table = asset_key.path

    @dg.asset_check(
        asset=asset_key,
        name=name,
        description=f"A unique constraint covers exactly the upsert key ({', '.join(upsert_key)})"
        f" of `{table}`, so upserts cannot duplicate rows.",
        required_resource_keys={APP_DB_KEY},
        blocking=False,
    )
    def check(context) -> dg.AssetCheckResult:
        info = getattr(context.resources, APP_DB_KEY).table_info(app_id, table)
        wanted = frozenset(upsert_key)
        return dg.AssetCheckResult(
            passed=wanted in info.unique_keys,
            metadata={
                "upsert key": ", ".join(upsert_key),
                "unique keys": "; ".join(", ".join(sorted(k)) for k in info.unique_keys) or "none",
            },
        )

    return check
