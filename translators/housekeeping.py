"""Housekeeping: removes the table store folders of finished run lineages.

A run's tables live in `<table store>/<run_id>/` and its lineage's checkpoints in
`<table store>/<root run id>/checkpoints/`. A re-execution from failure (or the
continuation of a paused run) reads the tables of earlier runs of its lineage, so folders
go per lineage (a root run and all its re-executions), decided by its newest run:

- any run of the lineage queued or running, or the newest one PAUSED: kept;
- the newest run succeeded or was canceled: removed `WORKFLOWS_RETENTION_DAYS` (7) after
  it ended;
- the newest run failed: kept so it can be resumed, and removed
  `WORKFLOWS_FAILED_RETENTION_DAYS` (14, never less than the retention) after it failed;
- a folder named like a run id whose run the instance does not know (a deleted run) is
  removed once nothing in it changed for the retention. Nothing else is touched.

`plan_removals` decides without Dagster; `housekeeping_sensor` applies it hourly.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dagster as dg
from dagster._core.storage.dagster_run import FINISHED_STATUSES
from dagster._core.storage.tags import ROOT_RUN_ID_TAG

from resources.secrets import redact
from resources.table_store import TableStoreResource
from translators.run_status import workflow_status

RETENTION_ENV = "WORKFLOWS_RETENTION_DAYS"
FAILED_RETENTION_ENV = "WORKFLOWS_FAILED_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 7.0
DEFAULT_FAILED_RETENTION_DAYS = 14.0
# The tag a run paused at a long wait carries (SPEC 5.6); PAUSED from `workflow_status` too.
PAUSED_TAG = "workflow/paused_until"
SENSOR_NAME = "workflows_housekeeping"
DAY = 86_400.0
_RUN_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_BATCH = 200  # run ids per storage query: bounded SQL parameter lists
_ACTIVE = [status for status in dg.DagsterRunStatus if status not in FINISHED_STATUSES]

log = logging.getLogger("workflows.housekeeping")

State = Literal["active", "paused", "succeeded", "canceled", "failed"]


@dataclass(frozen=True)
class Retention:
    """How long (seconds) finished and failed lineages are kept after their newest run."""

    finished: float
    failed: float

    @classmethod
    def from_env(cls) -> Retention:
        finished = _days(RETENTION_ENV, DEFAULT_RETENTION_DAYS)
        failed = _days(FAILED_RETENTION_ENV, max(DEFAULT_FAILED_RETENTION_DAYS, finished / DAY))
        return cls(finished, max(failed, finished))


def _days(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default * DAY
    try:
        days = float(text)
    except ValueError:
        days = -1.0
    if not days >= 0:  # also refuses NaN
        raise ValueError(f"{name}={text!r}: expected a number of days >= 0 (e.g. 7 or 0.5)")
    return days * DAY


@dataclass(frozen=True)
class RunInfo:
    """What housekeeping needs of one run; `ended` is None while it has not ended."""

    run_id: str
    root_run_id: str
    state: State
    created: float
    ended: float | None


@dataclass(frozen=True)
class Folder:
    """A folder of the table store; `modified` is the newest mtime inside it."""

    name: str
    modified: float


@dataclass(frozen=True)
class Removal:
    name: str
    reason: str


def plan_removals(
    folders: Iterable[Folder], runs: Iterable[RunInfo], now: float, retention: Retention
) -> list[Removal]:
    """The folders to delete, each with why. Only folders named like a run id qualify."""
    lineages: dict[str, list[RunInfo]] = {}
    root_of: dict[str, str] = {}
    for run in runs:
        lineages.setdefault(run.root_run_id, []).append(run)
        root_of[run.run_id] = run.root_run_id
        root_of.setdefault(run.root_run_id, run.root_run_id)
    removals = []
    for folder in folders:
        if not _RUN_ID.match(folder.name):
            continue
        root = root_of.get(folder.name)
        if root is None:
            reason = _orphan_reason(folder, now, retention)
        else:
            reason = _lineage_reason(root, lineages[root], now, retention)
        if reason:
            removals.append(Removal(folder.name, reason))
    return removals


def _orphan_reason(folder: Folder, now: float, retention: Retention) -> str | None:
    idle = now - folder.modified
    if idle <= retention.finished:
        return None
    return f"no run {folder.name} in the instance; unchanged for {_age(idle)}"


def _lineage_reason(
    root: str, runs: Sequence[RunInfo], now: float, retention: Retention
) -> str | None:
    if any(run.state == "active" for run in runs):
        return None
    newest = max(runs, key=lambda run: run.created)
    if newest.state == "paused":
        return None  # its continuation reuses the lineage's tables
    ended = newest.ended if newest.ended is not None else newest.created
    keep = retention.failed if newest.state == "failed" else retention.finished
    if now - ended <= keep:
        return None
    return (
        f"lineage {root}: newest run {newest.run_id} {newest.state} {_age(now - ended)} ago "
        f"(kept {_age(keep)})"
    )


def _age(seconds: float) -> str:
    return f"{seconds / DAY:.1f} days"


def scan_folders(root: Path) -> list[Folder]:
    """The table store's run-id-named folders (never symlinks), with their newest mtime."""
    if not root.is_dir():
        return []
    folders = []
    for entry in root.iterdir():
        if _RUN_ID.match(entry.name) and entry.is_dir() and not entry.is_symlink():
            folders.append(Folder(entry.name, _newest_mtime(entry)))
    return sorted(folders, key=lambda folder: folder.name)


