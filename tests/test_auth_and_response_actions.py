"""responseActions, apiKeyQuery and oauth2ClientCredentials (SPEC 9, extensions), end to
end through Dagster against the real test server on 127.0.0.1
(tests/support/http_auth_routes.py), which checks the credentials and issues expiring
OAuth2 tokens.

The auth runs go through Dagster in a fresh Python process (so its token cache starts
empty and its compute logs are captured), after which every file under DAGSTER_HOME and
the data folder is searched for the key, the client secret and every token issued.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import pyarrow.parquet as pq
import pytest

from tests.support.http_server import LocalHTTPServer
from tests.support.jobs import load, run_fresh, run_job, write_defs

API_KEY = "key-5c1d8e0a7b"
CLIENT_ID = "client-shop-7"
CLIENT_SECRET = "secret-9f3e2d1c0b"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as srv:
        for name in ("LOCAL", "KEYED", "OAUTH", "OAUTH_SHORT"):
            monkeypatch.setenv(f"SERVICE_{name}_BASE_URL", srv.url)
        monkeypatch.setenv("T_API_KEY", API_KEY)
        monkeypatch.setenv("T_CLIENT_ID", CLIENT_ID)
        monkeypatch.setenv("T_CLIENT_SECRET", CLIENT_SECRET)
        srv.auth.api_key = API_KEY
        srv.auth.client_id, srv.auth.client_secret = CLIENT_ID, CLIENT_SECRET
        yield srv


def service(name: str, auth: dict, operations: dict) -> dict:
    return {
        "name": name,
        "baseUrl": "http://127.0.0.1:9/unused",
        "auth": auth,
        "operations": operations,
    }


SERVICES = [
    service(
        "local",
        {"type": "none"},
        {
            # A 404 that means "nothing here": no records (operation level).
            "getStatus": {
                "path": "/status/{code}",
                "responseActions": [{"status": 404, "action": "ignore"}],
            },
            "busy": {
                "path": "/busy",
                "responseActions": [{"status": 200, "contains": "rate limited", "action": "retry"}],
            },
            "flaky": {"path": "/flaky"},
        },
    ),
    service(
        "keyed",
        {"type": "apiKeyQuery", "name": "api_key", "valueEnv": "T_API_KEY"},
        {"list": {"path": "/keyed"}, "quoteQuery": {"path": "/echo-query"}},
    ),
    service(
        "oauth",
        {
            "type": "oauth2ClientCredentials",
            "tokenUrl": "/oauth/token",
            "clientIdEnv": "T_CLIENT_ID",
            "clientSecretEnv": "T_CLIENT_SECRET",
            "scopes": ["read"],
        },
        {"items": {"path": "/oauth/items"}},
    ),
]
# The same client, asking for tokens that live `server.auth.short_seconds`.
SERVICES.append(
    {
        **SERVICES[2],
        "name": "oauth_short",
        "auth": {**SERVICES[2]["auth"], "scopes": ["read", "short"]},
    }
)


def defs_root(tmp_path: Path, workflows: dict[str, list[dict]]) -> Path:
    documents = {
        stem: {"settings": {"maxParallelSteps": 1}, "steps": steps}
        for stem, steps in workflows.items()
    }
    root = write_defs(tmp_path / "defs", "app", documents)
    for spec in SERVICES:
        (root / "services" / f"{spec['name']}.json").write_text(json.dumps(spec))
    return root


def sql_values(name: str, values: str, columns: str) -> dict:
    return {
        "id": name,
        "sql": f"SELECT * FROM (VALUES {values}) AS t({columns})",
        "outputTable": name,
    }


CODES = sql_values("codes", "(200), (404), (201)", "code")
PER_CODE = {
    "id": "per_code",
    "service": "local",
    "operation": "getStatus",
    "params": {"code": "{{item.code}}"},
    "forEach": {"source": "codes"},
    "fieldMapping": {"path": "path", "code": "{{item.code}}"},
    "outputTable": "answers",
    "outputSchema": {"path": "VARCHAR", "code": "INTEGER"},
}
MISSING = {
    "id": "missing",
    "service": "local",
    "operation": "getStatus",
    "params": {"code": 404},
    "outputTable": "nothing",
    "outputSchema": {"path": "VARCHAR"},
}
BUSY = {
    "id": "busy",
    "service": "local",
    "operation": "busy",
    "params": {"id": "b1", "times": 2},
    "retryDelayMs": 10,
    "dataPath": "records",
    "outputTable": "calm",
    "outputSchema": {"id": "VARCHAR"},
}
# 503 is retried by default (request and step); the step's rule fails it at once.
FAIL_503 = {
    "id": "flaky",
    "service": "local",
    "operation": "flaky",
    "params": {"id": "f1", "fail": 5, "status": 503},
    "retryDelayMs": 10,
    "responseActions": [{"status": 503, "action": "fail"}],
}


def step_rows(result: dg.ExecuteInProcessResult, step: str) -> list[dict]:
    return pq.read_table(result.output_for_node(step).path).to_pylist()


def test_ignore_and_retry_actions_let_the_run_go_on(
    tmp_path: Path, server: LocalHTTPServer
) -> None:
    root = defs_root(tmp_path, {"actions": [CODES, PER_CODE, MISSING, BUSY]})
    with dg.instance_for_test() as instance:
        result = run_job(load(root)[1], "app__actions", instance=instance)
        assert result.success
        # The 404 item yields nothing; the others their records; the step goes on.
        answers = sorted((r["code"], r["path"]) for r in step_rows(result, "per_code"))
        assert answers == [(200, "/status/200"), (201, "/status/201")]
        assert step_rows(result, "missing") == []
        # The two "rate limited" 200s were retried, the third answer used.
        assert step_rows(result, "busy") == [{"id": "b1"}]
        assert len(server.requests_to("/busy")) == 3
        logs = "\n".join(str(entry.user_message) for entry in instance.all_logs(result.run_id))
    assert "/status/404 (page 1): ignored (responseActions): no records" in logs, logs
    assert "retry 2/3" in logs and "rate limited" in logs


def test_a_fail_action_fails_at_once_without_any_retry(
    tmp_path: Path, server: LocalHTTPServer
) -> None:
    root = defs_root(tmp_path, {"failing": [FAIL_503]})
    result = run_job(load(root)[1], "app__failing", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.error.to_string()
    assert "HTTP 503" in message and "responseActions: fail" in message, message
    assert len(server.requests_to("/flaky")) == 1, "no request retry and no step retry"


def test_a_bad_response_action_is_a_problem_with_its_pointer(tmp_path: Path) -> None:
    from translators.loader import load_definitions

    bad = service(
        "local",
        {"type": "none"},
        {
            "get": {
                "path": "/x",
                "responseActions": [
                    {"status": 404, "action": "skip"},
                    {"status": 99, "action": "fail"},
                ],
            },
            "other": {
                "path": "/y",
                "responseActions": [
                    {"status": 500, "action": "retry"},
                    {"status": 500, "contains": "busy", "action": "fail"},
                ],
            },
        },
    )
    root = write_defs(tmp_path / "defs", "app", {})
    (root / "services" / "local.json").write_text(json.dumps(bad))
    text = "\n".join(str(p) for p in load_definitions(root).problems)
    assert "services/local.json#/operations/get/responseActions/0/action" in text, text
    assert "expected one of 'fail', 'ignore', 'retry'" in text, text
    assert "services/local.json#/operations/get/responseActions/1/status" in text, text
    assert "#/operations/other/responseActions: " in text, text
    assert "rule 1 can never match: rule 0 matches every status 500" in text, text


# ---------------------------------------------------------------------------- auth

KEYED_PAGES = {
    "id": "keyed_pages",
    "service": "keyed",
    "operation": "list",
    "params": {"per_page": 10},
    "paginate": {"type": "pageNumber", "pageParam": "page", "startPage": 1},
    "dataPath": "results",
    "outputTable": "keyed",
    "outputSchema": {"id": "INTEGER"},
}
# A server error quoting the query string, key included: only masked text may be stored.
KEY_QUOTED = {"id": "quoted", "service": "keyed", "operation": "quoteQuery", "maxRetries": 0}


def oauth_items(step: str, service: str, items: int, parallel: int, delay: float) -> list:
    values = ", ".join(f"('{step}-{n}')" for n in range(items))
    source = sql_values(f"{step}_items", values, "item")
    call = {
        "id": step,
        "service": service,
        "operation": "items",
        "params": {"item": "{{item.item}}", "delay": delay},
        "forEach": {"source": f"{step}_items", "parallel": parallel},
        "dataPath": "items",
        "outputTable": step,
        "outputSchema": {"item": "VARCHAR", "token_no": "INTEGER"},
    }
    return [source, call]


def table(data: Path, run_id: str, step: str) -> list[dict]:
    """A step's table in the table store (`<run_id>/<step>.parquet`)."""
    return pq.read_table(data / "tables" / run_id / f"{step}.parquet").to_pylist()


