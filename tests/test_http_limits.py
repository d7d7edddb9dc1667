"""Limits of a request against the real test server: the total deadline, the body size
cap, masking before the error excerpt is cut, and path values that must stay one segment.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from resources.service import (
    CallRequest,
    ItemOutcome,
    Operation,
    ServiceCallError,
    ServiceResource,
)
from tests.definition_files import SHOP_SERVICE, write_defs
from tests.support.http_server import LocalHTTPServer
from translators.definitions import service_resource
from translators.loader import load_definitions
from translators.spec import ServiceSpec

pytestmark = pytest.mark.integration

MIB = 2**20


@pytest.fixture
def server() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as srv:
        yield srv


def service(server: LocalHTTPServer, **fields: Any) -> ServiceResource:
    """A service with a unique name, so no rate limiter is shared between tests."""
    return ServiceResource(
        service_name=f"lim_{uuid.uuid4().hex[:8]}", base_url=server.url, **fields
    )


def call(path: str, name: str = "getThing", **kwargs: Any) -> CallRequest:
    kwargs.setdefault("retry_delay_ms", 10)
    kwargs.setdefault("max_retries", 0)
    return CallRequest(Operation(name, "GET", path), **kwargs)


def run_plain(svc: ServiceResource, request: CallRequest) -> list[dict[str, Any]]:
    return [r for page in svc.iter_pages(request) for r in page.records]


def run_for_each(svc: ServiceResource, request: CallRequest) -> list[dict[str, Any]]:
    """The same request once, as the one item of a forEach that fails on error."""
    outcomes: list[ItemOutcome] = list(svc.for_each([{"n": 1}], lambda item: request))
    return [r for o in outcomes for r in o.records or []]


DRIVERS: dict[str, Callable[[ServiceResource, CallRequest], list[dict[str, Any]]]] = {
    "plain": run_plain,
    "forEach": run_for_each,
}


# --- point 3: the excerpt of an error body is masked before it is cut --------------------


@pytest.mark.parametrize("status", [401, 400])
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_token_across_the_excerpt_cut_shows_no_part(
    server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch, status: int, driver: str
) -> None:
    token = "Zq" + uuid.uuid4().hex + "Wk"  # 36 characters
    monkeypatch.setenv("LIMITS_TOKEN", token)
    svc = service(server, auth_type="bearer", token_env="LIMITS_TOKEN")
    # {"error":"<pad>bad credentials: Bearer <token>"}: the token starts at character 290.
    request = call("/leaky", params={"status": status, "pad": 256})
    with pytest.raises(ServiceCallError) as caught:
        DRIVERS[driver](svc, request)
    message = str(caught.value)
    assert f"HTTP {status}" in message and "bad credentials: Bearer" in message
    assert token[:4] not in message and token[-4:] not in message


# --- point 5: the total deadline of one request attempt ---------------------------------


@pytest.mark.parametrize("phase", ["body", "headers"])
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_trickling_server_fails_at_the_deadline(
    server: LocalHTTPServer, driver: str, phase: str
) -> None:
    svc = service(server, timeout_seconds=1)
    # 66 bytes over 5 s: every read gets a byte long before a per-read timeout of 1 s.
    request = call("/trickle", name="slowThing", params={"bytes": 66, "seconds": 5, "in": phase})
    started = time.monotonic()
    with pytest.raises(ServiceCallError) as caught:
        DRIVERS[driver](svc, request)
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert 0.9 <= elapsed < 2.5, elapsed
    assert f"service {svc.service_name!r}" in message and "operation 'slowThing'" in message
    assert "timeoutSeconds=1" in message


def test_a_deadline_overrun_is_retried_like_a_timeout(server: LocalHTTPServer) -> None:
    svc = service(server, timeout_seconds=0.5)
    request = call("/trickle", params={"bytes": 40, "seconds": 3}, max_retries=1)
    started = time.monotonic()
    with pytest.raises(ServiceCallError, match=r"timeoutSeconds=0\.5.*after 1 retries"):
        run_plain(svc, request)
    assert len(server.requests_to("/trickle")) == 2
    assert time.monotonic() - started < 2.5


def test_a_response_within_the_deadline_is_read(server: LocalHTTPServer) -> None:
    svc = service(server, timeout_seconds=3)
    request = call("/trickle", params={"bytes": 20, "seconds": 0.4}, data_path=None)
    assert run_plain(svc, request) == [{"pad": "x" * 9}]


# --- point 5: the size cap of a response body -------------------------------------------


@pytest.mark.parametrize("length", ["1", "0"], ids=["content-length", "chunked"])
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_huge_body_fails_naming_the_limit_with_memory_bounded(
    server: LocalHTTPServer, driver: str, length: str
) -> None:
    svc = service(server, max_response_bytes=4 * MIB)
    params = {"bytes": 50 * MIB, "length": length}
    request = call("/huge", name="bigThing", params=params, max_retries=3)
    tracemalloc.start()
    try:
        with pytest.raises(ServiceCallError) as caught:
            DRIVERS[driver](svc, request)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert f"service {svc.service_name!r}" in message and "operation 'bigThing'" in message
    assert "maxResponseBytes=4194304" in message
    assert peak < 40 * MIB, peak  # the whole body would be 50 MiB, twice over when joined
    assert len(server.requests_to("/huge")) == 1  # not retried


def test_a_body_at_the_cap_is_read(server: LocalHTTPServer) -> None:
    svc = service(server, max_response_bytes=MIB)
    request = call("/huge", params={"bytes": MIB, "length": "0"})
    [record] = run_plain(svc, request)
    assert len(record["pad"]) == MIB - 11


def test_the_cap_has_a_sensible_default() -> None:
    svc = ServiceResource(service_name="x", base_url="http://127.0.0.1:9")
    assert svc.max_response_bytes == 64 * MIB
    assert ServiceSpec.model_validate(SHOP_SERVICE).max_response_bytes == 64 * MIB


def test_the_catalog_setting_reaches_the_resource(tmp_path: Path) -> None:
    entry = {**SHOP_SERVICE, "maxResponseBytes": 2 * MIB, "timeoutSeconds": 7}
    result = load_definitions(write_defs(tmp_path, {"services/shop.json": entry}))
    assert result.ok, result.problems
    resource = service_resource(result.services["shop"])
    assert (resource.max_response_bytes, resource.timeout_seconds) == (2 * MIB, 7)


def test_a_bad_cap_is_a_problem_at_its_pointer(tmp_path: Path) -> None:
    entry = {**SHOP_SERVICE, "maxResponseBytes": 10}
    result = load_definitions(write_defs(tmp_path, {"services/shop.json": entry}))
    [problem] = [p for p in result.problems if p.file == "services/shop.json"]
    assert problem.pointer == "/maxResponseBytes" and "1024" in str(problem)


# --- point 6: path values stay one segment ----------------------------------------------

# value -> how its segment must look on the wire
ENCODED = {
    "..": "%2E%2E",
    ".": "%2E",
    "a/b": "a%2Fb",
    "?x": "%3Fx",
    "#f": "%23f",
    "../..": "..%2F..",
}


@pytest.mark.parametrize("value", list(ENCODED))
def test_a_path_value_reaches_the_server_as_one_encoded_segment(
    server: LocalHTTPServer, value: str
) -> None:
    svc = service(server)
    request = call("/echo/item/{id}/detail", params={"id": value, "q": 1})
    [record] = run_plain(svc, request)
    raw = f"/echo/item/{ENCODED[value]}/detail"
    assert record["path"] == raw and record["query"] == {"q": ["1"]}
    assert [r.path for r in server.state.requests] == [raw]


def test_forEach_item_data_in_the_path_stays_one_segment(server: LocalHTTPServer) -> None:
    svc = service(server)
    items = [{"id": value} for value in ENCODED]
    outcomes = list(
        svc.for_each(
            items,
            lambda item: call("/echo/item/{id}/detail", params={"id": item["id"]}),
            parallel=3,
            item_key="id",
        )
    )
    seen = {o.key: o.records[0]["path"] for o in outcomes if o.records}
    assert seen == {value: f"/echo/item/{ENCODED[value]}/detail" for value in ENCODED}
    logged = sorted(r.path for r in server.state.requests)
    assert logged == sorted(f"/echo/item/{raw}/detail" for raw in ENCODED.values())


def test_a_blocking_call_works_inside_a_running_event_loop(server: LocalHTTPServer) -> None:
    """The blocking driver's private loop must not clash with the caller's (a forEach
    worker could ask a service something from inside its own loop)."""
    svc = service(server, timeout_seconds=1)

    async def inside() -> list[dict[str, Any]]:
        return run_plain(svc, call("/trickle", params={"bytes": 20, "seconds": 0.1}))

    assert asyncio.run(inside()) == [{"pad": "x" * 9}]
    with pytest.raises(ServiceCallError, match="timeoutSeconds=1"):
        asyncio.run(_slow_inside(svc))


async def _slow_inside(svc: ServiceResource) -> list[dict[str, Any]]:
    return run_plain(svc, call("/trickle", params={"bytes": 40, "seconds": 4}))
