"""Under a real `dagster-daemon` with the project's `dagster.yaml` (run queue, the worker
checking launcher, run monitoring, run retries), and with deploy/dagster.yaml on
PostgreSQL as the README deploys it (SPEC 5.5): a queued run's worker is SIGKILLed in the
middle of a pagination, its retry's worker in the middle of a forEach of a mutation. Each
is marked FAILED ("worker lost") within a minute and retried from failure; the server's
log shows no finished page or item asked again, the app database every row once, and
the charges API one charge per invoice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.support.app_tables import execute, rows
from tests.support.daemon import BIN, INSTANCE_CONFIGS, running_daemon, use_instance_config
from tests.support.http_server import LocalHTTPServer
from tests.support.local_service import (
    FRAGILE_PAGES,
    local_service,
    pages_asked,
    serving,
    write_service_defs,
)
from tests.support.waiting import wait_for
from tests.test_crash_recovery import started_steps
from translators.instance_db import WORKERS, connect
from translators.run_status import failure_reason
from translators.run_worker import WORKER_LOST

JOB = "app__recover"
INVOICES = 6
STALLED_INVOICE = "inv-3"  # applied by the server, then the worker is killed while it waits
STALLED_PAGE = 5  # of 12 (23 records, 2 a page), then an empty page 13
RECOVER_WORKFLOW = {
    "settings": {"maxParallelSteps": 1},
    "steps": [
        {"id": "pages", "service": "local", "operation": "fragile",
         "params": {"per_page": 2, "id": "d", "stall_at": STALLED_PAGE, "stall_s": 120},
         "paginate": {"type": "pageNumber", "pageParam": "page"},
         "dataPath": "results", "outputTable": "records",
         "outputSchema": {"id": "INTEGER", "name": "VARCHAR"}},
        {"id": "persist", "persistToDatabase": {
            "appId": "app", "tableName": "records", "sourceTable": "records", "mode": "append",
            "fieldMapping": {"id": "id", "name": "name"}}},
        {"id": "invoices", "dependsOn": ["persist"], "outputTable": "invoices",
         "sql": f"SELECT concat('inv-', range) AS id, 100 + range AS amount "
                f"FROM range({INVOICES})"},
        {"id": "charge", "service": "billing", "operation": "charge",
         "params": {"invoice": "{{item.id}}", "amount": "{{item.amount}}"},
         "forEach": {"source": "invoices", "itemKey": "id"},
         "preExecute": {"service": "billing", "operation": "listCharges",
                        "params": {"invoice": "{{item.id}}"}, "dataPath": "charges"},
         "fieldMapping": {"invoice": "{{item.id}}", "charge_id": "id"},
         "outputTable": "charges",
         "outputSchema": {"invoice": "VARCHAR", "charge_id": "INTEGER"}},
    ],
}  # fmt: skip
BILLING = local_service(
    {
        "charge": {"method": "POST", "path": "/charges", "mutation": True},
        "listCharges": {"path": "/charges"},
    },
    name="billing",
    timeoutSeconds=60,  # the stalled charge is in flight when its worker is killed
)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHTTPServer]:
    with serving(monkeypatch) as srv:
        monkeypatch.setenv("SERVICE_BILLING_BASE_URL", srv.url)
        yield srv


@pytest.fixture(params=INSTANCE_CONFIGS)
def daemon(
    tmp_path: Path,
    server: LocalHTTPServer,
    sqlite_app_url: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path]:
    """The daemon on the project's dagster.yaml (SQLite) and on deploy/dagster.yaml
    (PostgreSQL), as the README's deployment section runs it."""
    local = local_service({"fragile": {"path": FRAGILE_PAGES}})
    workflows = {"recover": RECOVER_WORKFLOW}
    write_service_defs(tmp_path / "defs", workflows, local, BILLING, monkeypatch=monkeypatch)
    monkeypatch.setenv("APP_DB_URL", sqlite_app_url)
    execute(sqlite_app_url, "CREATE TABLE records (id INTEGER, name TEXT)")
    use_instance_config(request.param, request, monkeypatch)
    with running_daemon(tmp_path) as workspace:
        yield workspace


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    with connect(instance) as conn:
        return conn.execute(
            sa.select(WORKERS.c.pid).where(WORKERS.c.run_id == run_id)
        ).scalar_one_or_none()


