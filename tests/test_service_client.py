"""ServiceResource against a real HTTP server on 127.0.0.1 (no mocks of httpx)."""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from resources.paginators import (
    CursorPaginator,
    LinkHeaderPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    Paginator,
)
from resources.service import (
    CallRequest,
    CallStats,
    ItemOutcome,
    Operation,
    ServiceCallError,
    ServiceResource,
    base_url_variable,
)
from tests.support.http_server import LocalHTTPServer

pytestmark = pytest.mark.integration

TOKENS = {"alice": "tok-alice-6f1d2c", "bob": "tok-bob-93ab77"}


@pytest.fixture
def server() -> Iterator[LocalHTTPServer]:
    users = {token: user for user, token in TOKENS.items()}
    with LocalHTTPServer(total_records=23, user_tokens=users) as srv:
        yield srv


def service(server: LocalHTTPServer, **fields: Any) -> ServiceResource:
    """A service with a unique name, so no rate limiter is shared between tests."""
    name = fields.pop("service_name", f"svc_{uuid.uuid4().hex[:8]}")
    return ServiceResource(service_name=name, base_url=server.url, **fields)


def call(path: str, method: str = "GET", **kwargs: Any) -> CallRequest:
    kwargs.setdefault("retry_delay_ms", 10)
    return CallRequest(Operation(f"op{path.replace('/', '_')}", method, path), **kwargs)


def all_records(svc: ServiceResource, request: CallRequest) -> list[dict[str, Any]]:
    return [r for page in svc.iter_pages(request) for r in page.records]


# --- pagination -------------------------------------------------------------------------

STYLES: list[tuple[str, dict[str, Any], str | None, Paginator]] = [
    ("/cursor", {"limit": 4}, "items", CursorPaginator("next.cursor", "cursor")),
    (
        "/cursor-has-more",
        {"limit": 5},
        "data",
        CursorPaginator("last_id", "starting_after", has_more_field="has_more"),
    ),
    ("/pages", {"per_page": 5}, "results", PageNumberPaginator("page")),
    ("/offset", {}, "rows", OffsetPaginator("offset", "limit", 6)),
    ("/link", {"per_page": 5}, None, LinkHeaderPaginator()),
    ("/link", {"per_page": 4, "split": 1}, None, LinkHeaderPaginator()),
    ("/next-url", {"per_page": 5}, "records", NextUrlPaginator("paging.next")),
    ("/next-url", {"per_page": 7, "absolute": 1}, "records", NextUrlPaginator("paging.next")),
]


@pytest.mark.parametrize(("path", "params", "data_path", "paginator"), STYLES)
def test_every_pagination_style_returns_each_record_once(
    server: LocalHTTPServer,
    path: str,
    params: dict[str, Any],
    data_path: str | None,
    paginator: Paginator,
) -> None:
    stats = CallStats()
    request = call(path, params=params, data_path=data_path, paginator=paginator)
    pages = list(service(server).iter_pages(request, stats=stats))
    ids = [r["id"] for page in pages for r in page.records]
    assert ids == [r["id"] for r in server.records]
    assert [p.number for p in pages] == list(range(1, len(pages) + 1))
    assert (stats.pages, stats.records, stats.retries) == (len(pages), 23, 0)
    assert stats.requests == len(server.requests_to(path)) == len(pages)


@pytest.mark.parametrize(("path", "params", "data_path", "paginator"), STYLES)
def test_a_call_resumes_after_the_checkpoint_of_a_finished_page(
    server: LocalHTTPServer,
    path: str,
    params: dict[str, Any],
    data_path: str | None,
    paginator: Paginator,
) -> None:
    svc = service(server)
    pages = svc.iter_pages(call(path, params=params, data_path=data_path, paginator=paginator))
    done = [next(pages), next(pages)]
    pages.close()  # the run "dies" after two pages
    checkpoint = orjson.loads(orjson.dumps(done[-1].checkpoint))  # stored as JSON
    resumed = call(path, params=params, data_path=data_path, paginator=paginator)
    resumed.resume_from = checkpoint
    rest = list(svc.iter_pages(resumed))
    ids = [r["id"] for page in [*done, *rest] for r in page.records]
    assert ids == [r["id"] for r in server.records]
    assert [p.number for p in rest] == list(range(3, 3 + len(rest)))
    assert rest[-1].checkpoint is None


