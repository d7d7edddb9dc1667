"""Long waits (SPEC 3.6, 5.6): a wait above `inlineWaitMaxSeconds` ends the run PAUSED
with a tag saying until when, holding no process; its continuation (by hand with
`workflows resume`, or from the resume sensor under a real `dagster-daemon`) reuses the
finished tables, shows RESUMING while it runs, and writes the final rows exactly once."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from tests.support.app_tables import execute, rows
from tests.support.cli import workflows
from tests.support.daemon import BIN, INSTANCE_CONFIGS, running_daemon, use_instance_config
from tests.support.http_server import LocalHTTPServer
from tests.support.jobs import write_defs
from tests.support.waiting import wait_for
from tests.test_crash_recovery import stalled, started_steps
from tests.test_daemon_recovery import worker_pid
from translators import cli_runs
from translators.pause import PAUSED_UNTIL_TAG
from translators.run_coordinator import active_run_with_key
from translators.run_status import workflow_status
from translators.run_worker import process_start

JOB = "app__later"
STALL_SECONDS = 15


def later_workflow(duration: str) -> dict:
    """Rows, a wait above the inline limit of 1 s, a slow call, the rows persisted."""
    return {
        "settings": {"maxParallelSteps": 1, "inlineWaitMaxSeconds": 1},
        "steps": [
            {"sql": "SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, 'c')) AS t(id, name)",
             "outputTable": "picked"},
            {"id": "hold", "wait": {"duration": duration}},
            # Stalls on its first request only: the continuation is seen RESUMING meanwhile.
            {"id": "slow", "service": "local", "operation": "stall",
             "params": {"page": 1, "per_page": 3, "stall_at": 1, "stall_s": STALL_SECONDS},
             "dataPath": "results", "outputTable": "slow_rows",
             "outputSchema": {"id": "INTEGER", "name": "VARCHAR"}},
            {"id": "save", "persistToDatabase": {
                "appId": "app", "tableName": "saved", "sourceTable": "picked", "mode": "append",
                "fieldMapping": {"id": "id", "name": "name"}}},
        ],
    }  # fmt: skip


@pytest.fixture
def setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_app_url: str
) -> Iterator[tuple[Path, str, LocalHTTPServer]]:
    defs = write_defs(
        tmp_path / "defs", "app", {"later": later_workflow("5s"), "inAnHour": later_workflow("1h")}
    )
    service = {"name": "local", "baseUrl": "http://127.0.0.1:9/unused",
               "operations": {"stall": {"path": "/fragile-pages"}}}  # fmt: skip
    (defs / "services" / "local.json").write_text(json.dumps(service))
    monkeypatch.setenv("WORKFLOW_DEFS_DIR", str(defs))
    monkeypatch.setenv("APP_DB_URL", sqlite_app_url)
    execute(sqlite_app_url, "CREATE TABLE saved (id INTEGER, name TEXT)")
    with LocalHTTPServer() as server:
        monkeypatch.setenv("SERVICE_LOCAL_BASE_URL", server.url)
        yield defs, sqlite_app_url, server


def latest_run(instance: dg.DagsterInstance, job: str = JOB) -> dg.DagsterRun:
    return instance.get_runs(filters=dg.RunsFilter(job_name=job), limit=1)[0]


def children(instance: dg.DagsterInstance, run_id: str) -> list[dg.DagsterRun]:
    return instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))


def line_of(listing: str, run_id: str) -> str:
    return next(line for line in listing.splitlines() if run_id in line)


def assert_paused(
    instance: dg.DagsterInstance, run: dg.DagsterRun, since: float, seconds: int = 5
) -> float:
    """The run stopped at the wait: PAUSED, until `seconds` after the wait began."""
    assert workflow_status(run) == "PAUSED", run.status
    assert run.status == dg.DagsterRunStatus.FAILURE
    until = dt.datetime.fromisoformat(run.tags[PAUSED_UNTIL_TAG]).timestamp()
    assert since + seconds <= until <= time.time() + seconds
    assert run.tags.get("dagster/will_retry") in (None, "false"), "no automatic run retry"
    assert started_steps(instance, run.run_id) == {"resolve_variables", "picked", "hold"}
    return until


def test_a_long_wait_pauses_and_is_resumed_by_hand_with_now(setup, capsys) -> None:
    defs, url, server = setup
    since = time.time()
    first = workflows("run", "app/inAnHour", "--defs", str(defs), "--idempotency-key", "k1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "PAUSED until" in first.stdout, first.stdout
    instance = dg.DagsterInstance.get()
    paused = latest_run(instance, "app__inAnHour")
    until = assert_paused(instance, paused, since, 3600)
    # No process is held: the run worker (this `workflows run`) is gone, nothing waits.
    pid = worker_pid(instance, paused.run_id)
    assert pid is not None and process_start(pid) is None
    assert rows(url, "SELECT count(*) FROM saved") == [(0,)]

    # Not due yet: refused without --now; the paused run holds its idempotency key.
    assert cli_runs.resume(paused.run_id, now=False) == 1
    assert "--now" in capsys.readouterr().err
    assert children(instance, paused.run_id) == []
    assert active_run_with_key(instance, "k1") == paused.run_id
    again = workflows("run", "app/inAnHour", "--defs", str(defs), "--idempotency-key", "k1")
    assert again.returncode == 1 and "still active" in again.stderr, again.stdout + again.stderr

    resumed = subprocess.Popen(
        [sys.executable, "-m", "translators", "resume", paused.run_id, "--now",
         "--defs", str(defs)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )  # fmt: skip
    try:
        wait_for(lambda: stalled(server) or resumed.poll() is not None, 120, "the continuation")
        listed = workflows("runs", "app/inAnHour", "--defs", str(defs))
        # The continuation took the key over from its paused parent.
        holder = active_run_with_key(instance, "k1")
    finally:
        out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, out + err
    [continuation] = children(instance, paused.run_id)
    assert holder == continuation.run_id
    assert line_of(listed.stdout, continuation.run_id).startswith("RESUMING"), listed.stdout
    paused_line = line_of(listed.stdout, paused.run_id)
    assert paused_line.startswith("PAUSED") and "until" in paused_line, paused_line
    [hold] = [
        e
        for e in instance.all_logs(continuation.run_id, of_type=dg.DagsterEventType.STEP_OUTPUT)
        if e.step_key == "hold"
    ]
    assert "skipped until" in hold.dagster_event.step_output_data.metadata, "--now skips the rest"
    assert hold.timestamp < until, "--now continued before the wait was due"
    assert continuation.status == dg.DagsterRunStatus.SUCCESS
    assert started_steps(instance, continuation.run_id) == {"hold", "slow", "save"}
    assert rows(url, "SELECT id, name FROM saved ORDER BY id") == [(1, "a"), (2, "b"), (3, "c")]
    assert active_run_with_key(instance, "k1") is None, "the key is free once it finished"
    twice = workflows("resume", paused.run_id, "--now", "--defs", str(defs))
    assert twice.returncode == 1 and continuation.run_id in twice.stderr, twice.stderr
    assert rows(url, "SELECT count(*) FROM saved") == [(3,)]


def test_a_paused_run_is_resumed_by_hand_when_due(setup) -> None:
    defs, url, _server = setup
    since = time.time()
    first = workflows("run", "app/later", "--defs", str(defs))
    assert first.returncode == 0, first.stdout + first.stderr
    instance = dg.DagsterInstance.get()
    paused = latest_run(instance)
    until = assert_paused(instance, paused, since)
    time.sleep(max(0.0, until - time.time()) + 0.5)
    resumed = workflows("resume", paused.run_id, "--defs", str(defs))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    [continuation] = children(instance, paused.run_id)
    assert continuation.status == dg.DagsterRunStatus.SUCCESS
    assert workflow_status(continuation) == "COMPLETED"
    assert started_steps(instance, continuation.run_id) == {"hold", "slow", "save"}
    assert rows(url, "SELECT id, name FROM saved ORDER BY id") == [(1, "a"), (2, "b"), (3, "c")]


@pytest.fixture(params=INSTANCE_CONFIGS)
def daemon(
    tmp_path: Path, setup, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """The daemon on the project's dagster.yaml (SQLite) and on deploy/dagster.yaml
    (PostgreSQL), as the README's deployment section runs it."""
    use_instance_config(request.param, request, monkeypatch)
    with running_daemon(tmp_path) as workspace:
        yield workspace


