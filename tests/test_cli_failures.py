"""`workflows run` and `explain` as a real subprocess: a failed step prints its own cause
(not Dagster's wrapper), no Dagster log lines leak, and explain matches what a run skips."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import workflows
from tests.support.http_server import LocalHTTPServer
from tests.support.jobs import write_defs
from tests.support.local_service import serving, write_service_defs

TOKEN = "tok-77aa31-cli"
# Dagster's console logger: "<date> - dagster - DEBUG - job - run - pid - step - EVENT - msg".
DAGSTER_LOG_LINE = re.compile(r" - dagster - (DEBUG|INFO) - ")
LOCAL_SERVICE = {
    "name": "local",
    "baseUrl": "http://127.0.0.1:9/unused",
    "auth": {"type": "bearer", "tokenEnv": "LOCAL_TOKEN"},
    "operations": {
        "missing": {"method": "GET", "path": "/status/404"},
        "rejects": {"method": "GET", "path": "/status/400"},
    },
}


@pytest.fixture
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME folder without dagster.yaml, as a user may create one."""
    home = tmp_path / "empty_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHTTPServer]:
    with serving(monkeypatch, env={"LOCAL_TOKEN": TOKEN}) as srv:
        yield srv


def defs_with(tmp_path: Path, workflows_: dict[str, dict]) -> Path:
    return write_service_defs(tmp_path / "defs", workflows_, LOCAL_SERVICE)


def call(operation: str, parallel: int) -> dict:
    # With 2 steps at once each step gets a process of its own, whose engine events
    # Dagster logs to the console at DEBUG unless the instance says otherwise. (The
    # default executor runs steps in threads of the run worker, which logs none.)
    isolation = {"isolation": "process"} if parallel > 1 else {}
    return {
        "settings": {"maxParallelSteps": parallel, **isolation},
        "steps": [
            {
                "id": "fetch",
                "service": "local",
                "operation": operation,
                "outputTable": "fetched",
                "outputSchema": {"id": "INTEGER"},
            }
        ],
    }


def failed_line(out: str, step: str) -> str:
    lines = [line for line in out.splitlines() if re.search(rf"\] {step} +FAILED", line)]
    assert lines, out
    return lines[0]


def assert_no_dagster_noise(output: str) -> None:
    assert not DAGSTER_LOG_LINE.search(output), output
    assert "No dagster instance configuration file" not in output, output
    assert "Telemetry" not in output, output


