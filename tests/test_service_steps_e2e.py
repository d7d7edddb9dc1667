"""serviceCall steps through Dagster against a real HTTP server on 127.0.0.1: forEach with
runAsUser and skipped items, preExecute, and no secret in any event of the run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pyarrow.parquet as pq
import pytest

from demo.server import running_demo_server
from tests.support.http_server import LocalHTTPServer
from tests.support.jobs import load, run_job, write_defs
from tests.support.local_service import serving

TOKENS = {"tok-ann-5b1f0c": "ann", "tok-bob-9e7d22": "bob"}
SERVICE_TOKEN = "svc-token-77aa31"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHTTPServer]:
    env = {
        "LOCAL_TOKEN": SERVICE_TOKEN,
        "LOCAL_USER_TOKENS": json.dumps({u: t for t, u in TOKENS.items()}),
    }
    with serving(monkeypatch, env=env, user_tokens=TOKENS) as srv:
        yield srv


def defs_with(tmp_path: Path, steps: list[dict]) -> dg.Definitions:
    root = write_defs(
        tmp_path / "defs", "app", {"calls": {"settings": {"maxParallelSteps": 1}, "steps": steps}}
    )
    (root / "services" / "local.json").write_text(
        json.dumps(
            {
                "name": "local",
                "baseUrl": "http://127.0.0.1:9/unused",
                "auth": {"type": "bearer", "tokenEnv": "LOCAL_TOKEN"},
                "userTokensEnv": "LOCAL_USER_TOKENS",
                "operations": {
                    "me": {"method": "GET", "path": "/me"},
                    "postMessage": {"method": "POST", "path": "/messages", "mutation": True},
                    "echo": {"method": "GET", "path": "/echo/{what}"},
                },
            }
        )
    )
    return load(root)[1]


USERS_SQL = {
    "sql": "SELECT * FROM (VALUES ('ann', 1), ('bob', 2), ('eve', 3)) AS u(user_id, n)",
    "outputTable": "users",
}
AS_USER = {
    "id": "whoami",
    "service": "local",
    "operation": "me",
    "params": {"item": "{{item.n}}"},
    "forEach": {
        "source": "users",
        "itemKey": "user_id",
        "runAsUser": "{{item.user_id}}",
        "parallel": 3,
        "onItemError": "skip",
    },
    "fieldMapping": {"user": "user", "asked_for": "{{item.user_id}}"},
    "outputTable": "who",
    "outputSchema": {"user": "VARCHAR", "asked_for": "VARCHAR"},
}


def test_run_as_user_uses_each_users_token_and_skips_unknown_users(
    tmp_path: Path, server: LocalHTTPServer
) -> None:
    with dg.instance_for_test() as instance:
        result = run_job(defs_with(tmp_path, [USERS_SQL, AS_USER]), "app__calls", instance=instance)
        assert result.success
        who = pq.read_table(result.output_for_node("whoami").path).to_pylist()
        assert sorted((r["user"], r["asked_for"]) for r in who) == [("ann", "ann"), ("bob", "bob")]
        output = next(
            e
            for e in result.all_events
            if e.event_type_value == "STEP_OUTPUT" and e.step_key == "whoami"
        )
        metadata = output.step_output_data.metadata
        assert metadata["items skipped"].value == 1
        [skip] = metadata["skipped items"].value
        assert skip["key"] == "eve" and "no token for user" in skip["error"]
        everything = "\n".join(str(entry) for entry in instance.all_logs(result.run_id))
    assert "no token for user" in everything, "the event log was read"
    for secret in [*TOKENS, SERVICE_TOKEN]:
        assert secret not in everything


def test_a_failed_item_fails_the_step_with_a_clear_message(
    tmp_path: Path, server: LocalHTTPServer
) -> None:
    failing = {**AS_USER, "forEach": {**AS_USER["forEach"], "onItemError": "fail"}}
    result = run_job(defs_with(tmp_path, [USERS_SQL, failing]), "app__calls", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.error.to_string()
    assert "eve" in message and "no token for user" in message
    assert not any(secret in message for secret in TOKENS)


def test_a_side_effect_call_per_row_without_output_table(
    tmp_path: Path, server: LocalHTTPServer
) -> None:
    post = {
        "id": "notify",
        "service": "local",
        "operation": "postMessage",
        "forEach": {"source": "users", "parallel": 2},
        "params": {"text": "hello {{item.user_id}}", "n": "{{item.n}}"},
    }
    assert run_job(defs_with(tmp_path, [USERS_SQL, post]), "app__calls").success
    bodies = sorted(json.dumps(b, sort_keys=True) for b in server.state.posted)
    assert bodies == [
        json.dumps({"n": n, "text": f"hello {u}"}, sort_keys=True)
        for u, n in (("ann", 1), ("bob", 2), ("eve", 3))
    ]


def test_pre_execute_makes_a_second_run_create_nothing_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_once = {
        "id": "announce",
        "service": "chat",
        "operation": "postMessage",
        "params": {"channel": "releases", "text": "v1 is out"},
        "preExecute": {"service": "chat", "operation": "listMessages", "dataPath": "messages"},
        "fieldMapping": {"message_id": "id", "text": "text"},
        "outputTable": "announcement",
        "outputSchema": {"message_id": "VARCHAR", "text": "VARCHAR"},
    }
    root = write_defs(
        tmp_path / "defs", "app", {"once": {"steps": [create_once]}}, services=("chat",)
    )
    _, defs = load(root)
    with running_demo_server() as base_url:
        monkeypatch.setenv("SERVICE_CHAT_BASE_URL", f"{base_url}/chat")
        first = run_job(defs, "app__once")
        second = run_job(defs, "app__once")
        messages = httpx.get(f"{base_url}/chat/messages").json()["messages"]
    assert [m["text"] for m in messages] == ["v1 is out"]
    for result in (first, second):
        table = pq.read_table(result.output_for_node("announce").path).to_pylist()
        assert table == [{"message_id": messages[0]["id"], "text": "v1 is out"}]
    output = next(
        e
        for e in second.all_events
        if e.event_type_value == "STEP_OUTPUT" and e.step_key == "announce"
    )
    assert "main call skipped" in output.step_output_data.metadata["preExecute"].value


@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        ({}, (3, 1000)),
        ({"maxRetries": 5}, (5, 1000)),
        ({"forEach": {"source": "t", "maxRetries": 6}, "maxRetries": 5}, (6, 1000)),
        (
            {
                "forEach": {"source": "t", "maxRetries": 6},
                "paginate": {"type": "link", "retryDelayMs": 10},
            },
            (3, 10),
        ),
        ({"forEach": {"source": "t", "maxRetries": 6}, "paginate": {"type": "link"}}, (6, 1000)),
        ({"paginate": {"type": "link"}, "maxRetries": 1}, (1, 1000)),
    ],
)
def test_the_innermost_explicit_retry_level_wins(levels: dict, expected: tuple) -> None:
    from translators.spec import ServiceCallStepSpec
    from translators.steps.service_call import retry_settings

    spec = ServiceCallStepSpec.model_validate({"service": "s", "operation": "o", **levels})
    chosen = retry_settings(spec)
    assert (chosen.max_retries, chosen.retry_delay_ms) == expected


def test_a_service_name_with_a_hyphen(tmp_path: Path, server: LocalHTTPServer, monkeypatch) -> None:
    monkeypatch.setenv("SERVICE_LOCAL_API_BASE_URL", server.url)
    root = write_defs(
        tmp_path / "defs",
        "app",
        {
            "hyphen": {
                "steps": [
                    {
                        "service": "local-api",
                        "operation": "echo",
                        "params": {"what": "hi"},
                        "outputTable": "echo",
                        "outputSchema": {"path": "VARCHAR"},
                    }
                ]
            }
        },
    )
    (root / "services" / "local-api.json").write_text(
        json.dumps(
            {
                "name": "local-api",
                "baseUrl": "http://127.0.0.1:9/unused",
                "operations": {"echo": {"path": "/echo/{what}"}},
            }
        )
    )
    result = run_job(load(root)[1], "app__hyphen")
    assert pq.read_table(result.output_for_node("echo").path).to_pylist() == [{"path": "/echo/hi"}]
