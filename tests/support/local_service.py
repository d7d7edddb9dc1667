"""A catalog service served by the test HTTP server (tests/support/http_server.py), the
definitions folder around it, and what the server saw: shared by the end-to-end tests
that run workflows against failing pages, stalls and token checks."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from resources.service import base_url_variable
from tests.support.http_server import LocalHTTPServer, RecordedRequest
from tests.support.jobs import write_defs

# The base URL in the catalog file is never called: the env variable points at the server.
UNUSED_BASE_URL = "http://127.0.0.1:9/unused"
FRAGILE_PAGES = "/fragile-pages"


def local_service(operations: Mapping[str, dict], name: str = "local", **extra: Any) -> dict:
    """A catalog entry whose operations the test server answers."""
    return {"name": name, "baseUrl": UNUSED_BASE_URL, "operations": dict(operations), **extra}


@contextmanager
def serving(
    monkeypatch: pytest.MonkeyPatch,
    service: str = "local",
    env: Mapping[str, str] | None = None,
    **options: Any,
) -> Iterator[LocalHTTPServer]:
    """The test server (`options` go to it), `SERVICE_<NAME>_BASE_URL` pointing at it and
    `env` (tokens) set; stopped at the end."""
    with LocalHTTPServer(**options) as server:
        monkeypatch.setenv(base_url_variable(service), server.url)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        yield server


def one_at_a_time(*steps: dict) -> dict:
    """A workflow of `steps` that runs one step at a time (a deterministic request log)."""
    return {"settings": {"maxParallelSteps": 1}, "steps": list(steps)}


def write_service_defs(
    root: Path,
    workflows: dict[str, dict],
    *services: dict,
    monkeypatch: pytest.MonkeyPatch | None = None,
    app_id: str = "app",
) -> Path:
    """`write_defs` plus the given catalog entries; with `monkeypatch`, also
    `WORKFLOW_DEFS_DIR`, which the reconstructed jobs (step processes) read."""
    defs = write_defs(root, app_id, workflows)
    for service in services:
        (defs / "services" / f"{service['name']}.json").write_text(json.dumps(service))
    if monkeypatch is not None:
        monkeypatch.setenv("WORKFLOW_DEFS_DIR", str(defs))
    return defs


def page_of(request: RecordedRequest) -> int:
    return int(request.query["page"][-1])


def pages_asked(requests: Iterable[RecordedRequest], path: str = FRAGILE_PAGES) -> Counter[int]:
    """How often each page of `path` was requested."""
    return Counter(page_of(r) for r in requests if r.path == path)
