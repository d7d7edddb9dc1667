"""A run whose worker is killed (SPEC 5.5): detected, marked FAILED ("worker lost"),
resumed from failure without re-running finished steps; its idempotency key is freed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.support.cli import workflows
from tests.support.http_server import LocalHTTPServer
from tests.support.jobs import write_defs
from tests.support.waiting import wait_for
from translators.instance_db import WORKERS, connect

STALL_SECONDS = 12
CRASH_WORKFLOW = {
    "settings": {"maxParallelSteps": 1},
    "steps": [
        {"id": "first", "service": "local", "operation": "echo", "params": {"what": "first"},
         "fieldMapping": {"path": "path"}, "outputTable": "firsts",
         "outputSchema": {"path": "VARCHAR"}},
        # Stalls on its first request only: the run is killed while it waits.
        {"id": "slow", "service": "local", "operation": "stall", "dependsOn": ["first"],
         "params": {"page": 1, "per_page": 3, "stall_at": 1, "stall_s": STALL_SECONDS},
         "dataPath": "results", "outputTable": "slow_rows",
         "outputSchema": {"id": "INTEGER", "name": "VARCHAR"}},
        {"sql": "SELECT count(*) AS n FROM slow_rows", "outputTable": "counted"},
    ],
}  # fmt: skip


def write_crash_defs(root: Path) -> Path:
    defs = write_defs(root, "app", {"crash": CRASH_WORKFLOW})
    service = {
        "name": "local",
        "baseUrl": "http://127.0.0.1:9/unused",
        "operations": {
            "echo": {"path": "/echo/{what}"},
            "stall": {"path": "/fragile-pages"},
        },
    }
    (defs / "services" / "local.json").write_text(json.dumps(service))
    return defs


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as srv:
        monkeypatch.setenv("SERVICE_LOCAL_BASE_URL", srv.url)
        yield srv


def use_postgres(home: Path, url: str) -> None:
    pg = url.replace("postgresql://", "postgresql+psycopg2://", 1)
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: '{pg}'\ntelemetry:\n  enabled: false\n"
    )


def stalled(server: LocalHTTPServer) -> bool:
    return bool(server.requests_to("/fragile-pages"))


def start_cli_run(defs: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "translators", "run", "app/crash", "--defs", str(defs), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


def kill_mid_step(proc: subprocess.Popen[str], server: LocalHTTPServer) -> dg.DagsterRun:
    """SIGKILLs the `workflows run` process (the run worker) while `slow` waits."""
    try:
        wait_for(lambda: stalled(server) or proc.poll() is not None, 120, "the slow step")
    finally:
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, out + err
    instance = dg.DagsterInstance.get()
    [run] = instance.get_runs(filters=dg.RunsFilter(job_name="app__crash"), limit=1)
    return run


def started_steps(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
    return {e.step_key for e in events if e.step_key}


@pytest.mark.parametrize("storage", ["sqlite", "postgres"])
def test_a_killed_cli_run_is_marked_failed_and_resumed_from_failure(
    storage: str,
    tmp_path: Path,
    server: LocalHTTPServer,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if storage == "postgres":
        use_postgres(Path(os.environ["DAGSTER_HOME"]), request.getfixturevalue("pg_app_url"))
    defs = write_crash_defs(tmp_path / "defs")
    monkeypatch.setenv("WORKFLOW_DEFS_DIR", str(defs))
    run = kill_mid_step(start_cli_run(defs, "--idempotency-key", "nightly"), server)
    assert run.status == dg.DagsterRunStatus.STARTED  # nobody has noticed yet

    listed = workflows("runs", "app/crash", "--defs", str(defs))
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if run.run_id in row)
    assert line.startswith("FAILED") and "worker lost" in line, line
    instance = dg.DagsterInstance.get()
    failed = instance.get_run_by_id(run.run_id)
    assert failed is not None and failed.status == dg.DagsterRunStatus.FAILURE

    # The resumed run carries the key: claiming it proves the dead run released it.
    resumed = workflows("resume", run.run_id, "--defs", str(defs))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    [retry] = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run.run_id}))
    assert retry.status == dg.DagsterRunStatus.SUCCESS
    assert retry.tags.get("idempotencyKey") == "nightly"
    assert started_steps(instance, run.run_id) == {"resolve_variables", "first", "slow"}
    assert started_steps(instance, retry.run_id) == {"slow", "counted"}
    assert len(server.requests_to("/echo/first")) == 1  # the finished step was not re-run
    assert len(server.requests_to("/fragile-pages")) == 2


def test_a_killed_run_frees_its_idempotency_key(
    tmp_path: Path, server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs = write_crash_defs(tmp_path / "defs")
    monkeypatch.setenv("WORKFLOW_DEFS_DIR", str(defs))
    dead = kill_mid_step(start_cli_run(defs, "--idempotency-key", "k"), server)
    again = workflows("run", "app/crash", "--defs", str(defs), "--idempotency-key", "k")
    assert again.returncode == 0, again.stdout + again.stderr
    instance = dg.DagsterInstance.get()
    lost = instance.get_run_by_id(dead.run_id)
    assert lost is not None and lost.status == dg.DagsterRunStatus.FAILURE
    [failure] = instance.all_logs(dead.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert "worker lost" in (failure.message or "")


def test_the_worker_is_recorded_and_checked_by_the_launcher(tmp_path: Path) -> None:
    from dagster._core.launcher import WorkerStatus

    from translators.run_launcher import WorkerCheckingRunLauncher
    from translators.run_worker import process_start

    instance = dg.DagsterInstance.get()
    launcher = WorkerCheckingRunLauncher()
    launcher.register_instance(instance)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        rows = {
            "alive": ("here", sleeper.pid, process_start(sleeper.pid), time.time()),
            "reused-pid": ("here", sleeper.pid, "another-boot:1", time.time()),
            "far-fresh": ("elsewhere", 1, "x", time.time()),
            "far-stale": ("elsewhere", 1, "x", time.time() - 120),
        }
        with connect(instance) as conn:
            for run_id, (host, pid, start, beat) in rows.items():
                conn.execute(
                    sa.insert(WORKERS).values(
                        run_id=run_id,
                        host=socket.gethostname() if host == "here" else host,
                        pid=pid,
                        process_start=start,
                        heartbeat=beat,
                    )
                )

        def status(run_id: str) -> WorkerStatus:
            run = dg.DagsterRun(job_name="j", run_id=run_id)
            return launcher.check_run_worker_health(run).status

        assert launcher.supports_check_run_worker_health
        assert status("alive") == WorkerStatus.RUNNING
        assert status("reused-pid") == WorkerStatus.FAILED
        assert status("far-fresh") == WorkerStatus.RUNNING
        assert status("far-stale") == WorkerStatus.FAILED
        assert status("never-recorded") == WorkerStatus.RUNNING
        sleeper.kill()
        sleeper.wait(timeout=10)
        result = launcher.check_run_worker_health(dg.DagsterRun(job_name="j", run_id="alive"))
        assert result.status == WorkerStatus.FAILED and "worker lost" in (result.msg or "")
    finally:
        sleeper.kill()
        sleeper.wait(timeout=10)


def test_two_cli_launches_with_one_key_run_once(
    tmp_path: Path, server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs = write_crash_defs(tmp_path / "defs")
    monkeypatch.setenv("WORKFLOW_DEFS_DIR", str(defs))
    procs = [start_cli_run(defs, "--idempotency-key", "same") for _ in range(2)]
    outputs = [proc.communicate(timeout=240) for proc in procs]
    codes = sorted(proc.returncode for proc in procs)
    assert codes == [0, 1], outputs
    refused = next(
        err for (_, err), proc in zip(outputs, procs, strict=True) if proc.returncode == 1
    )
    assert "idempotency key 'same' is still active" in refused
    instance = dg.DagsterInstance.get()
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"idempotencyKey": "same"}))
    assert sorted(r.status.value for r in runs) == ["CANCELED", "SUCCESS"]
    assert len(server.requests_to("/echo/first")) == 1