def test_pages_are_streamed_as_they_arrive(server: LocalHTTPServer) -> None:
    request = call("/pages", params={"per_page": 5}, data_path="results")
    request.paginator = PageNumberPaginator("page")
    pages = service(server).iter_pages(request)
    first = next(pages)
    assert first.number == 1 and len(server.requests_to("/pages")) == 1
    pages.close()


@pytest.mark.parametrize(
    ("path", "paginator", "message"),
    [
        ("/cursor-loop", CursorPaginator("next.cursor", "cursor"), "'same' .*loops"),
        ("/foreign-next", NextUrlPaginator("paging.next"), "elsewhere.invalid.*leaves the service"),
        ("/pages", PageNumberPaginator("page", max_pages=2), "maxPages is 2"),
    ],
)
def test_pagination_errors_name_the_call_and_page(
    server: LocalHTTPServer, path: str, paginator: Paginator, message: str
) -> None:
    request = call(path, paginator=paginator, data_path="items" if "cursor" in path else None)
    with pytest.raises(ServiceCallError, match=message) as caught:
        all_records(service(server, service_name="shop"), request)
    assert "service 'shop'" in str(caught.value) and "(page " in str(caught.value)
    assert len(server.requests_to("/steal")) == 0


# --- request shape ----------------------------------------------------------------------


def test_params_fill_the_path_then_the_query_string(server: LocalHTTPServer) -> None:
    request = call(
        "/echo/repos/{owner}/{repo}",
        params={"owner": "a b/c", "repo": "r", "state": "open", "tags": ["x", "y"], "n": None},
    )
    [record] = all_records(service(server), request)
    assert record["path"] == "/echo/repos/a%20b%2Fc/r"
    assert record["query"] == {"state": ["open"], "tags": ["x", "y"]}


def test_post_params_go_to_the_json_body(server: LocalHTTPServer) -> None:
    request = call("/messages", "POST", params={"text": "hi", "to": {"id": 7}})
    assert all_records(service(server), request) == [{"id": 1}]
    assert server.state.posted == [{"text": "hi", "to": {"id": 7}}]


def test_a_missing_path_parameter_is_an_error(server: LocalHTTPServer) -> None:
    with pytest.raises(ServiceCallError, match="needs the parameter `owner`"):
        all_records(service(server), call("/echo/{owner}"))


