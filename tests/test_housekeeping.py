"""Housekeeping removes the table store folders of finished run lineages after the
retention, keeps failed ones until resumed or expired and active ones always, removes
orphans of deleted runs and nothing else."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.runs.schema import RunsTable
from dagster._core.storage.tags import PARENT_RUN_ID_TAG, ROOT_RUN_ID_TAG

from resources.table_store import TableStoreResource
from tests.support.app_tables import execute
from tests.support.cli import workflows
from tests.support.jobs import load, write_defs
from translators.housekeeping import (
    DAY,
    PAUSED_TAG,
    SENSOR_NAME,
    Folder,
    Retention,
    RunInfo,
    housekeep,
    plan_removals,
)
from translators.job_builder import TABLE_STORE_KEY
from translators.run_creation import reconstructable
from translators.schedules import run_config_for

NOW = 1_800_000_000.0
RETENTION = Retention(finished=7 * DAY, failed=14 * DAY)
OK, LATE, PAUSE = "app__ok", "app__late", "app__pause"
WORKFLOWS: dict[str, dict] = {
    "ok": {
        "settings": {"maxParallelSteps": 1},
        "steps": [{"sql": "SELECT 1 AS x", "outputTable": "one"}],
    },
    "pause": {  # pauses at the wait: a long one ends the run PAUSED (SPEC 5.6)
        "settings": {"maxParallelSteps": 1, "inlineWaitMaxSeconds": 1},
        "steps": [
            {"sql": "SELECT 1 AS x", "outputTable": "before"},
            {"id": "hold", "wait": {"duration": "1h"}},
            {"sql": "SELECT 2 AS x", "outputTable": "after"},
        ],
    },
    "late": {
        "settings": {"maxParallelSteps": 1},
        "steps": [
            {"sql": "SELECT 1 AS x", "outputTable": "first"},
            {
                "importFromDatabase": {"appId": "app", "tableName": "late"},
                "outputTable": "late_rows",
                "outputSchema": {"id": "INTEGER"},
                "dependsOn": ["first"],
            },
        ],
    },
}


def ids(count: int) -> list[str]:
    return [str(uuid.UUID(int=n + 1)) for n in range(count)]


def run(run_id: str, state: str, days_ago: float, root: str | None = None) -> RunInfo:
    ended = None if state == "active" else NOW - days_ago * DAY
    created = NOW - days_ago * DAY - 60
    return RunInfo(run_id, root or run_id, state, created, ended)  # type: ignore[arg-type]


def removed(runs: list[RunInfo], folders: list[Folder]) -> set[str]:
    return {r.name for r in plan_removals(folders, runs, NOW, RETENTION)}


def test_plan_follows_the_newest_run_of_each_lineage() -> None:
    a, b, c, d, e, e2, f, f2, g, g2, h = ids(11)
    runs = [
        run(a, "succeeded", 8),  # old success: goes
        run(b, "succeeded", 6),  # recent: stays
        run(c, "failed", 8),  # failed, not expired: stays
        run(d, "failed", 15),  # failed and expired: goes
        run(e, "failed", 20),  # failed, then resumed successfully long ago: both go
        run(e2, "succeeded", 19, root=e),
        run(f, "succeeded", 30),  # old success, a resume is queued: stays
        run(f2, "active", 20, root=f),  # (queued for 20 days)
        run(g, "paused", 30),  # paused at a long wait: stays
        run(h, "canceled", 8),  # canceled long ago: goes
    ]
    runs += [run(g2, "succeeded", 9, root=g)]  # ... unless its continuation finished
    folders = [Folder(r.run_id, NOW - 40 * DAY) for r in runs]
    assert removed(runs, folders) == {a, d, e, e2, g, g2, h}
    assert removed(runs[:-1], folders[:-1]) == {a, d, e, e2, h}


def test_a_failed_newest_run_keeps_its_lineage_whatever_came_before() -> None:
    root, failed = ids(2)
    runs = [run(root, "succeeded", 30), run(failed, "failed", 10, root=root)]
    folders = [Folder(root, NOW - 30 * DAY), Folder(failed, NOW - 10 * DAY)]
    assert removed(runs, folders) == set()


def test_orphans_go_after_the_retention_and_other_names_never() -> None:
    old, recent = ids(2)
    folders = [
        Folder(old, NOW - 8 * DAY),
        Folder(recent, NOW - 6 * DAY),
        Folder(".spill", NOW - 99 * DAY),
        Folder("notes", NOW - 99 * DAY),
        Folder("ABCDEF01-0000-0000-0000-000000000001", NOW - 99 * DAY),
    ]
    plan = plan_removals(folders, [], NOW, RETENTION)
    assert [r.name for r in plan] == [old]
    assert "no run" in plan[0].reason and "8.0 days" in plan[0].reason


def test_retention_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Retention.from_env() == Retention(7 * DAY, 14 * DAY)
    monkeypatch.setenv("WORKFLOWS_RETENTION_DAYS", "30")
    assert Retention.from_env() == Retention(30 * DAY, 30 * DAY), "failed never shorter"
    monkeypatch.setenv("WORKFLOWS_FAILED_RETENTION_DAYS", "60")
    assert Retention.from_env() == Retention(30 * DAY, 60 * DAY)
    monkeypatch.setenv("WORKFLOWS_RETENTION_DAYS", "a week")
    with pytest.raises(ValueError, match="WORKFLOWS_RETENTION_DAYS='a week': expected a number"):
        Retention.from_env()


# -- against a real instance, real runs and a real table store --------------------------


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_app_url: str):
    defs_dir = write_defs(tmp_path / "defs", "app", WORKFLOWS)
    monkeypatch.setenv("WORKFLOW_DEFS_DIR", str(defs_dir))
    monkeypatch.setenv("APP_DB_URL", sqlite_app_url)
    execute(sqlite_app_url, "CREATE TABLE other (id INTEGER)")  # the file; `late` comes later
    _, defs = load(defs_dir)
    (tmp_path / "instance").mkdir()
    # Sets DAGSTER_HOME to that folder too, so the CLI below uses the same instance.
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        yield defs, instance, sqlite_app_url


def execute_new(instance: dg.DagsterInstance, job: str) -> dg.ExecutionResult:
    with dg.execute_job(
        recon(job), instance, run_config=run_config_for({}, None, "UTC"), raise_on_error=False
    ) as result:
        return result


def recon(job: str) -> dg.ReconstructableJob:
    return reconstructable(job)


def resume(instance: dg.DagsterInstance, job: str, parent: str) -> dg.ExecutionResult:
    options = dg.ReexecutionOptions.from_failure(parent, instance)
    with dg.execute_job(recon(job), instance, reexecution_options=options) as result:
        return result


def age_runs(instance: dg.DagsterInstance, days: float, *run_ids: str) -> None:
    """Moves the runs' timestamps `days` back, in the instance's own SQLite storage."""
    shift = days * DAY
    for record in instance.get_run_records(dg.RunsFilter(run_ids=list(run_ids))):
        values = {
            "create_timestamp": _naive(record.create_timestamp.timestamp() - shift),
            "update_timestamp": _naive(record.update_timestamp.timestamp() - shift),
        }
        for column in ("start_time", "end_time"):
            if getattr(record, column) is not None:
                values[column] = getattr(record, column) - shift
        with instance.run_storage.connect() as conn:  # type: ignore[attr-defined]
            conn.execute(
                RunsTable.update()
                .where(RunsTable.c.run_id == record.dagster_run.run_id)
                .values(**values)
            )


def _naive(timestamp: float):
    import datetime as dt

    return dt.datetime.fromtimestamp(timestamp, dt.UTC).replace(tzinfo=None)


def age_folder(folder: Path, days: float) -> None:
    when = time.time() - days * DAY
    for parent, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            os.utime(os.path.join(parent, name), (when, when))
    os.utime(folder, (when, when))


def test_the_sensor_removes_what_expired_and_keeps_the_rest(world) -> None:
    defs, instance, url = world
    store = TableStoreResource().root_path()
    old_ok, new_ok = execute_new(instance, OK).run_id, execute_new(instance, OK).run_id
    failed, expired, resumed = (execute_new(instance, LATE).run_id for _ in range(3))
    execute(url, "CREATE TABLE late (id INTEGER)")
    resumed_child = resume(instance, LATE, resumed).run_id
    queued_root = execute_new(instance, OK).run_id
    queued = instance.create_run_for_job(
        job_def=defs.resolve_job_def(OK),
        status=dg.DagsterRunStatus.NOT_STARTED,  # PENDING: created, not yet running
        tags={ROOT_RUN_ID_TAG: queued_root, PARENT_RUN_ID_TAG: queued_root},
        root_run_id=queued_root,
        parent_run_id=queued_root,
    ).run_id
    started = instance.create_run_for_job(
        job_def=defs.resolve_job_def(OK), status=dg.DagsterRunStatus.STARTED
    ).run_id
    paused = execute_new(instance, PAUSE).run_id
    assert PAUSED_TAG in instance.get_run_by_id(paused).tags
    age_runs(instance, 8, old_ok, failed, resumed, resumed_child, queued_root)
    age_runs(instance, 30, paused, queued, started)  # past every retention: kept as active
    age_runs(instance, 20, expired)
    for run_id in (started, queued):
        (store / run_id).mkdir()
    checkpoints = [store / r / "checkpoints" / "fetch" for r in (failed, resumed, queued_root)]
    for folder in checkpoints:
        folder.mkdir(parents=True)
        (folder / "journal.jsonl").write_text('{"seq": 1, "state": null, "rows": []}\n')
    orphan, young_orphan = ids(2)
    for name in (orphan, young_orphan, "not-a-run"):
        (store / name).mkdir()
        (store / name / "t.parquet").write_bytes(b"x")
    (store / "README.txt").write_text("mine")
    (store / str(uuid.uuid4())).write_text("a file named like a run")
    for path in [*store.iterdir()]:
        if path.name not in (new_ok, young_orphan):
            age_folder(path, 30) if path.is_dir() else os.utime(path, (0, 0))
    before = {p.name for p in store.iterdir()}
    assert {old_ok, new_ok, failed, expired, resumed, resumed_child, paused} <= before

    sensor = defs.get_repository_def().get_sensor_def(SENSOR_NAME)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    # The resource the code location binds (as the daemon does: see the test below).
    store_resource = defs.get_repository_def().get_top_level_resources()[TABLE_STORE_KEY]
    context = dg.build_sensor_context(
        instance=instance, definitions=defs, resources={TABLE_STORE_KEY: store_resource}
    )
    tick = sensor.evaluate_tick(context)

    gone = {old_ok, expired, resumed, resumed_child, orphan}
    assert {p.name for p in store.iterdir()} == before - gone
    assert all(folder.exists() == (folder.parts[-3] != resumed) for folder in checkpoints)
    assert (store / failed / "first.parquet").exists(), "a failed run stays until expiry"
    assert (store / "README.txt").read_text() == "mine"
    report = json.loads(tick.cursor or "{}")
    assert sorted(report["removed"]) == sorted(gone) and report["count"] == len(gone)
    assert tick.skip_message == f"removed {len(gone)} folder(s), 0 error(s)"


def test_a_failed_run_is_kept_until_it_expires(world) -> None:
    _, instance, _ = world

    store = TableStoreResource().root_path()
    failed = execute_new(instance, LATE).run_id
    age_runs(instance, 13, failed)
    assert housekeep(instance, store).removed == []
    age_runs(instance, 2, failed)
    report = housekeep(instance, store)
    assert [r.name for r in report.removed] == [failed]
    assert "newest run" in report.removed[0].reason and "failed 15.0 days ago" in (
        report.removed[0].reason
    )
    assert not (store / failed).exists()


def test_cli_dry_run_then_remove(world) -> None:
    _, instance, _ = world
    store = TableStoreResource().root_path()
    old = execute_new(instance, OK).run_id
    age_runs(instance, 8, old)

    dry = workflows("housekeeping", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would remove {old}: lineage {old}: newest run {old} succeeded 8.0 days" in dry.stdout
    assert (store / old).exists()
    real = workflows("housekeeping")
    assert real.returncode == 0, real.stderr
    assert f"removed {old}:" in real.stdout and not (store / old).exists()
    again = workflows("housekeeping")
    assert again.stdout.strip() == "nothing to remove"


def test_the_code_location_evaluates_the_sensor_as_the_daemon_does(world) -> None:
    from dagster._grpc.impl import get_external_sensor_execution

    defs, instance, _ = world
    old = execute_new(instance, OK).run_id
    age_runs(instance, 8, old)
    result = get_external_sensor_execution(
        defs.get_repository_def(),
        None,  # type: ignore[arg-type]  # only shown in logs
        instance.get_ref(),
        SENSOR_NAME,
        None,
        None,
        None,
        None,
        None,
    )
    assert getattr(result, "skip_message", None) == "removed 1 folder(s), 0 error(s)", result
    assert not (TableStoreResource().root_path() / old).exists()


def test_cli_refuses_a_bad_retention(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKFLOWS_RETENTION_DAYS", "-1")
    result = workflows("housekeeping")
    assert result.returncode == 1
    assert "WORKFLOWS_RETENTION_DAYS='-1': expected a number of days >= 0" in result.stderr