def test_the_resume_sensor_continues_a_paused_run_under_the_daemon(daemon: Path, setup) -> None:
    defs, url, server = setup
    config = {"ops": {"resolve_variables": {"config": {"params": {}, "timezone": "UTC"}}}}
    since = time.time()
    launched = subprocess.run(
        [str(BIN / "dagster"), "job", "launch", "-w", str(daemon), "-j", JOB,
         "--config-json", json.dumps(config)],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )  # fmt: skip
    assert launched.returncode == 0, launched.stdout + launched.stderr
    instance = dg.DagsterInstance.get()

    def paused_run() -> dg.DagsterRun | None:
        run = instance.get_runs(filters=dg.RunsFilter(job_name=JOB), limit=1)[0]
        return run if run.status == dg.DagsterRunStatus.FAILURE else None

    paused = wait_for(paused_run, 120, "the run to pause")
    until = assert_paused(instance, paused, since)
    pid = wait_for(lambda: worker_pid(instance, paused.run_id), 10, "the recorded worker")
    wait_for(lambda: process_start(pid) is None, 30, "the run worker process to exit")

    continuation = wait_for(lambda: children(instance, paused.run_id), 90, "the sensor")[0]
    assert continuation.tags.get("workflow/launched_by") == "resume sensor"
    record = instance.get_run_record_by_id(continuation.run_id)
    assert record is not None and record.create_timestamp.timestamp() >= until
    wait_for(lambda: stalled(server), 120, "the continuation to reach the slow step")
    listed = workflows("runs", "app/later", "--defs", str(defs))
    assert line_of(listed.stdout, continuation.run_id).startswith("RESUMING"), listed.stdout
    assert line_of(listed.stdout, paused.run_id).startswith("PAUSED"), listed.stdout

    def finished() -> dg.DagsterRun | None:
        run = instance.get_run_by_id(continuation.run_id)
        return run if run is not None and run.is_finished else None

    done = wait_for(finished, 120, "the continuation to finish")
    assert done.status == dg.DagsterRunStatus.SUCCESS
    assert started_steps(instance, done.run_id) == {"hold", "slow", "save"}
    assert rows(url, "SELECT id, name FROM saved ORDER BY id") == [(1, "a"), (2, "b"), (3, "c")]
    time.sleep(2)  # no second continuation, no automatic retry of the paused run
    assert [r.run_id for r in children(instance, paused.run_id)] == [continuation.run_id]


