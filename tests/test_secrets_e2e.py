"""No secret reaches the Dagster instance or the table store, end to end.

A real HTTP server on 127.0.0.1 answers with records holding the bearer token it was
sent, and the workflows make that token show up in a failure: a cast to INTEGER of the
`Authorization` value, a DuckDB cast in a `sql` step, an HTTP 400 body quoting it across
the cut of the error excerpt, a PostgreSQL row error in a persist (skipped: metadata and
log; fail: the step failure). The app database URL's
password is a secret too. Each run goes through Dagster in a fresh process. The runs
whose failing step never reads the token itself (`sql`, `skip`, `fail`) use
`isolation: "process"`, so that step runs in a process of its own: only the
registration at step start can tell it that the token is a secret. (The default
executor runs steps in threads of one process, where the fetching step's own
registration would hide a missing one.)
Afterwards every file under DAGSTER_HOME (event log and run databases, compute logs)
and the data folder (table store) is searched for the secret values.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dagster as dg
import pytest
from sqlalchemy.engine import make_url

from tests.support.app_tables import execute, rows
from tests.support.jobs import run_fresh, write_defs

SPLIT = 10  # the token is served whole (`auth`) and in two pieces (`head`, `tail`)


class _TokenEcho(BaseHTTPRequestHandler):
    """GET /records: two records; the first holds the bearer token it was sent.
    GET /refuse: HTTP 400 whose error text quotes the token across the 300-character
    cut of an error excerpt (it starts at character 290)."""

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        records = [
            {"id": 1, "auth": auth, "head": token[:SPLIT], "tail": token[SPLIT:]},
            {"id": 2, "auth": "7", "head": "4", "tail": "2"},
        ]
        body = json.dumps({"records": records}).encode()
        status = 200
        if self.path == "/refuse":
            status, pad = 400, "x" * (290 - len('{"error": "') - len("Bearer "))
            body = json.dumps({"error": f"{pad}{auth}"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The service token, served back by a real HTTP server the `leaky` service calls."""
    value = f"tok-{uuid.uuid4().hex[:16]}"
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenEcho)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    monkeypatch.setenv("SERVICE_LEAKY_BASE_URL", f"http://{host!s}:{port}")
    monkeypatch.setenv("LEAKY_TOKEN", value)
    try:
        yield value
    finally:
        server.shutdown()
        server.server_close()


FETCH_WHOLE = {
    "id": "fetch",
    "service": "leaky",
    "operation": "records",
    "dataPath": "records",
    "outputTable": "tokens",
    "outputSchema": {"id": "INTEGER", "auth": "INTEGER"},
}
# The table store keeps only the pieces: the whole token is never stored as data, so
# any hit in the instance or the table store is a leak.
FETCH_PIECES = {
    **FETCH_WHOLE,
    "id": "pieces",
    "outputTable": "pieces",
    "outputSchema": {"id": "INTEGER", "head": "VARCHAR", "tail": "VARCHAR"},
}
JOIN_SQL = {
    "id": "joined",
    "sql": "SELECT id, CAST(head || tail AS INTEGER) AS n FROM pieces ORDER BY id",
    "outputTable": "numbers",
}


def persist(on_row_error: str, table: str = "sink") -> dict:
    return {
        "id": "store",
        "persistToDatabase": {
            "appId": "app",
            "tableName": table,
            "sourceTable": "pieces",
            "mode": "append",
            "fieldMapping": {"id": "id", "head": "head", "tail": "tail"},
            "onRowError": on_row_error,
        },
    }


# A process per step (~1 s each) only where the failing step does not fetch the token.
ISOLATED: dict[str, dict[str, Any]] = {s: {"isolation": "process"} for s in ("sql", "skip", "fail")}


def defs_dir(tmp_path: Path, workflows: dict[str, list[dict]]) -> Path:
    documents = {
        stem: {"settings": {"maxParallelSteps": 2, **ISOLATED.get(stem, {})}, "steps": steps}
        for stem, steps in workflows.items()
    }
    root = write_defs(tmp_path / "defs", "app", documents)
    service = {
        "name": "leaky",
        "baseUrl": "http://127.0.0.1:9/unused",
        "auth": {"type": "bearer", "tokenEnv": "LEAKY_TOKEN"},
        "operations": {
            "records": {"method": "GET", "path": "/records"},
            "refuse": {"method": "GET", "path": "/refuse"},
        },
    }
    (root / "services" / "leaky.json").write_text(json.dumps(service))
    return root


def events(run_id: str, kind: str) -> list[dg.DagsterEvent]:
    with dg.DagsterInstance.get() as instance:
        return [
            entry.dagster_event
            for entry in instance.all_logs(run_id)
            if entry.dagster_event and entry.dagster_event.event_type_value == kind
        ]


