"""Exactly-once mutations (SPEC 5.5), against the test server's charges API.

A mutation is retried only when its failed attempt surely did not take effect (a refused
connection, 429, 503) or when the retry is guarded: the operation's `idempotencyHeader`
(the same key on every attempt, which the server dedups) or the step's `preExecute`,
asked again before the retry. With forEach, preExecute runs per item: an invoice charged
by a killed run is found, not charged again, by its resumed run and by any later run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pyarrow.parquet as pq
import pytest

from resources.service import (
    CallRequest,
    CallStats,
    Operation,
    ServiceCallError,
    ServiceResource,
    idempotency_key,
)
from resources.service_http import PageLoop, Session
from resources.service_transport import DeadlineExceeded, Reply
from tests.support.cli import workflows
from tests.support.http_server import LocalHTTPServer
from tests.support.jobs import load, run_job, write_defs
from translators.loader import load_definitions

pytestmark = pytest.mark.integration

CHARGE = Operation("charge", "POST", "/charges", mutation=True)
KEYED = Operation("charge", "POST", "/charges", True, idempotency_header="Idempotency-Key")
LIST = Operation("listCharges", "GET", "/charges")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as srv:
        monkeypatch.setenv("SERVICE_BILLING_BASE_URL", srv.url)
        yield srv


def service(url: str, timeout_s: float = 0.5) -> ServiceResource:
    name = f"billing_{uuid.uuid4().hex[:8]}"  # no rate limiter shared between tests
    return ServiceResource(service_name=name, base_url=url, timeout_seconds=timeout_s)


def posts(server: LocalHTTPServer) -> list[Any]:
    return [r for r in server.requests_to("/charges") if r.method == "POST"]


# --- which failures a mutation retries ------------------------------------------------


def reply(status: int) -> Reply:
    return Reply(status, httpx.Headers(), b'{"error": "x"}')


SURELY_NOT_TAKEN = {
    "connection refused": httpx.ConnectError("[Errno 111] Connection refused"),
    "429": reply(429),
    "503": reply(503),
}
MAY_HAVE_TAKEN_EFFECT = {
    "timeout": DeadlineExceeded(1.0),
    "500": reply(500),
    "502": reply(502),
    "504": reply(504),
    "connection reset after send": httpx.ReadError("[Errno 104] Connection reset by peer"),
    "hung up after send": httpx.RemoteProtocolError("Server disconnected"),
}


def page_loop(operation: Operation, **request: Any) -> PageLoop:
    session = Session.open(service("http://127.0.0.1:9"))
    call = CallRequest(operation, {"invoice": "a"}, retry_delay_ms=10, **request)
    return PageLoop(session, call, item_label=None)


@pytest.mark.parametrize("outcome", SURELY_NOT_TAKEN.values(), ids=SURELY_NOT_TAKEN.keys())
def test_a_mutation_is_retried_when_the_attempt_surely_did_not_take_effect(outcome) -> None:
    assert page_loop(CHARGE).check(outcome, 1) == pytest.approx(0.01)


@pytest.mark.parametrize(
    "outcome", MAY_HAVE_TAKEN_EFFECT.values(), ids=MAY_HAVE_TAKEN_EFFECT.keys()
)
def test_a_mutation_that_may_have_taken_effect_is_retried_only_when_guarded(outcome) -> None:
    with pytest.raises(ServiceCallError, match="not retried: the operation is a mutation"):
        page_loop(CHARGE).check(outcome, 1)
    keyed = page_loop(KEYED, idempotency_key="k")
    assert keyed.check(outcome, 1) == pytest.approx(0.01)
    assert keyed.guard(outcome) == "key"
    checked = page_loop(CHARGE, check=lambda: [])
    assert checked.check(outcome, 1) == pytest.approx(0.01)
    assert checked.guard(outcome) == "check"
    reading = page_loop(Operation("list", "GET", "/charges"))
    assert reading.check(outcome, 1) == pytest.approx(0.01), "not a mutation: retried as ever"
    # A header without a key (or a key without the header) guards nothing.
    with pytest.raises(ServiceCallError, match="not retried"):
        page_loop(KEYED).check(outcome, 1)


# --- a mutation that times out after the server applied it ----------------------------


def charge_request(operation: Operation = CHARGE, **extra: Any) -> CallRequest:
    params = {"invoice": "inv-1", "amount": 100}
    return CallRequest(operation, params, max_retries=3, retry_delay_ms=10, **extra)


def test_an_unguarded_mutation_that_timed_out_is_not_sent_again(server: LocalHTTPServer) -> None:
    server.charges.misbehave("inv-1", stall_s=2)
    with pytest.raises(ServiceCallError) as failed:
        list(service(server.url).iter_pages(charge_request()))
    message = str(failed.value)
    assert "operation 'charge'" in message and "timeoutSeconds=0.5" in message
    assert "not retried: the operation is a mutation" in message
    assert "idempotencyHeader" in message and "preExecute" in message
    assert len(posts(server)) == 1
    assert server.charges.per_invoice() == {"inv-1": 1}


@pytest.mark.parametrize("fault", [{"status": 502}, {"status": 500}, {"drop": True}])
def test_an_unguarded_mutation_failing_after_it_was_applied_is_not_sent_again(
    server: LocalHTTPServer, fault: dict[str, Any]
) -> None:
    server.charges.misbehave("inv-1", **fault)
    with pytest.raises(ServiceCallError, match="not retried"):
        list(service(server.url).iter_pages(charge_request()))
    assert len(posts(server)) == 1
    assert server.charges.per_invoice() == {"inv-1": 1}


def test_an_unguarded_mutation_is_retried_after_a_503_or_a_refused_connection(
    server: LocalHTTPServer,
) -> None:
    stats = CallStats()
    unavailable = CallRequest(Operation("c", "POST", "/status/503", True), retry_delay_ms=10)
    with pytest.raises(ServiceCallError, match=r"HTTP 503 .*\(after 3 retries\)"):
        list(service(server.url).iter_pages(unavailable, stats=stats))
    assert stats.requests == 4 and len(server.requests_to("/status/503")) == 4

    refused = service("http://127.0.0.1:9")  # the discard port: nothing listens
    stats = CallStats()
    with pytest.raises(ServiceCallError, match=r"ConnectError.*\(after 3 retries\)"):
        list(refused.iter_pages(charge_request(), stats=stats))
    assert stats.requests == 4


def test_a_keyed_mutation_is_retried_with_the_same_key_and_applied_once(
    server: LocalHTTPServer,
) -> None:
    server.charges.misbehave("inv-1", stall_s=2)
    request = charge_request(KEYED, idempotency_key="run-1-charge-inv-1")
    records = [r for page in service(server.url).iter_pages(request) for r in page.records]
    sent = posts(server)
    assert len(sent) == 2, "the timed-out attempt was retried"
    assert {r.headers["idempotency-key"] for r in sent} == {"run-1-charge-inv-1"}
    assert server.charges.per_invoice() == {"inv-1": 1}, "the server applied the key once"
    assert records == [{"id": 1, "invoice": "inv-1", "amount": 100}]


def test_a_mutation_guarded_by_pre_execute_asks_it_again_before_a_retry(
    server: LocalHTTPServer,
) -> None:
    svc = service(server.url)
    asked: list[int] = []

    def check() -> list[dict[str, Any]]:
        listing = CallRequest(LIST, {"invoice": "inv-1"}, data_path="charges")
        asked.append(1)
        return [r for page in svc.iter_pages(listing) for r in page.records]

    server.charges.misbehave("inv-1", stall_s=2)
    records = [r for page in svc.iter_pages(charge_request(check=check)) for r in page.records]
    assert len(asked) == 1 and len(server.requests_to("/charges")) == 2  # POST, then GET
    assert len(posts(server)) == 1, "preExecute found the charge: no second POST"
    assert records == [{"id": 1, "invoice": "inv-1", "amount": 100}]


def test_the_idempotency_key_is_stable_per_lineage_step_and_item() -> None:
    key = idempotency_key("run-a", "charge", "inv-1")
    assert key == idempotency_key("run-a", "charge", "inv-1")
    others = {
        idempotency_key("run-b", "charge", "inv-1"),
        idempotency_key("run-a", "refund", "inv-1"),
        idempotency_key("run-a", "charge", "inv-2"),
        idempotency_key("run-a", "charge", None),
    }
    assert key not in others and len(others) == 4


# --- through Dagster: forEach with preExecute per item ---------------------------------


def catalog(timeout_s: float) -> dict[str, Any]:
    return {
        "name": "billing",
        "baseUrl": "http://127.0.0.1:9/unused",
        "timeoutSeconds": timeout_s,
        "operations": {
            "charge": {"method": "POST", "path": "/charges", "mutation": True},
            "chargeOnce": {
                "method": "POST",
                "path": "/charges",
                "mutation": True,
                "idempotencyHeader": "Idempotency-Key",
            },
            "listCharges": {"path": "/charges"},
        },
    }


def charge_workflow(
    invoices: int, operation: str = "charge", pre_execute: bool = True, parallel: int = 1
) -> dict[str, Any]:
    step: dict[str, Any] = {
        "id": "charge",
        "service": "billing",
        "operation": operation,
        "params": {"invoice": "{{item.id}}", "amount": "{{item.amount}}"},
        "forEach": {"source": "invoices", "itemKey": "id", "parallel": parallel},
        "retryDelayMs": 10,
        "fieldMapping": {"invoice": "{{item.id}}", "charge_id": "id"},
        "outputTable": "charges",
        "outputSchema": {"invoice": "VARCHAR", "charge_id": "INTEGER"},
    }
    if pre_execute:
        step["preExecute"] = {
            "service": "billing",
            "operation": "listCharges",
            "params": {"invoice": "{{item.id}}"},
            "dataPath": "charges",
        }
    invoices_sql = (
        f"SELECT concat('inv-', range) AS id, 100 + range AS amount FROM range({invoices})"
    )
    return {
        "settings": {"maxParallelSteps": 1},
        "steps": [{"id": "invoices", "sql": invoices_sql, "outputTable": "invoices"}, step],
    }


def billing_defs(root: Path, workflow: dict[str, Any], timeout_s: float = 0.5) -> Path:
    defs = write_defs(root, "app", {"billing": workflow})
    (defs / "services" / "billing.json").write_text(json.dumps(catalog(timeout_s)))
    return defs


def charged_rows(result: dg.ExecuteInProcessResult) -> list[tuple[str, int]]:
    rows = pq.read_table(result.output_for_node("charge").path).to_pylist()
    return sorted((row["invoice"], row["charge_id"]) for row in rows)


def output_metadata(result: dg.ExecuteInProcessResult, step: str) -> dict[str, Any]:
    for event in result.all_events:
        if event.step_key == step and event.event_type_value == "STEP_OUTPUT":
            metadata = event.event_specific_data.metadata  # type: ignore[union-attr]
            return {key: value.value for key, value in metadata.items()}
    raise AssertionError(f"step {step} produced no output")


def step_failure(result: dg.ExecuteInProcessResult, step: str) -> str:
    [failure] = [e for e in result.all_events if e.is_step_failure and e.step_key == step]
    error = failure.event_specific_data.error  # type: ignore[union-attr]
    return error.message


def test_pre_execute_runs_per_item_and_an_item_it_finds_is_not_called(
    server: LocalHTTPServer, tmp_path: Path
) -> None:
    httpx.post(f"{server.url}/charges", json={"invoice": "inv-2", "amount": 102})
    _, defs = load(billing_defs(tmp_path / "defs", charge_workflow(4, parallel=2)))
    result = run_job(defs, "app__billing")
    assert result.success
    assert server.charges.per_invoice() == {f"inv-{n}": 1 for n in range(4)}
    assert sorted(r.query["invoice"][-1] for r in server.requests_to("/charges") if r.query) == [
        f"inv-{n}" for n in range(4)
    ], "one preExecute per item"
    assert len(posts(server)) == 1 + 3, "inv-2 was charged already"
    rows = dict(charged_rows(result))
    assert rows["inv-2"] == 1, "its row is the charge preExecute found"
    assert len(set(rows.values())) == 4
    assert output_metadata(result, "charge")["items found by preExecute"] == 1

    again = run_job(defs, "app__billing")
    assert again.success and len(posts(server)) == 4, "a second run charges nothing"
    assert charged_rows(again) == charged_rows(result)
    assert output_metadata(again, "charge")["items found by preExecute"] == 4


def test_a_timed_out_charge_per_item_is_found_by_pre_execute_before_the_retry(
    server: LocalHTTPServer, tmp_path: Path
) -> None:
    server.charges.misbehave("inv-1", stall_s=3)
    _, defs = load(billing_defs(tmp_path / "defs", charge_workflow(3)))
    result = run_job(defs, "app__billing")
    assert result.success
    assert server.charges.per_invoice() == {"inv-0": 1, "inv-1": 1, "inv-2": 1}
    assert len(posts(server)) == 3, "the timed-out POST was not sent again"
    assert dict(charged_rows(result))["inv-1"] == 2


def test_a_keyed_charge_per_item_is_retried_with_its_key(
    server: LocalHTTPServer, tmp_path: Path
) -> None:
    server.charges.misbehave("inv-1", stall_s=3)
    workflow = charge_workflow(3, operation="chargeOnce", pre_execute=False)
    _, defs = load(billing_defs(tmp_path / "defs", workflow))
    result = run_job(defs, "app__billing")
    assert result.success
    assert server.charges.per_invoice() == {"inv-0": 1, "inv-1": 1, "inv-2": 1}
    sent = posts(server)
    assert len(sent) == 4, "inv-1 was sent twice, with one key"
    keys = [r.headers["idempotency-key"] for r in sent]
    expected = idempotency_key(result.run_id, "charge", "inv-1")
    assert keys.count(expected) == 2 and len(set(keys)) == 3


def test_an_unguarded_charge_per_item_that_timed_out_fails_the_step_without_a_retry(
    server: LocalHTTPServer, tmp_path: Path
) -> None:
    server.charges.misbehave("inv-1", stall_s=3)
    _, defs = load(billing_defs(tmp_path / "defs", charge_workflow(3, pre_execute=False)))
    result = run_job(defs, "app__billing", raise_on_error=False)
    assert not result.success
    message = step_failure(result, "charge")
    assert "item id='inv-1'" in message and "not retried" in message, message
    assert server.charges.per_invoice() == {"inv-0": 1, "inv-1": 1}
    assert len(posts(server)) == 2, "neither the request nor the step was retried"


def test_a_single_charge_guarded_by_pre_execute_is_found_before_the_retry(
    server: LocalHTTPServer, tmp_path: Path
) -> None:
    workflow = charge_workflow(1)
    step = workflow["steps"][1]
    del step["forEach"]
    step["params"] = {"invoice": "inv-9", "amount": 9}
    step["preExecute"]["params"] = {"invoice": "inv-9"}
    step["fieldMapping"] = {"charge_id": "id", "invoice": "invoice"}
    server.charges.misbehave("inv-9", stall_s=3)
    _, defs = load(billing_defs(tmp_path / "defs", workflow))
    result = run_job(defs, "app__billing")
    assert result.success
    assert charged_rows(result) == [("inv-9", 1)]
    methods = [r.method for r in server.requests_to("/charges")]
    assert methods == ["GET", "POST", "GET"], "asked, posted (timed out), asked again"
    assert server.charges.per_invoice() == {"inv-9": 1}


def test_item_templates_in_pre_execute_need_for_each(tmp_path: Path) -> None:
    workflow = charge_workflow(2)
    step = workflow["steps"][1]
    del step["forEach"]
    step["params"] = {"invoice": "inv-0"}
    step["fieldMapping"] = {"charge_id": "id"}
    loaded = load_definitions(billing_defs(tmp_path / "defs", workflow))
    problems = [str(p) for p in loaded.problems]
    assert any(
        "/steps/1/preExecute/params/invoice" in p and "only available inside a forEach" in p
        for p in problems
    ), problems
    assert len(problems) == 1, problems


# --- a killed run, resumed, then run again: one charge per invoice ---------------------

INVOICES = 8
STALLED = "inv-4"  # the fifth charge: applied, then the run is killed while it waits


def start_run(defs: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "translators", "run", "app/billing", "--defs", str(defs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


def wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_a_killed_charge_run_resumed_and_run_again_charges_each_invoice_once(
    server: LocalHTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs = billing_defs(tmp_path / "defs", charge_workflow(INVOICES), timeout_s=60)
    monkeypatch.setenv("WORKFLOW_DEFS_DIR", str(defs))
    server.charges.misbehave(STALLED, stall_s=120)
    proc = start_run(defs)
    try:
        wait_for(
            lambda: server.charges.of(STALLED) or proc.poll() is not None, 120, "half the charges"
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, out + err
    assert len(posts(server)) == 5 and len(server.charges.per_invoice()) == 5

    instance = dg.DagsterInstance.get()
    [killed] = instance.get_runs(filters=dg.RunsFilter(job_name="app__billing"))
    before = len(server.requests_to("/charges"))
    resumed = workflows("resume", killed.run_id, "--defs", str(defs))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert server.charges.per_invoice() == {f"inv-{n}": 1 for n in range(INVOICES)}
    assert len(posts(server)) == INVOICES, "inv-4, charged by the killed run, was found"
    lookups = [r for r in server.requests_to("/charges")[before:] if r.method == "GET"]
    assert [r.query["invoice"][-1] for r in lookups] == [f"inv-{n}" for n in range(4, INVOICES)], (
        "the finished items inv-0..3 are not asked again, not even by preExecute"
    )

    again = workflows("run", "app/billing", "--defs", str(defs))
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(posts(server)) == INVOICES, "a new run found every charge"
    assert server.charges.per_invoice() == {f"inv-{n}": 1 for n in range(INVOICES)}