def test_check_warns_about_a_literal_wait_above_the_inline_limit(tmp_path: Path) -> None:
    later = later_workflow("2h")
    later["steps"].append({"id": "until", "wait": {"until": "2999-01-01T00:00:00Z"}})
    later["steps"].append({"id": "past", "wait": {"until": "2000-01-01T00:00:00Z"}})
    later["steps"].append({"id": "templated", "wait": {"until": "{{var.when}}"}})
    later["variables"] = {"when": {"type": "param", "default": "2999-01-01T00:00:00Z"}}
    short = {"steps": [{"sql": "SELECT 1 AS x", "outputTable": "x"}, {"wait": {"duration": "5m"}}]}
    defs = write_defs(tmp_path / "defs", "app", {"later": later, "short": short})
    (defs / "services" / "local.json").write_text(
        json.dumps(
            {
                "name": "local",
                "baseUrl": "http://127.0.0.1:9",
                "operations": {"stall": {"path": "/x"}},
            }
        )
    )
    result = workflows("check", str(defs))
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stdout.splitlines() if "warning:" in line]
    assert len(warnings) == 2, result.stdout
    assert warnings[0].startswith("apps/app/workflows/later.json#/steps/1/wait/duration: warning:")
    assert "(7200s) is longer than settings.inlineWaitMaxSeconds (1s)" in warnings[0]
    assert "resume sensor" in warnings[0]
    assert warnings[1].startswith("apps/app/workflows/later.json#/steps/4/wait/until: warning:")
    assert "OK:" in result.stdout


def test_a_paused_run_holds_skip_if_running_until_its_continuation_finished() -> None:
    from tests.support.jobs import REAL_DEFS, load
    from tests.test_schedules import TICK, evaluate
    from translators.pause import PAUSE_TAG, RESUMED_AS_TAG

    _, defs = load(REAL_DEFS)
    job = defs.resolve_job_def("demo_shop__syncEnrichedOrders")
    with dg.instance_for_test() as instance:
        paused = instance.create_run_for_job(
            job,
            status=dg.DagsterRunStatus.FAILURE,
            tags={PAUSE_TAG: "paused", PAUSED_UNTIL_TAG: "2999-01-01T00:00:00+00:00"},
        )
        assert workflow_status(paused) == "PAUSED"
        result = evaluate(defs, "demo_shop__daily_order_sync", instance, TICK)
        assert not result.run_requests and "still active" in result.skip_message
        done = instance.create_run_for_job(job, status=dg.DagsterRunStatus.SUCCESS)
        instance.add_run_tags(paused.run_id, {PAUSE_TAG: "resumed", RESUMED_AS_TAG: done.run_id})
        assert evaluate(defs, "demo_shop__daily_order_sync", instance, TICK).run_requests
