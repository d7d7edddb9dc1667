"""`lastValue` variables (SPEC 5.4 extension, incremental loads), kept in run tags.

A run's tags in the Dagster instance are the store, so the value lives wherever runs
live (SQLite or PostgreSQL run storage), is shared by every process of a deployment and
shows in the UI on each run:

- `workflow/last_value_used/<var>`: what the run started from (`{"value", "run"}`), set
  when the run resolves its variables; every step of the run (and of its re-executions,
  which copy it from their parent) reads it back, so all see one value.
- `workflow/last_value/<var>`: the value after the run: the used value, raised to the
  largest value of the `from` column when the step making that table finishes.
- `workflow/last_value_key`: `<hash of the run's params>@<reset epoch>`. Only runs with
  it count, and a backfill (a partitioned run, or a run tagged `dagster/backfill` or
  `workflow/backfill`) never gets it.

The value a new run starts from is the `workflow/last_value/<var>` of the newest
SUCCESS run of the job with the same key. Dagster decides SUCCESS, so a run that fails
at any point, also after its last step, never moves the value. A reset stores a new
epoch in the instance's key-value store; runs of an older epoch no longer match.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any

import dagster as dg

from translators.spec import LastValueVariableSpec
from translators.spec.workflow import VariableSpec

KEY_TAG = "workflow/last_value_key"
PARAMS_TAG = "workflow/last_value_params"
VALUE_PREFIX = "workflow/last_value/"
USED_PREFIX = "workflow/last_value_used/"
BACKFILL_TAGS = ("dagster/backfill", "workflow/backfill")
RESET_PREFIX = "workflow/last_value_reset/"
_PINNED: dict[str, dict[str, dict[str, Any]]] = {}
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def last_value_specs(specs: Mapping[str, VariableSpec | None]) -> dict[str, LastValueVariableSpec]:
    return {n: s for n, s in specs.items() if isinstance(s, LastValueVariableSpec)}


def params_key(params: Mapping[str, Any]) -> str:
    """One param set: the hash of its values (defaults applied), keys sorted."""
    text = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- in a run


def pinned_last_values(
    context: Any, job_name: str, specs: Mapping[str, VariableSpec], params: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """{var: {"value", "run"}} this run started from; resolved once per run lineage."""
    wanted = last_value_specs(specs)
    if not wanted:
        return {}
    run_id = context.run_id
    if run_id in _PINNED:
        return _PINNED[run_id]
    instance = context.instance
    tags = _tags(instance, run_id)
    if not _has_used(tags, wanted) and context.run.parent_run_id:
        # A re-execution: carry on with what its parent started from and reached.
        parent = _tags(instance, context.run.parent_run_id)
        if _has_used(parent, wanted):
            carried = {k: v for k, v in parent.items() if k.startswith("workflow/last_value")}
            instance.add_run_tags(run_id, carried)
            tags = {**tags, **carried}
    if not _has_used(tags, wanted):
        tags = _first_resolve(context, job_name, wanted, params)
    pinned = {name: json.loads(tags[USED_PREFIX + name]) for name in wanted}
    if len(_PINNED) > 256:  # a long-lived code server: keep it bounded
        _PINNED.clear()
    _PINNED[run_id] = pinned
    return pinned


def _first_resolve(
    context: Any,
    job_name: str,
    wanted: Mapping[str, LastValueVariableSpec],
    params: Mapping[str, Any],
) -> dict[str, str]:
    instance = context.instance
    key = f"{params_key(params)}@{reset_epoch(instance, job_name, params_key(params))}"
    source = latest_success(instance, job_name, key)
    tags: dict[str, str] = {}
    for name, spec in wanted.items():
        stored = source.tags.get(VALUE_PREFIX + name) if source else None
        used = {"value": spec.initial, "run": None}
        if stored is not None:
            used = {"value": json.loads(stored), "run": source.run_id if source else None}
        tags[USED_PREFIX + name] = json.dumps(used, default=str)
    if not is_backfill(context):
        tags |= {VALUE_PREFIX + n: json.dumps(json.loads(t)["value"]) for n, t in _used(tags)}
        tags |= {KEY_TAG: key, PARAMS_TAG: json.dumps(params, sort_keys=True, default=str)}
    instance.add_run_tags(context.run_id, tags)
    return tags


def is_backfill(context: Any) -> bool:
    tags = context.run.tags
    return bool(context.has_partition_key or any(tags.get(t) for t in BACKFILL_TAGS))


def latest_success(instance: dg.DagsterInstance, job_name: str, key: str) -> dg.DagsterRun | None:
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            job_name=job_name, statuses=[dg.DagsterRunStatus.SUCCESS], tags={KEY_TAG: key}
        ),
        limit=1,
    )
    return runs[0] if runs else None


def record_table_max(
    context: Any, specs: Mapping[str, VariableSpec], table: str | None, handle: Any, store: Any
) -> None:
    """After the step making `table`: raise the run's value to the `from` column's max."""
    wanted = {n: s for n, s in last_value_specs(specs).items() if s.from_.split(".")[0] == table}
    if not wanted or handle is None or table is None:
        return
    tags = _tags(context.instance, context.run_id)
    if KEY_TAG not in tags:  # a backfill: never moves the value
        return
    update: dict[str, str] = {}
    for name, spec in wanted.items():
        column = spec.from_.split(".", 1)[1].replace('"', '""')
        with store.query(f'SELECT max("{column}") AS v FROM t', None, {"t": handle}) as reader:
            rows = reader.read_all().to_pylist()
        top = _jsonable(rows[0]["v"]) if rows else None
        current = json.loads(tags.get(VALUE_PREFIX + name, "null"))
        update[VALUE_PREFIX + name] = json.dumps(larger(current, top))
    context.instance.add_run_tags(context.run_id, update)
    context.log.info(f"lastValue after this run (if it succeeds): {update}")


# ----------------------------------------------------------------------------- values


def apply_lookback(value: Any, lookback: str | None) -> Any:
    """`value` minus `lookback` (`2d`, `6h`) for a date or ISO timestamp; else `value`."""
    if not lookback or not isinstance(value, str):
        return value
    delta = dt.timedelta(**{_UNITS[lookback[-1]]: int(lookback[:-1])})
    if len(value) == 10:
        try:
            return (dt.date.fromisoformat(value) - delta).isoformat()
        except ValueError:
            return value
    moment = _moment(value)
    if moment is None:
        return value
    shifted = (moment - delta).isoformat()
    return shifted.replace("+00:00", "Z") if value.endswith("Z") else shifted


def larger(current: Any, new: Any) -> Any:
    """The larger of two JSON values; never goes back (an empty run keeps the value)."""
    if new is None:
        return current
    if current is None:
        return new
    a, b = _moment(current), _moment(new)
    if a is not None and b is not None:
        return new if b > a else current
    try:
        return new if new > current else current
    except TypeError:  # a value of another type than before: the table wins
        return new


def _moment(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _jsonable(value: Any) -> Any:
    """A column value as JSON keeps it: timestamps ISO-8601 (UTC `Z`), dates `YYYY-MM-DD`."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)  # a decimal, a time: as text


