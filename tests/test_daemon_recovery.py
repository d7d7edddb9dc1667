"""Under a real `dagster-daemon` with the project's `dagster.yaml` (run queue, the worker
checking launcher, run monitoring, run retries): a queued run whose worker is SIGKILLed
is marked FAILED within a minute and retried from failure to success (SPEC 5.5)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.support.daemon import BIN, INSTANCE_CONFIGS, running_daemon, use_instance_config
from tests.support.http_server import LocalHTTPServer
from tests.support.local_service import serving
from tests.support.waiting import wait_for
from tests.test_crash_recovery import stalled, started_steps, write_crash_defs
from translators.instance_db import WORKERS, connect


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHTTPServer]:
    with serving(monkeypatch) as srv:
        yield srv


@pytest.fixture(params=INSTANCE_CONFIGS)
def daemon(
    tmp_path: Path,
    server: LocalHTTPServer,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path]:
    """The daemon on the project's dagster.yaml (SQLite) and on deploy/dagster.yaml
    (PostgreSQL), as the README's deployment section runs it."""
    defs = write_crash_defs(tmp_path / "defs")
    monkeypatch.setenv("WORKFLOW_DEFS_DIR", str(defs))
    use_instance_config(request.param, request, monkeypatch)
    with running_daemon(tmp_path) as workspace:
        yield workspace


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    with connect(instance) as conn:
        return conn.execute(
            sa.select(WORKERS.c.pid).where(WORKERS.c.run_id == run_id)
        ).scalar_one_or_none()


def test_a_queued_run_whose_worker_dies_is_retried_from_failure(
    daemon: Path, server: LocalHTTPServer
) -> None:
    config = {"ops": {"resolve_variables": {"config": {"params": {}, "timezone": "UTC"}}}}
    launched = subprocess.run(
        [str(BIN / "dagster"), "job", "launch", "-w", str(daemon), "-j", "app__crash",
         "--config-json", json.dumps(config)],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )  # fmt: skip
    assert launched.returncode == 0, launched.stdout + launched.stderr
    instance = dg.DagsterInstance.get()
    [run] = instance.get_runs(filters=dg.RunsFilter(job_name="app__crash"))
    wait_for(lambda: stalled(server), 120, "the slow step of the queued run")
    pid = wait_for(lambda: worker_pid(instance, run.run_id), 30, "the recorded worker")
    os.kill(pid, signal.SIGKILL)

    def failed() -> bool:
        current = instance.get_run_by_id(run.run_id)
        return current is not None and current.status == dg.DagsterRunStatus.FAILURE

    wait_for(failed, 60, "the run to be marked FAILED")

    def retried() -> dg.DagsterRun | None:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run.run_id}))
        return next((r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS), None)

    retry = wait_for(retried, 150, "the automatic retry to succeed")
    assert started_steps(instance, retry.run_id) == {"slow", "counted"}
    assert len(server.requests_to("/echo/first")) == 1