def test_base_url_variable_overrides_the_config(
    server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = ServiceResource(service_name="my-crm.v2", base_url="http://127.0.0.1:9/nowhere")
    assert base_url_variable(svc.service_name) == "SERVICE_MY_CRM_V2_BASE_URL"
    monkeypatch.setenv("SERVICE_MY_CRM_V2_BASE_URL", server.url + "/echo/")
    [record] = all_records(svc, call("/x"))
    assert record["path"] == "/echo/x"


def test_no_value_at_data_path_names_the_path_and_the_keys(server: LocalHTTPServer) -> None:
    with pytest.raises(ServiceCallError, match=r"data\.orders.*'method', 'path', 'query'"):
        all_records(service(server), call("/echo/x", data_path="data.orders"))


def test_redirects_are_errors_not_followed(server: LocalHTTPServer) -> None:
    with pytest.raises(ServiceCallError, match=r"HTTP 302 .*redirect to .*/echo/redirected"):
        all_records(service(server), call("/redirect"))
    assert server.requests_to("/echo/redirected") == []


def test_bad_json_is_a_clear_error(server: LocalHTTPServer) -> None:
    with pytest.raises(ServiceCallError, match=r"not valid JSON.*oops"):
        all_records(service(server), call("/bad-json"))


# --- retries ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_flaky_routes_succeed_within_max_retries(server: LocalHTTPServer, status: int) -> None:
    stats = CallStats()
    request = call("/flaky", params={"id": f"s{status}", "fail": 2, "status": status})
    pages = list(service(server).iter_pages(request, stats=stats))
    assert pages[0].records[0]["calls"] == 3
    assert (stats.requests, stats.retries) == (3, 2)


def test_retries_are_exhausted_after_max_retries(server: LocalHTTPServer) -> None:
    request = call("/flaky", params={"id": "x", "fail": 5}, max_retries=2)
    with pytest.raises(ServiceCallError, match=r"HTTP 500 .*after 2 retries") as caught:
        all_records(service(server), request)
    assert caught.value.status == 500
    assert len(server.requests_to("/flaky")) == 3


def test_backoff_doubles_the_delay(server: LocalHTTPServer) -> None:
    started = time.monotonic()
    request = call("/flaky", params={"id": "b", "fail": 3}, retry_delay_ms=100)
    all_records(service(server), request)
    assert time.monotonic() - started >= 0.1 + 0.2 + 0.4 - 0.02


def test_retry_after_is_honoured(server: LocalHTTPServer) -> None:
    started = time.monotonic()
    [record] = all_records(service(server), call("/ratelimited", params={"id": "r"}))
    assert record["calls"] == 2
    assert time.monotonic() - started >= 0.95


def test_timeouts_are_retried_then_reported(server: LocalHTTPServer) -> None:
    request = call("/slow", params={"delay": 0.6}, max_retries=1)
    with pytest.raises(ServiceCallError, match=r"timeoutSeconds=0\.15.*after 1 retries"):
        all_records(service(server, timeout_seconds=0.15), request)
    assert len(server.requests_to("/slow")) == 2


def test_connection_errors_are_retried(server: LocalHTTPServer) -> None:
    svc = ServiceResource(service_name="down", base_url="http://127.0.0.1:9")
    with pytest.raises(ServiceCallError, match=r"ConnectError.*after 1 retries"):
        all_records(svc, call("/x", max_retries=1))


def test_404_fails_at_once_naming_service_operation_status_url_and_body(
    server: LocalHTTPServer,
) -> None:
    svc = service(server, service_name="crm")
    request = CallRequest(Operation("getContact", "GET", "/status/404"), {"q": "a"})
    with pytest.raises(ServiceCallError) as caught:
        all_records(svc, request)
    message = str(caught.value)
    for fragment in ("'crm'", "'getContact'", "HTTP 404", f"{server.url}/status/404?q=a"):
        assert fragment in message
    assert '"error":"status 404"' in message and "page 1" in message
    assert len(server.requests_to("/status/404")) == 1


# --- auth and secrets -------------------------------------------------------------------


def test_auth_types_send_credentials_from_the_environment(
    server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_TOKEN", "bearer-9x8y")
    monkeypatch.setenv("T_KEY", "key-7q6w")
    monkeypatch.setenv("T_USER", "ann")
    monkeypatch.setenv("T_PASS", "pw-5e4r")
    basic = "Basic " + base64.b64encode(b"ann:pw-5e4r").decode()
    header = {"auth_type": "header", "header_name": "X-Api-Key", "value_env": "T_KEY"}
    cases = [
        ({"auth_type": "bearer", "token_env": "T_TOKEN"}, {"authorization": "Bearer bearer-9x8y"}),
        (header, {"x-api-key": "key-7q6w"}),
        (
            {"auth_type": "basic", "username_env": "T_USER", "password_env": "T_PASS"},
            {"authorization": basic},
        ),
    ]
    for fields, required in cases:
        server.required_headers = required
        svc = service(server, **fields)
        assert all_records(svc, call("/protected")) == [{"ok": True}]
        assert not any(secret in str(svc.model_dump()) for secret in required.values())


def test_missing_secret_variable_is_named(server: LocalHTTPServer) -> None:
    svc = service(server, auth_type="bearer", token_env="NO_SUCH_TOKEN_VAR")
    with pytest.raises(ServiceCallError, match="NO_SUCH_TOKEN_VAR is unset"):
        all_records(svc, call("/protected"))


def test_unknown_auth_type_lists_the_valid_ones(server: LocalHTTPServer) -> None:
    with pytest.raises(ServiceCallError, match="none, bearer, header, basic"):
        all_records(service(server, auth_type="oauth"), call("/x"))


def test_no_secret_reaches_errors_or_logs(
    server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = f"sk-{uuid.uuid4().hex}"
    monkeypatch.setenv("LEAK_TOKEN", secret)
    svc = service(server, auth_type="bearer", token_env="LEAK_TOKEN")
    caplog.set_level(logging.DEBUG)
    errors = []
    for request in (
        call("/leaky"),  # the body echoes the Authorization header
        call("/flaky", params={"id": "l", "fail": 9, "api_key": "q-" + secret}, max_retries=1),
    ):
        with pytest.raises(ServiceCallError) as caught:
            all_records(svc, request)
        errors.append(str(caught.value))
    assert "Bearer ***" in errors[0] and "api_key=***" in errors[1]
    assert caplog.records, "the retry should have been logged"
    for text in [*errors, caplog.text, *(r.getMessage() for r in caplog.records)]:
        assert secret not in text


# --- forEach ----------------------------------------------------------------------------


def test_for_each_keeps_at_most_parallel_requests_in_flight(server: LocalHTTPServer) -> None:
    stats = CallStats()
    outcomes = list(
        service(server).for_each(
            ({"n": i} for i in range(40)),
            lambda item: call("/concurrent", params={"n": item["n"], "delay": 0.08}),
            parallel=10,
            item_key="n",
            stats=stats,
        )
    )
    assert sorted(o.key for o in outcomes) == list(range(40))
    assert all(o.error is None and o.records == [{"n": str(o.key)}] for o in outcomes)
    assert 1 < server.state.max_in_flight <= 10
    assert (stats.items, stats.requests, stats.failed_items) == (40, 40, 0)


def test_for_each_consumes_items_lazily(server: LocalHTTPServer) -> None:
    pulled = 0

    def items() -> Iterator[dict[str, Any]]:
        nonlocal pulled
        for i in range(1_000_000):
            pulled += 1
            yield {"n": i}

    outcomes = service(server).for_each(
        items(), lambda item: call("/concurrent", params={"delay": 0.01}), parallel=3
    )
    next(outcomes)
    time.sleep(0.2)
    assert pulled <= 1 + 2 * 3 + 1
    outcomes.close()  # stops the loop thread and cancels work in flight
    assert not [t for t in threading.enumerate() if t.name.startswith("forEach-")]


def test_rate_limit_holds_across_for_each_concurrency(server: LocalHTTPServer) -> None:
    svc = service(server, requests_per_second=5)
    started = time.monotonic()
    outcomes = list(
        svc.for_each(({"n": i} for i in range(20)), lambda item: call("/echo/rl"), parallel=8)
    )
    assert len(outcomes) == 20 and all(o.error is None for o in outcomes)
    assert time.monotonic() - started >= 3.8 - 0.05


def test_service_limit_is_shared_by_every_caller_of_the_service(server: LocalHTTPServer) -> None:
    name = f"shared_{uuid.uuid4().hex[:6]}"

    def run() -> None:
        all_records(service(server, service_name=name, requests_per_minute=600), call("/echo/a"))

    started = time.monotonic()
    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started >= 0.5 - 0.05  # 6 calls at 10/s


def test_for_each_step_rate_limit(server: LocalHTTPServer) -> None:
    started = time.monotonic()
    svc = service(server)
    outs = list(svc.for_each(({} for _ in range(6)), lambda _: call("/echo/s"), parallel=6,
                             rate_limit_per_second=10))  # fmt: skip
    assert len(outs) == 6 and time.monotonic() - started >= 0.5 - 0.05


def test_on_item_error_skip_keeps_good_items_and_lists_bad_ones(server: LocalHTTPServer) -> None:
    items = [{"id": i, "path": "/status/404" if i % 3 == 0 else "/echo/ok"} for i in range(9)]
    stats = CallStats()
    outcomes = list(
        service(server, service_name="skipper").for_each(
            items,
            lambda item: call(item["path"]),
            parallel=4,
            on_item_error="skip",
            item_key="id",
            stats=stats,
        )
    )
    bad = {o.key: o.error for o in outcomes if o.error}
    good = [o.key for o in outcomes if o.error is None]
    assert sorted(bad) == [0, 3, 6] and sorted(good) == [1, 2, 4, 5, 7, 8]
    assert all("item id=" in e and "HTTP 404" in e and "'skipper'" in e for e in bad.values())
    assert (stats.items, stats.failed_items) == (6, 3)


def test_on_item_error_fail_raises_after_cancelling_work_in_flight(
    server: LocalHTTPServer,
) -> None:
    def build(item: dict[str, Any]) -> CallRequest:
        if item["id"] == 2:
            return call("/status/404")
        return call("/slow", params={"delay": 1.5})

    started = time.monotonic()
    with pytest.raises(ServiceCallError, match=r"HTTP 404.*item id=2"):
        list(
            service(server).for_each(
                ({"id": i} for i in range(6)), build, parallel=3, item_key="id"
            )
        )
    assert time.monotonic() - started < 1.4  # the slow calls were cancelled, not awaited


def test_for_each_paginates_each_item_and_posts_bodies(server: LocalHTTPServer) -> None:
    svc = service(server)
    outcomes = list(
        svc.for_each(
            [{"size": 4}, {"size": 10}],
            lambda item: call(
                "/pages",
                params={"per_page": item["size"]},
                data_path="results",
                paginator=PageNumberPaginator("page"),
            ),
            parallel=2,
        )
    )
    by_size = {o.item["size"]: o for o in outcomes}
    assert by_size[4].pages == 7 and by_size[10].pages == 4
    assert all(len(o.records or []) == 23 for o in outcomes)
    sent = list(
        svc.for_each([{"t": "a"}, {"t": "b"}], lambda i: call("/messages", "POST", params=i))
    )
    assert sorted(p["t"] for p in server.state.posted) == ["a", "b"] and len(sent) == 2


def test_run_as_user_uses_each_users_token(
    server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("APP_USER_TOKENS", orjson.dumps(TOKENS).decode())
    caplog.set_level(logging.DEBUG)
    svc = service(server, user_tokens_env="APP_USER_TOKENS")
    items = [{"u": "alice"}, {"u": "bob"}, {"u": "carol"}, {"u": "alice"}]
    outcomes: list[ItemOutcome] = list(
        svc.for_each(
            items,
            lambda item: call("/me", params={"item": item["u"]}, user=item["u"]),
            parallel=2,
            on_item_error="skip",
            item_key="u",
        )
    )
    for outcome in outcomes:
        if outcome.key == "carol":
            assert outcome.error is not None and "no token for user carol" in outcome.error
        else:
            assert outcome.records == [{"user": outcome.key, "item": outcome.key}]
    texts = [o.error or "" for o in outcomes] + [caplog.text]
    assert not any(token in text for token in TOKENS.values() for text in texts)


def test_run_as_user_in_a_single_call_and_unknown_user(
    server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_USER_TOKENS", orjson.dumps(TOKENS).decode())
    svc = service(server, user_tokens_env="APP_USER_TOKENS")
    assert all_records(svc, call("/me", user="bob"))[0]["user"] == "bob"
    with pytest.raises(ServiceCallError, match="no token for user mallory"):
        all_records(svc, call("/me", user="mallory"))


def test_progress_callback_reports_while_running(server: LocalHTTPServer) -> None:
    seen: list[int] = []
    stats = CallStats(on_progress=lambda s: seen.append(s.pages), progress_interval_s=0)
    request = call("/pages", params={"per_page": 5}, data_path="results")
    request.paginator = PageNumberPaginator("page")
    list(service(server).iter_pages(request, stats=stats))
    assert seen == [1, 2, 3, 4, 5, 6] and stats.duration_s > 0


def test_for_each_validates_its_options(server: LocalHTTPServer) -> None:
    svc = service(server)
    with pytest.raises(ValueError, match="between 1 and 50"):
        svc.for_each([], lambda _: call("/x"), parallel=51)
    with pytest.raises(ValueError, match="'fail' or 'skip'"):
        svc.for_each([], lambda _: call("/x"), on_item_error="ignore")  # type: ignore[arg-type]
    assert list(svc.for_each([], lambda _: call("/x"))) == []