@pytest.mark.parametrize(
    ("operation", "status", "parallel"),
    [("missing", 404, 2), ("rejects", 400, 1)],
)
def test_a_service_failure_names_service_operation_status_and_body(
    tmp_path: Path, empty_home: Path, server: LocalHTTPServer, operation, status, parallel
) -> None:
    defs = defs_with(tmp_path, {"calls": call(operation, parallel)})
    result = workflows("run", "app/calls", "--defs", str(defs), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    line = failed_line(result.stdout, "fetch")
    assert "service 'local'" in line and f"operation '{operation}'" in line, line
    assert f"HTTP {status}" in line, line
    assert f'"error":"status {status}"' in line, "the start of the body"
    assert "DagsterExecutionStepExecutionError" not in line
    summary = result.stdout.split("summary:", 1)[1]
    assert f"HTTP {status}" in summary, "the summary repeats the cause"
    assert_no_dagster_noise(result.stdout + result.stderr)
    assert TOKEN not in result.stdout + result.stderr
    assert (empty_home / "dagster.yaml").exists(), "a minimal instance config was written"


def test_a_cast_failure_names_step_row_column_and_the_redacted_value(
    tmp_path: Path, server: LocalHTTPServer
) -> None:
    # DAGSTER_HOME is conftest's: a dagster.yaml that does not set python_logs, so only
    # the CLI's own level keeps the step processes' DEBUG lines out of its output.
    # The step process never reads LOCAL_TOKEN, so only the CLI can know it is a secret.
    def cast_step(name: str, bad_value: str) -> dict:
        return {
            "id": name,
            "sql": f"SELECT v FROM (VALUES (1, '7'), (2, '{bad_value}')) AS t(n, v) ORDER BY n",
            "outputTable": name,
            "outputSchema": {"v": "INTEGER"},
        }

    bad = {
        "settings": {"maxParallelSteps": 2, "isolation": "process"},
        "steps": [
            cast_step("url_bad", "https://x.test/cb?api_key=k3y-9931"),
            cast_step("token_bad", TOKEN),
        ],
    }
    defs = defs_with(tmp_path, {"cast": bad})
    result = workflows("run", "app/cast", "--defs", str(defs), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    url_line = failed_line(result.stdout, "url_bad")
    assert "step 'url_bad'" in url_line and "column 'v'" in url_line, url_line
    assert "row 2" in url_line and "api_key=***" in url_line, url_line
    token_line = failed_line(result.stdout, "token_bad")
    assert "row 2" in token_line and "cannot cast '***'" in token_line, token_line
    assert "k3y-9931" not in output and TOKEN not in output
    assert "DagsterExecutionStepExecutionError" not in output
    assert_no_dagster_noise(output)


BRANCH_THEN_WAIT = {
    "settings": {"maxParallelSteps": 1},
    "steps": [
        {"sql": "SELECT 1 AS id", "outputTable": "first"},
        {"id": "never", "branch": {"condition": False}},
        {"id": "gated", "dependsOn": ["never"], "sql": "SELECT id FROM first", "outputTable": "g"},
        {"id": "pause", "wait": {"duration": "0s"}},
        {"id": "after_wait", "sql": "SELECT id FROM first", "outputTable": "later"},
        {"id": "last", "sql": "SELECT id FROM later", "outputTable": "last_t"},
    ],
}
WAIT_NAMES_THE_BRANCH = {
    "settings": {"maxParallelSteps": 1},
    "steps": [
        {"sql": "SELECT 1 AS id", "outputTable": "first"},
        {"id": "never", "branch": {"condition": False}},
        {"id": "pause", "dependsOn": ["never"], "wait": {"duration": "0s"}},
        {"id": "after_wait", "sql": "SELECT id FROM first", "outputTable": "later"},
    ],
}
# The wait is skipped only when both branches are false: then all its sources are.
TWO_BRANCHES_THEN_WAIT = {
    "settings": {"maxParallelSteps": 1},
    "steps": [
        {"id": "a", "branch": {"condition": False}},
        {"id": "b", "branch": {"condition": False}},
        {"id": "x", "dependsOn": ["a"], "sql": "SELECT 1 AS i", "outputTable": "x"},
        {"id": "y", "dependsOn": ["b"], "sql": "SELECT 1 AS i", "outputTable": "y"},
        {"id": "pause", "wait": {"duration": "0s"}},
        {"id": "z", "sql": "SELECT 1 AS i", "outputTable": "z"},
    ],
}


def explained_skips(text: str) -> set[str]:
    """The steps explain says a false branch skips."""
    skipped, current = set(), None
    for line in text.splitlines():
        match = re.match(r"\s+\d+\. (\S+) \[", line)
        if match:
            current = match.group(1)
        elif "skipped when" in line and current:
            skipped.add(current)
    return skipped


def steps_with_status(out: str, status: str) -> set[str]:
    summary = out.split("summary:", 1)[1]
    return {
        parts[0]
        for parts in (line.split() for line in summary.splitlines())
        if len(parts) > 1 and parts[1] == status
    }


@pytest.mark.parametrize(
    ("document", "skipped"),
    [
        (BRANCH_THEN_WAIT, {"gated"}),
        (WAIT_NAMES_THE_BRANCH, {"pause", "after_wait"}),
        (TWO_BRANCHES_THEN_WAIT, {"x", "y", "pause", "z"}),
    ],
)
def test_explain_says_what_a_false_branch_skips_as_the_run_does(
    tmp_path: Path, document: dict, skipped: set[str]
) -> None:
    defs = write_defs(tmp_path / "defs", "app", {"flow": document})
    explained = workflows("explain", "app/flow", "--defs", str(defs))
    assert explained.returncode == 0, explained.stderr
    assert explained_skips(explained.stdout) == skipped, explained.stdout
    run = workflows("run", "app/flow", "--defs", str(defs), cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert steps_with_status(run.stdout, "skipped") == skipped, run.stdout
    names = {step.get("id") or step["outputTable"] for step in document["steps"]}
    assert steps_with_status(run.stdout, "succeeded") == names - skipped | {"resolve_variables"}