def _newest_mtime(folder: Path) -> float:
    newest = folder.lstat().st_mtime
    for parent, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            try:
                newest = max(newest, os.lstat(os.path.join(parent, name)).st_mtime)
            except FileNotFoundError:
                continue  # a step removing its temporary file right now
    return newest


def known_runs(instance: dg.DagsterInstance, names: Sequence[str]) -> list[RunInfo]:
    """Every run of every lineage that one of `names` belongs to (as run or root id),
    and every active run."""
    records = _lineage_records(instance, names)
    # Lineages are found by Dagster's root run id tag, which the UI, run retries and our
    # CLI set; the Python API's `execute_job` re-executions lack it, so an active run is
    # looked at whatever its tags.
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=_ACTIVE)):
        records[record.dagster_run.run_id] = record
    # A folder of a re-execution: fetch the rest of its lineage too.
    roots = {_root(record.dagster_run) for record in records.values()} - set(names)
    records.update(_lineage_records(instance, sorted(roots)))
    return [_run_info(record) for record in records.values()]


def _lineage_records(instance: dg.DagsterInstance, ids: Sequence[str]) -> dict[str, dg.RunRecord]:
    """The runs with one of `ids` as run id or as root run id."""
    records: dict[str, dg.RunRecord] = {}
    for start in range(0, len(ids), _BATCH):
        batch = list(ids[start : start + _BATCH])
        for filters in (
            dg.RunsFilter(run_ids=batch),
            dg.RunsFilter(tags={ROOT_RUN_ID_TAG: batch}),
        ):
            for record in instance.get_run_records(filters=filters):
                records[record.dagster_run.run_id] = record
    return records


def _root(run: dg.DagsterRun) -> str:
    return run.root_run_id or run.run_id


def _run_info(record: dg.RunRecord) -> RunInfo:
    run = record.dagster_run
    created = record.create_timestamp.timestamp()
    # A run canceled before it started has no end time; its last update is when it ended.
    ended = record.end_time
    if ended is None and run.is_finished:
        ended = record.update_timestamp.timestamp()
    return RunInfo(run.run_id, _root(run), _state(run), created, ended)