# ----------------------------------------------------------------------------- state


def reset_epoch(instance: dg.DagsterInstance, job_name: str, key: str) -> str:
    """`<job reset>.<param set reset>`: changes with every reset that covers the set."""
    whole, one = RESET_PREFIX + job_name, f"{RESET_PREFIX}{job_name}/{key}"
    stored = instance.run_storage.get_cursor_values({whole, one})
    return f"{stored.get(whole, '0')}.{stored.get(one, '0')}"


def reset(instance: dg.DagsterInstance, job_name: str, key: str | None) -> None:
    """The next run of the param set `key` (of every set when None) starts from `initial`."""
    name = RESET_PREFIX + job_name + (f"/{key}" if key else "")
    instance.run_storage.set_cursor_values({name: str(time.time_ns())})


def current_values(
    instance: dg.DagsterInstance, job_name: str, scan: int = 500
) -> list[tuple[dict[str, Any], dg.DagsterRun, bool]]:
    """(params, newest successful run, still counted) per param set, newest first; a set
    whose newest run is of an older reset epoch is not counted (its next run: initial)."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(job_name=job_name, statuses=[dg.DagsterRunStatus.SUCCESS]),
        limit=scan,
    )
    seen: dict[str, tuple[dict[str, Any], dg.DagsterRun, bool]] = {}
    for run in runs:
        key = run.tags.get(KEY_TAG)
        if not key or key.split("@")[0] in seen:
            continue
        params_hash, epoch = key.split("@", 1)
        counted = epoch == reset_epoch(instance, job_name, params_hash)
        seen[params_hash] = (json.loads(run.tags.get(PARAMS_TAG, "{}")), run, counted)
    return list(seen.values())


def _tags(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    run = instance.get_run_by_id(run_id)
    return dict(run.tags) if run else {}


def _has_used(tags: Mapping[str, str], wanted: Mapping[str, Any]) -> bool:
    return all(USED_PREFIX + name in tags for name in wanted)


def _used(tags: Mapping[str, str]) -> list[tuple[str, str]]:
    return [(k[len(USED_PREFIX) :], v) for k, v in tags.items() if k.startswith(USED_PREFIX)]


# ----------------------------------------------------------------------------- checks


def check_last_values(ctx: Any, slots: Any) -> None:
    """`from` names an outputTable of the workflow and a column of its schema; a
    `lookback` needs a date or timestamp column (called from checks.check_workflow)."""
    from translators.errors import join_pointer

    tables = {slot.table: slot for slot in slots if slot.table}
    for name, spec in last_value_specs(ctx.variables).items():
        pointer = join_pointer("/variables", name)
        table, column = spec.from_.split(".", 1)
        slot = tables.get(table)
        if slot is None:
            known = ", ".join(sorted(tables)) or "none"
            ctx.report(
                f"{pointer}/from",
                f"lastValue '{name}' reads table '{table}', which no step makes",
                f"<outputTable>.<column> with an outputTable of this workflow ({known})",
            )
            continue
        if slot.schema is None:
            continue  # the step's own problem is reported already
        if column not in slot.schema:
            ctx.report(
                f"{pointer}/from",
                f"lastValue '{name}': table '{table}' has no column '{column}'",
                f"a column of {table}: {', '.join(slot.schema)}",
            )
        elif spec.lookback and not _is_time(slot.schema[column]):
            ctx.report(
                f"{pointer}/lookback",
                f"lastValue '{name}': lookback needs a date or timestamp, "
                f"{table}.{column} is {slot.schema[column]}",
                "no lookback, or a DATE/TIMESTAMP column",
            )


def _is_time(column_type: str) -> bool:
    return column_type.upper().startswith(("DATE", "TIMESTAMP"))
