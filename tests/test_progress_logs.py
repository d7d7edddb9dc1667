"""Progress and retry lines of serviceCall steps in the run's event log (issue 9, item 5).

Real Dagster execution against the test HTTP server on 127.0.0.1; the lines are read
back from the instance's event log, as the Dagster UI shows them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from tests.support.http_server import LocalHTTPServer
from tests.support.jobs import load, run_job, write_defs

SERVICE_TOKEN = "svc-token-progress-5c2e91d7"
QUERY_KEY = "qk-8d41f0aa7b"  # a secret written in a URL, masked by its parameter name


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer(total_records=100) as srv:
        monkeypatch.setenv("SERVICE_PROGRESS_BASE_URL", srv.url)
        monkeypatch.setenv("PROGRESS_TOKEN", SERVICE_TOKEN)
        yield srv


def defs_with(tmp_path: Path, steps: list[dict], rate_limit: float | None = None) -> dg.Definitions:
    root = write_defs(
        tmp_path / "defs", "app", {"calls": {"settings": {"maxParallelSteps": 1}, "steps": steps}}
    )
    service: dict = {
        "name": "progress",
        "baseUrl": "http://127.0.0.1:9/unused",
        "auth": {"type": "bearer", "tokenEnv": "PROGRESS_TOKEN"},
        "operations": {
            "pages": {"method": "GET", "path": "/pages"},
            "fragile": {"method": "GET", "path": "/fragile-pages"},
            "flaky": {"method": "GET", "path": "/flaky"},
            "leaky": {"method": "GET", "path": "/leaky"},
            "echo": {"method": "GET", "path": "/echo/{what}"},
        },
    }
    if rate_limit is not None:
        service["rateLimit"] = {"requestsPerSecond": rate_limit}
    (root / "services" / "progress.json").write_text(json.dumps(service))
    return load(root)[1]


def step_lines(instance: dg.DagsterInstance, run_id: str, step: str) -> list[tuple[int, str]]:
    """The (level, message) of every line a step logged itself, in order (not Dagster's
    own lines, such as its IO manager's)."""
    return [
        (entry.level, entry.user_message)
        for entry in instance.all_logs(run_id)
        if entry.dagster_event is None
        and entry.step_key == step
        and entry.user_message.startswith(f"{step}: ")
    ]


def everything(instance: dg.DagsterInstance, run_id: str) -> str:
    return "\n".join(str(entry) for entry in instance.all_logs(run_id))


NUMBERS = {"sql": "SELECT range AS n FROM range(30)", "outputTable": "numbers"}
FIFTY_PAGES = {
    "id": "fifty_pages",
    "service": "progress",
    "operation": "pages",
    "params": {"per_page": 2, "api_key": QUERY_KEY},
    "dataPath": "results",
    "paginate": {"type": "pageNumber", "pageParam": "page"},
    "outputTable": "listed",
    "outputSchema": {"id": "INTEGER", "name": "VARCHAR"},
}
PER_NUMBER = {
    "id": "per_number",
    "service": "progress",
    "operation": "echo",
    "params": {"what": "{{item.n}}"},
    "forEach": {
        "source": "numbers",
        "itemKey": "n",
        "parallel": 2,
        "rateLimit": {"requestsPerSecond": 20},
    },
}


def test_progress_lines_come_at_a_steady_interval_not_per_page(
    tmp_path: Path, server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 51 requests at 25/s take 2 s, 30 items at 20/s 1.5 s: a line every 0.4 s is a few.
    monkeypatch.setenv("WORKFLOWS_PROGRESS_SECONDS", "0.4")
    defs = defs_with(tmp_path, [FIFTY_PAGES, NUMBERS, PER_NUMBER], rate_limit=25)
    with dg.instance_for_test() as instance:
        result = run_job(defs, "app__calls", instance=instance)
        assert result.success
        pages = [m for _, m in step_lines(instance, result.run_id, "fifty_pages")]
        items = [m for _, m in step_lines(instance, result.run_id, "per_number")]
        logged = everything(instance, result.run_id)
    progress = [m for m in pages if m.startswith("fifty_pages: progress:")]
    assert 2 <= len(progress) <= 10, pages
    for line in progress:
        assert re.search(r"\d+ pages, \d+ records, [\d.]+ pages/s", line), line
        assert re.search(r"at page \d+: GET http://127\.0\.0\.1:\d+/pages\?", line), line
        assert "api_key=***" in line
    numbers = [int(re.search(r"(\d+) pages", m).group(1)) for m in progress]  # type: ignore[union-attr]
    assert numbers == sorted(numbers) and 0 < numbers[0] < numbers[-1] < 51
    assert pages[-1].startswith("fifty_pages: done in ")
    assert "51 pages, 100 records, 51 requests" in pages[-1]

    item_progress = [m for m in items if m.startswith("per_number: progress:")]
    assert 2 <= len(item_progress) <= 10, items
    for line in item_progress:
        assert re.search(r"\d+/30 items done, 0 failed, [\d.]+ calls/s", line), line
    assert items[-1].startswith("per_number: done in ")
    assert "30/30 items done, 0 failed" in items[-1]

    assert "pages total" not in logged
    for secret in (SERVICE_TOKEN, QUERY_KEY):
        assert secret not in logged


def test_every_retry_is_logged_once_with_its_reason_and_delay(
    tmp_path: Path, server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    quick = {"maxRetries": 2, "retryDelayMs": 10}
    steps = [
        {  # request level: two 500s, then a response
            "id": "one_call",
            "service": "progress",
            "operation": "flaky",
            "params": {"id": "single", "fail": 2},
            **quick,
        },
        {  # page level: page 3 fails once
            "id": "paged",
            "service": "progress",
            "operation": "fragile",
            "params": {"per_page": 10, "id": "paged", "fail_from": 3, "failures": 1},
            "dataPath": "results",
            "paginate": {"type": "pageNumber", "pageParam": "page", **quick},
        },
        {"sql": "SELECT range AS n FROM range(3)", "outputTable": "three"},
        {  # item level: every item fails once
            "id": "per_item",
            "service": "progress",
            "operation": "flaky",
            "params": {"id": "item-{{item.n}}", "fail": 1},
            "forEach": {"source": "three", "itemKey": "n", "parallel": 3, **quick},
        },
        {  # a retried error body quoting the service's token, then a skipped item
            "id": "leaks",
            "service": "progress",
            "operation": "leaky",
            "params": {"status": 503},
            "forEach": {"source": "three", "itemKey": "n", "onItemError": "skip"},
            "maxRetries": 1,
            "retryDelayMs": 10,
        },
    ]
    with dg.instance_for_test() as instance:
        result = run_job(defs_with(tmp_path, steps), "app__calls", instance=instance)
        assert result.success
        lines = {
            step: step_lines(instance, result.run_id, step)
            for step in ("one_call", "paged", "per_item", "leaks")
        }
        logged = everything(instance, result.run_id)

    def retries(step: str) -> list[str]:
        return [m for level, m in lines[step] if level == logging.WARNING and "retry " in m]

    single = retries("one_call")
    assert len(single) == 2, lines["one_call"]
    for n, line in enumerate(single, start=1):
        assert line.startswith("one_call: service 'progress' operation 'flaky': HTTP 500 GET")
        assert "id=single" in line and "(page 1)" in line and "try again" in line
        assert f"retry {n}/2 in {0.01 * 2 ** (n - 1):.2f} s" in line
    [paged] = retries("paged")
    assert "HTTP 500" in paged and "(page 3)" in paged and "retry 1/2 in 0.01 s" in paged
    per_item = retries("per_item")
    assert len(per_item) == 3, lines["per_item"]
    assert sorted(re.search(r"item n=(\d)", m).group(1) for m in per_item) == ["0", "1", "2"]  # type: ignore[union-attr]
    assert all("HTTP 500" in m and "retry 1/2" in m for m in per_item)
    assert lines["per_item"][-1][1].startswith("per_item: done in ")
    assert "3/3 items done, 0 failed" in lines["per_item"][-1][1]

    leaks = lines["leaks"]
    assert len(retries("leaks")) == 3 and all("HTTP 503" in m for m in retries("leaks"))
    skipped = [m for _, m in leaks if re.match(r"leaks: item \d skipped: ", m)]
    assert len(skipped) == 3 and all("Bearer ***" in m for m in skipped), leaks
    assert "0/3 items done, 3 failed (skipped)" in leaks[-1][1]
    assert SERVICE_TOKEN not in logged and "Bearer ***" in logged


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf"])
def test_a_bad_progress_pace_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from translators.steps.service_call import progress_interval

    monkeypatch.setenv("WORKFLOWS_PROGRESS_SECONDS", value)
    with pytest.raises(ValueError, match=r"WORKFLOWS_PROGRESS_SECONDS=.*expected a number of se"):
        progress_interval()
    monkeypatch.setenv("WORKFLOWS_PROGRESS_SECONDS", "2.5")
    assert progress_interval() == 2.5
    monkeypatch.delenv("WORKFLOWS_PROGRESS_SECONDS")
    assert progress_interval() == 10.0
