"""How the two drivers run their event loop: `iter_pages` on the caller's thread (or a
thread of its own inside a running loop), `for_each_into` handling each outcome on the
forEach loop's thread; against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from resources.paginators import CursorPaginator
from resources.service import (
    CallRequest,
    ItemOutcome,
    Operation,
    ServiceCallError,
    ServiceResource,
)
from tests.support.http_server import LocalHTTPServer

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer(total_records=23) as srv:
        yield srv


def service(server: LocalHTTPServer) -> ServiceResource:
    return ServiceResource(service_name=f"svc_{uuid.uuid4().hex[:8]}", base_url=server.url)


def cursor_call() -> CallRequest:
    return CallRequest(
        Operation("list", "GET", "/cursor"),
        params={"limit": 5},
        data_path="items",
        paginator=CursorPaginator("next.cursor", "cursor"),
    )


def echo(item: dict[str, Any]) -> CallRequest:
    return CallRequest(Operation("echo", "GET", "/echo/{n}"), params={"n": item["n"]})


def test_iter_pages_sends_from_the_callers_thread(server: LocalHTTPServer) -> None:
    pages = 0
    for page in service(server).iter_pages(cursor_call()):
        assert page.records
        pages += 1
        # No thread of its own sends the pages (two thread switches per page).
        assert not [t for t in threading.enumerate() if t.name.startswith("http-")]
    assert pages == 5


def test_iter_pages_works_inside_a_running_event_loop(server: LocalHTTPServer) -> None:
    async def inside() -> list[Any]:
        # A blocking call made from a coroutine: a second loop cannot run on this thread.
        return [r["id"] for page in service(server).iter_pages(cursor_call()) for r in page.records]

    assert asyncio.run(inside()) == list(range(23))


def test_for_each_into_handles_each_outcome_on_the_loop_thread(server: LocalHTTPServer) -> None:
    seen: list[tuple[Any, str]] = []

    def handle(outcome: ItemOutcome) -> None:
        seen.append((outcome.item["n"], threading.current_thread().name))

    service(server).for_each_into(({"n": n} for n in range(30)), echo, handle, parallel=5)
    assert sorted(n for n, _ in seen) == list(range(30))
    assert {name for _, name in seen} != {threading.current_thread().name}
    assert len({name for _, name in seen}) == 1  # one at a time, on the loop's thread


def test_for_each_into_raises_what_the_handler_raises(server: LocalHTTPServer) -> None:
    handled: list[int] = []

    def handle(outcome: ItemOutcome) -> None:
        handled.append(outcome.item["n"])
        if len(handled) == 3:
            raise ValueError("the table store refused row 3")

    with pytest.raises(ValueError, match="refused row 3"):
        service(server).for_each_into(({"n": n} for n in range(50)), echo, handle, parallel=4)
    assert len(handled) == 3


def test_for_each_into_fails_fast_on_a_failed_item(server: LocalHTTPServer) -> None:
    handled: list[Any] = []

    def build(item: dict[str, Any]) -> CallRequest:
        path = "/nowhere/{n}" if item["n"] == 2 else "/echo/{n}"
        return CallRequest(Operation("get", "GET", path), params={"n": item["n"]})

    with pytest.raises(ServiceCallError, match="HTTP 404"):
        service(server).for_each_into(
            ({"n": n} for n in range(5)), build, handled.append, parallel=1
        )
    assert [o.item["n"] for o in handled] == [0, 1]
    skipped: list[ItemOutcome] = []
    service(server).for_each_into(
        ({"n": n} for n in range(5)), build, skipped.append, on_item_error="skip"
    )
    assert [o.error is not None for o in sorted(skipped, key=lambda o: o.item["n"])] == [
        False,
        False,
        True,
        False,
        False,
    ]


@pytest.mark.parametrize("setting, expected", [(None, "uvloop"), ("asyncio", "asyncio")])
def test_both_drivers_run_on_uvloop_unless_told_otherwise(
    server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch, setting: str | None, expected: str
) -> None:
    if setting is None:
        monkeypatch.delenv("WORKFLOWS_EVENT_LOOP", raising=False)
    else:
        monkeypatch.setenv("WORKFLOWS_EVENT_LOOP", setting)
    loops: list[str] = []

    def record_loop(item: dict[str, Any]) -> CallRequest:
        # build_request runs on the forEach loop's thread, inside its running loop.
        loops.append(type(asyncio.get_running_loop()).__module__.split(".")[0])
        return echo(item)

    outcomes = list(service(server).for_each([{"n": 1}, {"n": 2}], record_loop, parallel=2))
    assert len(outcomes) == 2 and set(loops) == {expected}

    from resources.service_transport import new_event_loop

    loop = new_event_loop()
    try:
        assert type(loop).__module__.split(".")[0] == expected
    finally:
        loop.close()


def test_while_waiting_runs_once_each_request_has_left(server: LocalHTTPServer) -> None:
    """`iter_pages(while_waiting=...)` does the caller's bookkeeping while the server works
    on the next page: when it runs, the server has that request (it could not otherwise:
    the callback blocks the only thread that could still send it). The first request
    opens the connection, so the callback may run before it leaves."""
    received: list[int] = []

    def server_has_the_request() -> None:
        wanted = len(received) + 1
        deadline = time.monotonic() + (5 if wanted > 1 else 0)
        while len(server.requests_to("/cursor")) < wanted and time.monotonic() < deadline:
            time.sleep(0.005)
        received.append(len(server.requests_to("/cursor")))

    pages = list(service(server).iter_pages(cursor_call(), while_waiting=server_has_the_request))
    assert len(pages) == 5
    assert received[1:] == [2, 3, 4, 5]


def test_a_for_each_keeps_older_objects_out_of_its_collections(server: LocalHTTPServer) -> None:
    import gc

    gc.unfreeze()
    frozen_during: list[int] = []

    def record_freeze(item: dict[str, Any]) -> CallRequest:
        frozen_during.append(gc.get_freeze_count())
        return echo(item)

    outcomes = list(service(server).for_each([{"n": 1}, {"n": 2}], record_freeze, parallel=2))
    assert len(outcomes) == 2
    assert min(frozen_during) > 0, "objects alive before the forEach were frozen"
    assert gc.get_freeze_count() == 0, "and given back to the collector after it"


def test_iter_pages_runs_on_uvloop_off_the_main_thread_only(
    server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its loop runs once per page; on the main thread uvloop re-arms signal handling at
    every run (a socketpair per page), so there the standard loop is cheaper."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.delenv("WORKFLOWS_EVENT_LOOP", raising=False)

    def loop_kinds() -> set[str]:
        kinds: set[str] = set()

        def note_loop() -> None:
            kinds.add(type(asyncio.get_running_loop()).__module__.split(".")[0])

        assert len(list(service(server).iter_pages(cursor_call(), while_waiting=note_loop))) == 5
        return kinds

    assert loop_kinds() == {"asyncio"}
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(loop_kinds).result() == {"uvloop"}