def failure_text(run_id: str, step: str) -> str:
    [failure] = [e for e in events(run_id, "STEP_FAILURE") if e.step_key == step]
    return failure.step_failure_data.error.to_string()


def search(secrets: list[str], *folders: Path) -> list[str]:
    """`path: secret` for every file under `folders` holding a secret (raw bytes)."""
    forms = {form for s in secrets for form in (s, quote(s, safe=""))}
    hits = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                hits += [f"{path}: {form}" for form in forms if form.encode() in data]
    return hits


def assert_instance_was_searched(home: Path, run_ids: list[str]) -> None:
    """The search sees what the runs wrote: the event log and the compute logs."""
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files), files
    err_logs = [p for p in files if p.suffix == ".err"]
    assert err_logs and any(p.stat().st_size for p in err_logs), "compute logs were captured"
    everything = b"".join(p.read_bytes() for p in files)
    for run_id in run_ids:
        assert run_id.encode() in everything


def test_cast_and_sql_errors_quoting_the_token_leave_no_trace(tmp_path: Path, token: str) -> None:
    refused = {**FETCH_WHOLE, "operation": "refuse"}
    root = defs_dir(
        tmp_path, {"cast": [FETCH_WHOLE], "sql": [FETCH_PIECES, JOIN_SQL], "body": [refused]}
    )
    runs = run_fresh(root, "app__cast", "app__sql", "app__body")
    (cast_run, cast_ok), (sql_run, sql_ok) = runs["app__cast"], runs["app__sql"]
    body_run, body_ok = runs["app__body"]
    assert not cast_ok and not sql_ok and not body_ok

    cast = failure_text(cast_run, "fetch")
    assert "row 1, column 'auth': cannot cast 'Bearer ***' to INTEGER" in cast, cast
    sql = failure_text(sql_run, "joined")
    assert "'***'" in sql and "INT" in sql, sql
    body = failure_text(body_run, "fetch")
    assert "HTTP 400" in body and "xBearer ***" in body, body
    # Cut before masking, the excerpt would keep the token's first 10 characters (the
    # instance holds them anyway: the `pieces` preview shows its `head` column).
    assert token[:SPLIT] not in body, body

    home = Path(os.environ["DAGSTER_HOME"])
    assert_instance_was_searched(home, [cast_run, sql_run, body_run])
    data = Path(os.environ["WORKFLOWS_DATA_DIR"])
    assert any(data.rglob("*.parquet")), "the pieces table was written"
    assert search([token], home, data) == []


@pytest.fixture
def app_db(pg_app_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """The app database (PostgreSQL), its URL holding a password: `(url, password)`.

    The password goes into the query string (libpq's `?password=`), a form the masking
    once missed; the test server trusts local connections, so any password works.
    """
    url = make_url(pg_app_url)
    password = url.password or f"pw-{uuid.uuid4().hex[:12]}"
    app_url = pg_app_url if url.password else f"{pg_app_url}?password={password}"
    execute(
        pg_app_url,
        "CREATE TABLE sink (id INTEGER PRIMARY KEY, head TEXT, tail TEXT,"
        " joined INTEGER GENERATED ALWAYS AS ((head || tail)::integer) STORED)",
    )
    monkeypatch.setenv("APP_DB_URL", app_url)
    return pg_app_url, password


def test_persist_row_errors_quoting_the_token_leave_no_trace(
    tmp_path: Path, token: str, app_db: tuple[str, str]
) -> None:
    url, password = app_db
    root = defs_dir(
        tmp_path,
        {
            "skip": [FETCH_PIECES, persist("skip")],
            "fail": [FETCH_PIECES, persist("fail")],
            "missing": [FETCH_PIECES, persist("fail", table="nowhere")],
        },
    )
    runs = run_fresh(root, "app__skip", "app__fail", "app__missing")
    (skip_run, skip_ok), (fail_run, fail_ok) = runs["app__skip"], runs["app__fail"]
    missing_run, missing_ok = runs["app__missing"]
    assert skip_ok and not fail_ok and not missing_ok
    assert rows(url, "SELECT id, joined FROM sink") == [(2, 42)], "the bad row was skipped"

    [output] = [e for e in events(skip_run, "STEP_OUTPUT") if e.step_key == "store"]
    metadata = output.step_output_data.metadata
    assert metadata["rows skipped"].value == 1
    [row_error] = metadata["row errors"].value
    assert 'invalid input syntax for type integer: "***"' in row_error, row_error

    failed = failure_text(fail_run, "store")
    assert 'invalid input syntax for type integer: "***"' in failed, failed
    missing = failure_text(missing_run, "store")
    assert "nowhere" in missing and "password=***" in missing, "the database is named, masked"

    home = Path(os.environ["DAGSTER_HOME"])
    assert_instance_was_searched(home, [skip_run, fail_run, missing_run])
    data = Path(os.environ["WORKFLOWS_DATA_DIR"])
    assert search([token, password], home, data) == []