def kill_worker(instance: dg.DagsterInstance, run_id: str) -> None:
    """SIGKILLs the run's worker, then waits for run monitoring to mark the run FAILED."""
    pid = wait_for(lambda: worker_pid(instance, run_id), 30, "the recorded worker")
    time.sleep(0.3)  # the request in flight stalls: what finished before it is journalled
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()

    def failed() -> bool:
        current = instance.get_run_by_id(run_id)
        return current is not None and current.status == dg.DagsterRunStatus.FAILURE

    wait_for(failed, 60, "the run to be marked FAILED")
    assert time.monotonic() - killed < 60, "detected within a minute"
    # Run monitoring says "worker lost"; the code server, when it outlives the worker,
    # reports the death first (its exit signal): `workflows runs` shows either as lost.
    run = instance.get_run_by_id(run_id)
    assert run is not None
    reason = failure_reason(instance, run)
    assert reason.startswith(WORKER_LOST), reason


def retry_of(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    runs = wait_for(
        lambda: instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run_id})),
        120,
        f"the automatic retry of {run_id}",
    )
    [retry] = runs
    return retry


def test_killed_workers_are_retried_from_failure_with_nothing_finished_done_twice(
    daemon: Path, server: LocalHTTPServer, sqlite_app_url: str
) -> None:
    server.charges.misbehave(STALLED_INVOICE, stall_s=120)
    config = {"ops": {"resolve_variables": {"config": {"params": {}, "timezone": "UTC"}}}}
    launched = subprocess.run(
        [str(BIN / "dagster"), "job", "launch", "-w", str(daemon), "-j", JOB,
         "--config-json", json.dumps(config)],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )  # fmt: skip
    assert launched.returncode == 0, launched.stdout + launched.stderr
    instance = dg.DagsterInstance.get()
    [run] = instance.get_runs(filters=dg.RunsFilter(job_name=JOB))

    wait_for(lambda: pages_asked(server.requests_to(FRAGILE_PAGES))[STALLED_PAGE], 120, "page 5")
    kill_worker(instance, run.run_id)  # in the middle of the pagination
    first = retry_of(instance, run.run_id)
    wait_for(lambda: server.charges.of(STALLED_INVOICE), 120, f"the charge of {STALLED_INVOICE}")
    kill_worker(instance, first.run_id)  # in the middle of the forEach of a mutation
    second = retry_of(instance, first.run_id)

    def finished() -> dg.DagsterRun | None:
        current = instance.get_run_by_id(second.run_id)
        return current if current is not None and current.is_finished else None

    done = wait_for(finished, 150, "the second retry to finish")
    assert done is not None and done.status == dg.DagsterRunStatus.SUCCESS
    assert started_steps(instance, first.run_id) == {"pages", "persist", "invoices", "charge"}
    assert started_steps(instance, done.run_id) == {"charge"}, "finished steps not run again"

    asked = pages_asked(server.requests_to(FRAGILE_PAGES))
    assert asked == {n: 2 if n == STALLED_PAGE else 1 for n in range(1, 14)}, asked
    persisted = rows(sqlite_app_url, "SELECT id FROM records ORDER BY id")
    assert [r[0] for r in persisted] == list(range(23)), "every row persisted once"
    assert server.charges.per_invoice() == {f"inv-{n}": 1 for n in range(INVOICES)}
    charges = server.requests_to("/charges")
    looked_up = sorted(r.query["invoice"][-1] for r in charges if r.method == "GET")
    assert looked_up == sorted([f"inv-{n}" for n in range(INVOICES)] + [STALLED_INVOICE]), (
        "only the unfinished item is looked up again"
    )
    assert len([r for r in charges if r.method == "POST"]) == INVOICES
