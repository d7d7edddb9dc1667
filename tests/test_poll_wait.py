"""Polling waits (SPEC 3.6, extension `wait.poll`), end to end through Dagster against the
test server's `/jobs/status`, whose status flips from "pending" to "done" after N calls:
an inline poll, a long poll that pauses the run and is continued by `workflows resume`
(polling again, keeping its deadline), a timeout, and the load-time checks."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest

from tests.support.cli import workflows
from tests.support.http_server import LocalHTTPServer
from tests.support.jobs import load, run_job, write_defs
from tests.support.local_service import serving
from tests.test_crash_recovery import started_steps
from translators import cli_runs
from translators.loader import load_definitions
from translators.pause import PAUSED_STEP_TAG, PAUSED_UNTIL_TAG, POLL_DEADLINE_TAG
from translators.run_status import workflow_status

TOKEN = "poll-secret-token-123"
SERVICE = {
    "name": "jobs",
    "baseUrl": "http://127.0.0.1:9/unused",
    "auth": {"type": "bearer", "tokenEnv": "JOBS_TOKEN"},
    "operations": {
        "status": {"method": "GET", "path": "/jobs/status"},
        "jobItems": {"method": "GET", "path": "/jobs/{kind}"},
    },
}


def poll_workflow(poll: dict[str, Any], *, limit: int = 300, **timing: str) -> dict:
    """Rows, the polling wait `hold`, then a step that must run only after it."""
    return {
        "variables": {"jobId": {"type": "param", "default": "j1"},
                      "doneAfter": {"type": "param", "default": 3}},
        "settings": {"maxParallelSteps": 1, "inlineWaitMaxSeconds": limit},
        "steps": [
            {"id": "before", "sql": "SELECT 1 AS n", "outputTable": "before"},
            {"id": "hold", "wait": {"poll": poll, **timing}},
            {"id": "after", "sql": "SELECT n + 1 AS n FROM before", "outputTable": "after"},
        ],
    }  # fmt: skip


POLL = {
    "service": "jobs",
    "operation": "status",
    "params": {"id": "{{var.jobId}}", "done_after": "{{var.doneAfter}}"},
    "field": "job.status",
    "equals": "done",
}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHTTPServer]:
    with serving(monkeypatch, "jobs", env={"JOBS_TOKEN": TOKEN}) as running:
        yield running


def make_defs(root: Path, workflows_: dict[str, dict]) -> Path:
    defs = write_defs(root / "defs", "app", workflows_)
    (defs / "services" / "jobs.json").write_text(json.dumps(SERVICE))
    return defs


def polls_of(server: LocalHTTPServer, job_id: str) -> list[Any]:
    return [r for r in server.requests_to("/jobs/status") if r.query.get("id") == [job_id]]


def output_metadata(result: dg.ExecuteInProcessResult, step: str) -> dict[str, Any]:
    [event] = [e for e in result.all_events if e.step_key == step and e.is_successful_output]
    data = event.step_output_data.metadata  # type: ignore[union-attr]
    return {key: value.value for key, value in data.items()}


def test_an_inline_poll_passes_once_the_server_says_done(tmp_path: Path, server) -> None:
    poll = {**POLL, "dataPath": "items", "field": "status", "in": ["done", "failed"]}
    poll.pop("equals")
    defs_dir = make_defs(tmp_path, {"inline": poll_workflow(poll, every="1s", timeout="30s")})
    _, defs = load(defs_dir)
    started = time.monotonic()
    result = run_job(defs, "app__inline", {"jobId": "inline-1"})
    assert result.success
    polls = polls_of(server, "inline-1")
    assert len(polls) == 3, "pending, pending, done"
    # Through the service's resource: its auth header on every poll, templates rendered.
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in polls)
    assert polls[0].query["done_after"] == ["3"]
    assert time.monotonic() - started >= 2.0, "slept `every` between two polls"
    metadata = output_metadata(result, "hold")
    assert metadata["polls"] == 3 and metadata["last value"] == 'status = "done"'
    assert result.output_for_node("after") is not None


def test_a_poll_that_never_finishes_fails_at_its_timeout(tmp_path: Path, server) -> None:
    flow = poll_workflow(POLL, every="1s", timeout="2s")
    defs_dir = make_defs(tmp_path, {"slow": flow})
    _, defs = load(defs_dir)
    result = run_job(defs, "app__slow", {"jobId": "never", "doneAfter": 99}, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure and e.step_key == "hold"]
    message = failure.step_failure_data.error.message  # type: ignore[union-attr]
    assert 'jobs.status did not report job.status equals "done"' in message, message
    assert "wait.timeout 2s" in message and 'last value seen: job.status = "pending"' in message
    assert TOKEN not in message
    assert len(polls_of(server, "never")) == 3, "at 0 s, 1 s and at the deadline"
    assert not [e for e in result.all_events if e.step_key == "after" and e.is_step_start]


def latest_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    return instance.get_runs(filters=dg.RunsFilter(job_name="app__long"), limit=1)[0]


def resume_when_due(run: dg.DagsterRun) -> dg.DagsterRun:
    """`workflows resume` once the next poll is due; the continuation run."""
    due = dt.datetime.fromisoformat(run.tags[PAUSED_UNTIL_TAG]).timestamp()
    time.sleep(max(0.0, due - time.time()) + 0.2)
    assert cli_runs.resume(run.run_id, now=False) == 0
    return latest_run(dg.DagsterInstance.get())


def assert_paused_at_poll(run: dg.DagsterRun, deadline: str | None = None) -> str:
    assert workflow_status(run) == "PAUSED", run.status
    assert run.tags[PAUSED_STEP_TAG] == "hold"
    until = dt.datetime.fromisoformat(run.tags[PAUSED_UNTIL_TAG]).timestamp()
    assert until <= time.time() + 2, "paused until the next poll (every 2s), not the timeout"
    if deadline is not None:
        assert run.tags[POLL_DEADLINE_TAG] == deadline, "a continuation keeps the deadline"
    return run.tags[POLL_DEADLINE_TAG]


def test_a_long_poll_pauses_and_each_continuation_polls_again(
    tmp_path: Path, server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rest of the poll (1 h) is over the inline limit (1 s): pause between polls.
    defs_dir = make_defs(tmp_path, {"long": poll_workflow(POLL, limit=1, every="2s")})
    monkeypatch.setenv("WORKFLOW_DEFS_DIR", str(defs_dir))
    first = workflows("run", "app/long", "--param", "jobId=long-1", "--idempotency-key", "p1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "PAUSED until" in first.stdout and "polls jobs.status" in first.stdout, first.stdout
    instance = dg.DagsterInstance.get()
    paused = latest_run(instance)
    deadline = assert_paused_at_poll(paused)
    expected = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert abs((dt.datetime.fromisoformat(deadline) - expected).total_seconds()) < 60
    assert started_steps(instance, paused.run_id) == {"resolve_variables", "before", "hold"}
    assert len(polls_of(server, "long-1")) == 1

    # Still pending at the second poll: the continuation pauses again, same deadline.
    second = resume_when_due(paused)
    assert second.tags["workflow/resume_of"] == paused.run_id
    assert_paused_at_poll(second, deadline)
    assert started_steps(instance, second.run_id) == {"hold"}
    # The third poll says done: the run goes on after the wait, `before` is not re-run.
    third = resume_when_due(second)
    assert third.status == dg.DagsterRunStatus.SUCCESS
    assert workflow_status(third) == "COMPLETED"
    assert started_steps(instance, third.run_id) == {"hold", "after"}
    assert len(polls_of(server, "long-1")) == 3


def problems_of(tmp_path: Path, wait: dict[str, Any]) -> list[str]:
    flow = {"steps": [{"sql": "SELECT 1 AS n", "outputTable": "t"}, {"wait": wait}]}
    loaded = load_definitions(make_defs(tmp_path, {"bad": flow}))
    return [str(problem) for problem in loaded.problems]


PROBLEMS = [
    ({"poll": {**POLL, "service": "jobz"}}, "/steps/1/wait/poll/service", "unknown service 'jobz'"),
    ({"poll": {**POLL, "operation": "stat"}}, "/steps/1/wait/poll/operation",
     "service 'jobs' has no operation 'stat'"),
    ({"poll": {**POLL, "operation": "jobItems"}}, "/steps/1/wait/poll/params",
     "no param 'kind' for the path placeholder"),
    ({"poll": {**POLL, "field": "job..status"}}, "/steps/1/wait/poll/field",
     "invalid dot path 'job..status'; expected names joined by dots"),
    ({"poll": {**POLL, "dataPath": " "}}, "/steps/1/wait/poll/dataPath", "invalid dot path ' '"),
    ({"poll": {**POLL, "in": ["done"]}}, "/steps/1/wait/poll",
     "exactly one of equals, notEquals, in (found: equals, in)"),
    ({"poll": POLL, "every": "2h"}, "/steps/1/wait", "wait.every (7200s) is longer than"),
    ({"poll": POLL, "every": "0s"}, "/steps/1/wait", "wait.every must be at least 1s"),
    ({"poll": POLL, "timeout": "400d"}, "/steps/1/wait", "wait.timeout is longer than 366 days"),
    ({"poll": POLL, "duration": "5m"}, "/steps/1/wait", "remove wait.duration and wait.until"),
    ({"duration": "5m", "timeout": "1h"}, "/steps/1/wait", "go with wait.poll"),
    ({"poll": {**POLL, "params": {"id": "{{var.nope}}"}}}, "/steps/1/wait/poll/params/id",
     "nope"),
]  # fmt: skip


@pytest.mark.parametrize(("wait", "pointer", "fragment"), PROBLEMS)
def test_bad_polls_are_refused_at_load(
    tmp_path: Path, wait: dict, pointer: str, fragment: str
) -> None:
    problems = problems_of(tmp_path, wait)
    assert any(f"#{pointer}:" in p and fragment in p for p in problems), problems


def test_check_warns_that_a_long_poll_pauses(tmp_path: Path) -> None:
    defs = make_defs(tmp_path, {"long": poll_workflow(POLL, limit=60, timeout="10m")})
    result = workflows("check", str(defs))
    assert result.returncode == 0, result.stdout + result.stderr
    [warning] = [line for line in result.stdout.splitlines() if "warning:" in line]
    assert warning.startswith("apps/app/workflows/long.json#/steps/1/wait/timeout: warning:")


def test_the_demo_export_is_pending_for_two_polls_then_ready() -> None:
    from demo.server import DEFAULT_SHOP_TOKEN, make_orders, running_demo_server

    with running_demo_server() as base_url:
        url = f"{base_url}/shop/exports/e1"
        assert httpx.get(url).status_code == 401
        auth = {"Authorization": f"Bearer {DEFAULT_SHOP_TOKEN}"}
        answers = [httpx.get(url, headers=auth).json()["export"] for _ in range(3)]
    assert [a["status"] for a in answers] == ["pending", "pending", "ready"]
    assert [a["rowCount"] for a in answers] == [None, None, len(make_orders())]