def search(secrets: list[str], *folders: Path) -> list[str]:
    """`path: secret` for every file under `folders` holding a secret (raw bytes)."""
    forms = {form for s in secrets for form in (s, quote(s, safe=""))}
    hits = []
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            data = path.read_bytes()
            hits += [f"{path}: {form}" for form in forms if form.encode() in data]
    return hits


def test_api_key_and_oauth2_reach_the_server_and_leave_no_trace(
    tmp_path: Path, server: LocalHTTPServer
) -> None:
    server.auth.short_seconds = 1.0
    server.auth.revoke_on_items = {"renewed-4"}
    root = defs_root(
        tmp_path,
        {
            "keyed": [KEYED_PAGES],
            "key_quoted": [KEY_QUOTED],
            # One token for twelve calls, three at a time.
            "many": oauth_items("many", "oauth", 12, 3, 0.0),
            # Tokens that live 1 s, calls of 0.3 s one after another: renewed before they
            # expire; item renewed-4's call finds its token revoked (401) and is sent again.
            "renewed": oauth_items("renewed", "oauth_short", 6, 1, 0.3),
        },
    )
    runs = run_fresh(
        root, "app__keyed", "app__key_quoted", "app__many", "app__renewed", timeout=240
    )
    assert [ok for _, ok in runs.values()] == [True, False, True, True], runs

    keyed = server.requests_to("/keyed")
    assert len(keyed) == 4 and all(r.query["api_key"] == [API_KEY] for r in keyed)
    data = Path(os.environ["WORKFLOWS_DATA_DIR"])
    assert len(table(data, runs["app__keyed"][0], "keyed_pages")) == 23

    assert len(server.auth.forms("read")) == 1, "one token for every call of the process"
    many = table(data, runs["app__many"][0], "many")
    assert len(many) == 12 and {r["token_no"] for r in many} == {1}

    renewed = table(data, runs["app__renewed"][0], "renewed")
    assert sorted(r["item"] for r in renewed) == [f"renewed-{n}" for n in range(6)]
    assert "token revoked" in server.auth.refusals
    assert len(server.auth.forms("read short")) >= 3, "first, renewed before expiry, after 401"
    assert len({r["token_no"] for r in renewed}) >= 3

    home = Path(os.environ["DAGSTER_HOME"])
    assert any(p.suffix == ".err" and p.stat().st_size for p in home.rglob("*")), "compute logs"
    secrets = [API_KEY, CLIENT_SECRET, *server.auth.tokens]
    assert search(secrets, home, data) == []


