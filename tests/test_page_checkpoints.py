"""Page checkpoints and step retries under faults (SPEC 5.5), against a real HTTP server
that logs every request: a step retry, a re-execution from failure and the re-execution
of a run whose process was killed all resume at the page (or item) that did not finish.
Nothing finished is requested twice and every row lands exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from resources.service import ServiceCallError
from tests.support.app_tables import execute, rows
from tests.support.http_server import LocalHTTPServer, RecordedRequest
from tests.support.jobs import events_of
from tests.support.local_service import (
    FRAGILE_PAGES,
    local_service,
    one_at_a_time,
    pages_asked,
    serving,
    write_service_defs,
)
from translators.run_creation import reconstructable
from translators.run_worker import fail_if_worker_lost
from translators.schedules import run_config_for
from translators.spec import ServiceCallStepSpec
from translators.steps.service_call import may_pass, step_retry_policy

pytestmark = pytest.mark.integration

SCHEMA = {"id": "INTEGER", "name": "VARCHAR"}


def fetch_step(params: dict, **extra: object) -> dict:
    """A paginated call of /fragile-pages; `params` choose its faults."""
    return {
        "id": "pages",
        "service": "local",
        "operation": "fragile",
        "params": {"per_page": 5, **params},
        "paginate": {"type": "pageNumber", "pageParam": "page"},
        "dataPath": "results",
        "outputTable": "records",
        "outputSchema": SCHEMA,
        **extra,
    }


PERSIST = {
    "id": "persist",
    "persistToDatabase": {
        "appId": "app",
        "tableName": "records",
        "sourceTable": "records",
        "mode": "append",
        "fieldMapping": {"id": "id", "name": "name"},
    },
}


LOCAL = local_service({"fragile": {"path": FRAGILE_PAGES}})


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHTTPServer]:
    with serving(monkeypatch, total_records=23) as srv:
        yield srv


@pytest.fixture
def defs_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    def build(stem: str, *steps: dict) -> Path:
        workflows = {stem: one_at_a_time(*steps)}
        return write_service_defs(tmp_path / "defs", workflows, LOCAL, monkeypatch=monkeypatch)

    return build


def recon(stem: str) -> dg.ReconstructableJob:
    # A job name per test: Dagster caches reconstructed jobs by name within a process.
    return reconstructable(f"app__{stem}")


def table_ids(result: dg.ExecutionResult, step: str = "pages") -> list[int]:
    return [row["id"] for row in pq.read_table(result.output_for_node(step).path).to_pylist()]


def test_a_step_retry_resumes_at_the_failed_page(
    defs_with, server: LocalHTTPServer, sqlite_app_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_DB_URL", sqlite_app_url)
    execute(sqlite_app_url, "CREATE TABLE records (id INTEGER, name TEXT)")
    # Page 3 fails 3 times; a page gets 1 retry, the step 2: the first attempt gives up
    # on page 3, the step retry gets it at the second try.
    step = fetch_step(
        {"id": "a", "fail_from": 3, "failures": 3},
        maxRetries=2,
        retryDelayMs=10,
    )
    step["paginate"] |= {"maxRetries": 1, "retryDelayMs": 10}
    defs_with("retried", step, PERSIST)
    with dg.instance_for_test() as instance:
        config = run_config_for({}, None, "UTC")
        with dg.execute_job(recon("retried"), instance, run_config=config) as result:
            assert result.success
            assert len(events_of(result, "STEP_UP_FOR_RETRY")) == 1
            ids = table_ids(result)
    asked = pages_asked(server.state.requests)
    assert asked == {1: 1, 2: 1, 3: 4, 4: 1, 5: 1, 6: 1}, "pages 1-2 are not fetched again"
    assert ids == list(range(23))
    persisted = rows(sqlite_app_url, "SELECT id FROM records ORDER BY id")
    assert [r[0] for r in persisted] == list(range(23)), "every row persisted once"


def test_a_failure_that_would_recur_is_not_retried(defs_with, server: LocalHTTPServer) -> None:
    defs_with("final", fetch_step({"id": "f", "fail_from": 2, "failures": 9, "status": 404}))
    with dg.instance_for_test() as instance:
        config = run_config_for({}, None, "UTC")
        result = dg.execute_job(recon("final"), instance, run_config=config)
        assert not result.success
        assert not events_of(result, "STEP_UP_FOR_RETRY")
        failure = events_of(result, "STEP_FAILURE")[0].step_failure_data.error
        assert failure is not None and "HTTP 404" in failure.message
    assert pages_asked(server.state.requests) == {1: 1, 2: 1}


def test_a_reexecution_from_failure_resumes_at_the_failed_page(
    defs_with, server: LocalHTTPServer
) -> None:
    # The default part size (10,000 rows): only the page journal knows pages 1-3.
    defs_with("reexec", fetch_step({"id": "r"}))
    with dg.instance_for_test() as instance:
        server.fail_when = lambda req, q: q.get("page") == "4"  # a 400: no step retry
        first = dg.execute_job(
            recon("reexec"), instance, run_config=run_config_for({}, None, "UTC")
        )
        assert not first.success
        before = len(server.state.requests)
        server.fail_when = None
        options = dg.ReexecutionOptions.from_failure(first.run_id, instance)
        with dg.execute_job(recon("reexec"), instance, reexecution_options=options) as retry:
            assert retry.success
            ids = table_ids(retry)
    assert pages_asked(server.state.requests[:before]) == {1: 1, 2: 1, 3: 1, 4: 1}
    assert pages_asked(server.state.requests[before:]) == {4: 1, 5: 1, 6: 1}
    assert ids == list(range(23))


# --- a killed run process ---------------------------------------------------------------


def run_until_killed(
    defs: Path, stem: str, server: LocalHTTPServer, seen: Callable[[dict], bool], cwd: Path
) -> None:
    """`workflows run` in a subprocess, killed with SIGKILL once a request `seen` arrives."""
    process = subprocess.Popen(
        [sys.executable, "-m", "translators", "run", f"app/{stem}", "--defs", str(defs)],
        cwd=cwd,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(seen({k: v[-1] for k, v in r.query.items()}) for r in server_log(server)):
            assert process.poll() is None, process.communicate()[0].decode(errors="replace")
            assert time.monotonic() < deadline, "the run never reached the page"
            time.sleep(0.05)
        time.sleep(0.3)  # the request stalls: whatever finished before it is journalled
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def server_log(server: LocalHTTPServer) -> list[RecordedRequest]:
    with server.state.lock:
        return list(server.state.requests)


def reexecute_lost_run(stem: str) -> dg.ExecutionResult:
    """Detect the killed run's lost worker (as `workflows runs` / `resume` and run
    monitoring do: the run is marked FAILED), re-execute it from failure."""
    instance = dg.DagsterInstance.get()
    (run,) = instance.get_runs()
    assert run.status == dg.DagsterRunStatus.STARTED, "the process died mid-run"
    assert fail_if_worker_lost(instance, run), "the dead worker is detected"
    options = dg.ReexecutionOptions.from_failure(run.run_id, instance)
    return dg.execute_job(recon(stem), instance, reexecution_options=options)


def test_a_killed_run_resumes_after_its_last_finished_page(
    defs_with, server: LocalHTTPServer, tmp_path: Path
) -> None:
    step = fetch_step({"per_page": 2, "id": "k", "stall_at": 7, "stall_s": 60})
    defs = defs_with("killed", step)
    run_until_killed(defs, "killed", server, lambda q: q.get("page") == "7", tmp_path)
    before = len(server_log(server))
    with reexecute_lost_run("killed") as retry:
        assert retry.success
        ids = table_ids(retry)
    assert pages_asked(server_log(server)[:before]) == {n: 1 for n in range(1, 8)}
    again = pages_asked(server_log(server)[before:])
    assert again == {n: 1 for n in range(7, 14)}, "pages 1-6 finished: not requested again"
    assert ids == list(range(23)), "every row exactly once"


def test_a_killed_for_each_of_paginated_calls_skips_its_finished_items(
    defs_with, server: LocalHTTPServer, tmp_path: Path
) -> None:
    items = {
        "sql": "SELECT range AS n, CASE WHEN range = 3 THEN 2 ELSE 0 END AS stall FROM range(6)",
        "outputTable": "items",
    }
    each = {
        **fetch_step({"id": "{{item.n}}", "item": "{{item.n}}", "stall_at": "{{item.stall}}"}),
        "forEach": {"source": "items", "itemKey": "n"},
        "fieldMapping": {"n": "{{item.n}}", "id": "id"},
        "outputSchema": {"n": "INTEGER", "id": "INTEGER"},
    }
    defs = defs_with("killedeach", items, each)
    stalled = lambda q: q.get("item") == "3" and q.get("page") == "2"  # noqa: E731
    run_until_killed(defs, "killedeach", server, stalled, tmp_path)
    before = len(server_log(server))
    with reexecute_lost_run("killedeach") as retry:
        assert retry.success
        table = pq.read_table(retry.output_for_node("pages").path).to_pylist()
    again = {r.query["item"][-1] for r in server_log(server)[before:]}
    assert again == {"3", "4", "5"}, "items 0-2 finished: not requested again"
    assert sorted((r["n"], r["id"]) for r in table) == [
        (n, i) for n in range(6) for i in range(23)
    ], "every row exactly once"


# --- the step-retry rule ----------------------------------------------------------------

GAVE_UP = "service 'x' operation 'y': HTTP {status} GET http://h/p (page 3): down (after 3 retries)"


@pytest.mark.parametrize(
    ("message", "mutation", "expected"),
    [
        (GAVE_UP.format(status=503), False, True),
        (GAVE_UP.format(status=500), False, True),
        ("... GET http://h/p (page 2): ReadTimeout (after 1 retries)", False, True),
        ("service 'x' operation 'y': HTTP 404 GET http://h/p (page 1): gone", False, False),
        ("... (page 1): the response is not valid JSON (...)", False, False),
        # A mutation is sent again only when the server surely did not act on it.
        (GAVE_UP.format(status=500), True, False),
        ("... POST http://h/p (page 1): ReadTimeout (after 3 retries)", True, False),
        (GAVE_UP.format(status=503), True, True),
        (GAVE_UP.format(status=429), True, True),
        ("... POST http://h/p (page 1): ConnectError: refused (after 3 retries)", True, True),
    ],
)
def test_which_failures_a_step_retry_may_cure(message: str, mutation: bool, expected) -> None:
    error = ServiceCallError(message)
    assert may_pass(error, unguarded_mutation=mutation) is expected
    assert not may_pass(ValueError(message), unguarded_mutation=False), "only call errors"


def test_the_step_retry_goes_on_from_the_request_backoff() -> None:
    def policy(**fields: object) -> dg.RetryPolicy | None:
        spec = {"service": "x", "operation": "y", **fields}
        return step_retry_policy(ServiceCallStepSpec.model_validate(spec))

    default = policy()
    assert default is not None and default.max_retries == 3
    # Requests wait 1, 2, 4 s; the step then waits 8, 24, 56 s: 16 tries of a dead page.
    assert [default.calculate_delay(n) for n in (1, 2, 3)] == [8.0, 24.0, 56.0]
    paged = policy(paginate={"type": "pageNumber", "pageParam": "p", "maxRetries": 1})
    assert paged is not None and paged.delay == 2.0, "the page level's retries count"
    capped = policy(maxRetries=20, retryDelayMs=5000)
    assert capped is not None and (capped.max_retries, capped.delay) == (3, 60.0)
    assert policy(maxRetries=0) is None, "maxRetries 0: no step retry"