def _state(run: dg.DagsterRun) -> State:
    if not run.is_finished:
        return "active"
    if PAUSED_TAG in run.tags or workflow_status(run) == "PAUSED":
        return "paused"
    if run.status == dg.DagsterRunStatus.SUCCESS:
        return "succeeded"
    return "failed" if run.status == dg.DagsterRunStatus.FAILURE else "canceled"


@dataclass
class Report:
    removed: list[Removal]
    errors: list[str]
    dry_run: bool

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        lines = [f"{verb} {r.name}: {r.reason}" for r in self.removed]
        lines += [f"could not remove {error}" for error in self.errors]
        return lines or ["nothing to remove"]


def housekeep(
    instance: dg.DagsterInstance,
    root: Path,
    *,
    retention: Retention | None = None,
    now: float | None = None,
    dry_run: bool = False,
) -> Report:
    """Plans and (unless `dry_run`) deletes; a folder that cannot go is reported, not fatal."""
    retention = retention or Retention.from_env()
    folders = scan_folders(root)
    runs = known_runs(instance, [folder.name for folder in folders])
    now = time.time() if now is None else now
    plan = plan_removals(folders, runs, now, retention)
    report = Report([], [], dry_run)
    for removal in plan:
        if not dry_run and not _still_removable(instance, root, removal, runs, now, retention):
            continue
        error = None if dry_run else _delete(root / removal.name)
        if error:
            report.errors.append(redact(f"{removal.name}: {error}"))
        else:
            report.removed.append(removal)
    return report


def _still_removable(
    instance: dg.DagsterInstance,
    root: Path,
    removal: Removal,
    runs: Sequence[RunInfo],
    now: float,
    retention: Retention,
) -> bool:
    # A resume may have been launched since the plan was made: decide once more.
    if not (root / removal.name).is_dir():
        return False
    lineage = {run.root_run_id for run in runs if removal.name in (run.run_id, run.root_run_id)}
    ids = [removal.name, *(run.run_id for run in runs if run.root_run_id in lineage)]
    folder = Folder(removal.name, _newest_mtime(root / removal.name))
    return bool(plan_removals([folder], known_runs(instance, ids), now, retention))


def _delete(folder: Path) -> str | None:
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return None


# Objects in a bucket expire by the bucket's lifecycle rules, which need no process.
OBJECT_STORAGE_SKIP = (
    "the table store is object storage (s3://...): expire its objects with a lifecycle "
    "rule of the bucket; housekeeping removes local folders only"
)


@dg.sensor(
    name=SENSOR_NAME,
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Removes table store folders of finished run lineages after "
    f"${RETENTION_ENV} days (failed ones after ${FAILED_RETENTION_ENV}).",
)
def housekeeping_sensor(
    context: dg.SensorEvaluationContext, table_store: TableStoreResource
) -> dg.SensorResult:
    # `table_store` is the resource of that key (TABLE_STORE_KEY): the jobs' own root.
    if not table_store.is_local():
        return dg.SensorResult(skip_reason=OBJECT_STORAGE_SKIP)
    report = housekeep(context.instance, table_store.root_path())
    for line in report.lines():
        context.log.info(line)
    summary = {
        "count": len(report.removed),
        "removed": [r.name for r in report.removed[:_BATCH]],
        "errors": report.errors,
        "at": time.time(),
    }
    message = f"removed {len(report.removed)} folder(s), {len(report.errors)} error(s)"
    return dg.SensorResult(skip_reason=message, cursor=json.dumps(summary))


def cli(dry_run: bool) -> int:
    """`workflows housekeeping [--dry-run]`: one pass now, against the CLI's instance."""
    from translators.cli_home import ensure_dagster_home

    try:
        retention = Retention.from_env()
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    if not TableStoreResource().is_local():
        print(OBJECT_STORAGE_SKIP)
        return 0
    ensure_dagster_home()
    instance = dg.DagsterInstance.get()
    report = housekeep(
        instance, TableStoreResource().root_path(), retention=retention, dry_run=dry_run
    )
    print("\n".join(report.lines()))
    return 1 if report.errors else 0