def test_a_refused_client_fails_at_once_naming_the_token_endpoint(
    server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resources.service import CallRequest, Operation, ServiceCallError, ServiceResource

    monkeypatch.setenv("T_CLIENT_SECRET", "wrong-secret-4411")
    resource = ServiceResource(
        service_name="oauth_refused",
        base_url=server.url,
        auth_type="oauth2ClientCredentials",
        token_url="/oauth/token",
        client_id_env="T_CLIENT_ID",
        client_secret_env="T_CLIENT_SECRET",
    )
    request = CallRequest(Operation("items", "GET", "/oauth/items"), retry_delay_ms=10)
    with pytest.raises(ServiceCallError) as caught:
        list(resource.iter_pages(request))
    message = str(caught.value)
    assert f"the OAuth2 token request to {server.url}/oauth/token failed: HTTP 401" in message
    assert "invalid_client" in message and "wrong-secret-4411" not in message
    assert server.requests_to("/oauth/items") == [], "the call itself was never sent"
    assert len(server.requests_to("/oauth/token")) == 1, "a refused client is not retried"


def test_the_api_key_parameter_is_masked_in_any_url_whatever_its_value() -> None:
    from resources.secrets import redact, register_sensitive_query_name

    register_sensitive_query_name("appid")
    shown = redact("GET http://h/x?day=1&appid=ab7 failed; next http://h/x?appid=z&p=2")
    assert shown == "GET http://h/x?day=1&appid=*** failed; next http://h/x?appid=***&p=2"
