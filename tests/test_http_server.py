"""The test HTTP server itself: each route behaves as the client tests assume."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.support.http_server import LocalHTTPServer

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer(total_records=12, user_tokens={"tok-a": "alice"}) as srv:
        yield srv


@pytest.fixture
def client(server: LocalHTTPServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=5) as c:
        yield c


def test_listens_on_loopback_and_unknown_routes_are_404(
    server: LocalHTTPServer, client: httpx.Client
) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json()["path"] == "/nope"


def test_cursor_route_walks_all_records(client: httpx.Client) -> None:
    seen, cursor = [], None
    while True:
        body = client.get("/cursor", params={"limit": 5, **({"cursor": cursor} if cursor else {})})
        seen += [r["id"] for r in body.json()["items"]]
        cursor = body.json()["next"]["cursor"]
        if cursor is None:
            break
    assert seen == list(range(12))


def test_cursor_has_more_route_says_when_to_stop(client: httpx.Client) -> None:
    last = client.get("/cursor-has-more", params={"starting_after": 9, "limit": 5}).json()
    assert [r["id"] for r in last["data"]] == [10, 11]
    assert last["has_more"] is False and last["last_id"] == 11


def test_page_and_offset_routes_end_with_an_empty_page(client: httpx.Client) -> None:
    assert len(client.get("/pages", params={"page": 3, "per_page": 5}).json()["results"]) == 2
    assert client.get("/pages", params={"page": 4, "per_page": 5}).json()["results"] == []
    assert client.get("/offset", params={"offset": 12, "limit": 5}).json()["rows"] == []


def test_link_route_sends_next_only_before_the_last_page(client: httpx.Client) -> None:
    first = client.get("/link", params={"page": 1, "per_page": 5})
    assert 'rel="next"' in first.headers["link"]
    split = client.get("/link", params={"page": 2, "per_page": 5, "split": 1})
    assert len(split.headers.get_list("link")) == 3
    last = client.get("/link", params={"page": 3, "per_page": 5})
    assert 'rel="next"' not in last.headers["link"].replace('\\"next\\"', "")
    assert [r["id"] for r in last.json()] == [10, 11]


def test_next_url_route_is_relative_unless_asked(
    server: LocalHTTPServer, client: httpx.Client
) -> None:
    relative = client.get("/next-url").json()["paging"]["next"]
    absolute = client.get("/next-url", params={"absolute": 1}).json()["paging"]["next"]
    assert relative.startswith("/next-url?page=2")
    assert absolute.startswith(server.url + "/next-url?page=2")


def test_flaky_route_fails_n_times_per_id(client: httpx.Client) -> None:
    codes = [client.get("/flaky", params={"id": "a", "fail": 2}).status_code for _ in range(3)]
    assert codes == [500, 500, 200]
    assert client.get("/flaky", params={"id": "b", "fail": 2}).status_code == 500


def test_ratelimited_route_sends_retry_after_once(client: httpx.Client) -> None:
    first = client.get("/ratelimited", params={"id": "x", "retry_after": "2"})
    assert (first.status_code, first.headers["retry-after"]) == (429, "2")
    assert client.get("/ratelimited", params={"id": "x"}).status_code == 200


def test_bad_json_and_leaky_routes(client: httpx.Client) -> None:
    with pytest.raises(ValueError):
        client.get("/bad-json").json()
    leaky = client.get("/leaky", headers={"Authorization": "Bearer s3cr3t"})
    assert leaky.status_code == 403 and "s3cr3t" in leaky.text


def test_redirect_route_points_to_echo(server: LocalHTTPServer, client: httpx.Client) -> None:
    response = client.get("/redirect")
    assert response.status_code == 302
    assert response.headers["location"] == f"{server.url}/echo/redirected"


def test_me_route_checks_bearer_tokens(client: httpx.Client) -> None:
    assert client.get("/me", headers={"Authorization": "Bearer tok-a"}).json()["user"] == "alice"
    assert client.get("/me", headers={"Authorization": "Bearer other"}).status_code == 401


def test_messages_route_records_bodies(server: LocalHTTPServer, client: httpx.Client) -> None:
    assert client.post("/messages", json={"text": "hi"}).json() == {"id": 1}
    assert server.state.posted == [{"text": "hi"}]


def test_in_flight_counter_sees_parallel_requests(server: LocalHTTPServer) -> None:
    # Clients are built before the threads start (building one takes tens of ms on a busy
    # machine), and each request outlasts the others' start by a wide margin.
    clients = [httpx.Client(base_url=server.url, timeout=10) for _ in range(4)]

    def call(client: httpx.Client) -> None:
        with client:
            client.get("/concurrent", params={"delay": 1.0})

    threads = [threading.Thread(target=call, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert server.state.max_in_flight == 4
    assert server.state.in_flight == 0
    assert len(server.requests_to("/concurrent")) == 4


def test_slow_route_outlasts_a_short_timeout(client: httpx.Client) -> None:
    with pytest.raises(httpx.ReadTimeout):
        client.get("/slow", params={"delay": 0.5}, timeout=0.1)


def test_leaky_route_pads_and_takes_a_status(client: httpx.Client) -> None:
    response = client.get(
        "/leaky", params={"status": 401, "pad": 256}, headers={"Authorization": "Bearer s3cr3t"}
    )
    assert response.status_code == 401
    assert response.text.index("s3cr3t") == 10 + 256 + len("bad credentials: Bearer ")


def test_trickle_route_spreads_its_body_over_the_time_asked(client: httpx.Client) -> None:
    started = time.monotonic()
    with client.stream("GET", "/trickle", params={"bytes": 20, "seconds": 0.6}) as response:
        pieces = list(response.iter_raw())
    assert time.monotonic() - started >= 0.55
    assert len(pieces) >= 5  # sent in pieces, not at once
    assert orjson.loads(b"".join(pieces)) == {"pad": "x" * 9}


def test_trickle_route_can_trickle_the_headers(client: httpx.Client) -> None:
    started = time.monotonic()
    response = client.get("/trickle", params={"bytes": 20, "seconds": 0.5, "in": "headers"})
    assert time.monotonic() - started >= 0.45
    assert response.json() == {"pad": "x" * 9}


@pytest.mark.parametrize("length", ["1", "0"])
def test_huge_route_sends_the_size_asked_with_or_without_length(
    client: httpx.Client, length: str
) -> None:
    size = 3 * 2**20 + 5
    with client.stream("GET", "/huge", params={"bytes": size, "length": length}) as response:
        declared = response.headers.get("content-length")
        total = sum(len(piece) for piece in response.iter_bytes())
    assert total == size
    assert declared == (str(size) if length == "1" else None)
    assert response.headers.get("transfer-encoding") == (None if length == "1" else "chunked")


def test_echo_route_keeps_the_raw_path(server: LocalHTTPServer, client: httpx.Client) -> None:
    response = client.get(httpx.URL(f"{server.url}/echo/a%2Fb/%2E%2E/x"))
    assert response.json()["path"] == "/echo/a%2Fb/%2E%2E/x"
    assert server.requests_to("/echo/a%2Fb/%2E%2E/x")


# --- checkpoint faults -------------------------------------------------------------------


def test_fragile_pages_fail_from_a_page_for_the_first_requests(client: httpx.Client) -> None:
    faults = {"per_page": 5, "id": "a", "fail_from": 2, "failures": 2, "status": 503}
    assert client.get("/fragile-pages", params={**faults, "page": 1}).status_code == 200
    statuses = [
        client.get("/fragile-pages", params={**faults, "page": 2}).status_code for _ in range(3)
    ]
    assert statuses == [503, 503, 200]
    last = client.get("/fragile-pages", params={**faults, "page": 3}).json()
    assert [r["id"] for r in last["results"]] == [10, 11] and last["page"] == 3
    other = {**faults, "id": "b", "page": 2}
    assert client.get("/fragile-pages", params=other).status_code == 503, "counted per id"


def test_fragile_pages_stall_once_and_tag_items(client: httpx.Client) -> None:
    stall = {"per_page": 5, "id": "s", "stall_at": 2, "stall_s": 0.4, "item": "x7"}
    started = time.monotonic()
    first = client.get("/fragile-pages", params={**stall, "page": 2}).json()
    assert time.monotonic() - started >= 0.4
    assert {r["item"] for r in first["results"]} == {"x7"}
    started = time.monotonic()
    client.get("/fragile-pages", params={**stall, "page": 2})
    assert time.monotonic() - started < 0.3, "only the first request of the page stalls"


# --- charges (exactly-once mutations) ---------------------------------------------------


def test_charges_are_recorded_per_invoice_and_listed(
    server: LocalHTTPServer, client: httpx.Client
) -> None:
    first = client.post("/charges", json={"invoice": "inv-1", "amount": 100})
    client.post("/charges", json={"invoice": "inv-2", "amount": 5})
    client.post("/charges", json={"invoice": "inv-1", "amount": 100})
    assert first.status_code == 201
    assert first.json() == {"id": 1, "invoice": "inv-1", "amount": 100}
    listed = client.get("/charges", params={"invoice": "inv-1"}).json()["charges"]
    assert [c["id"] for c in listed] == [1, 3]
    assert server.charges.per_invoice() == {"inv-1": 2, "inv-2": 1}
    assert len(client.get("/charges").json()["charges"]) == 3


def test_a_charge_with_a_known_idempotency_key_is_not_applied_again(
    server: LocalHTTPServer, client: httpx.Client
) -> None:
    headers = {"Idempotency-Key": "k-1"}
    first = client.post("/charges", json={"invoice": "inv-1"}, headers=headers)
    again = client.post("/charges", json={"invoice": "inv-1"}, headers=headers)
    other = client.post("/charges", json={"invoice": "inv-1"}, headers={"Idempotency-Key": "k-2"})
    assert first.json() == again.json() and first.json()["id"] == 1
    assert other.json()["id"] == 2
    assert server.charges.per_invoice() == {"inv-1": 2}


def test_a_stalling_charge_is_applied_before_the_client_gives_up(
    server: LocalHTTPServer, client: httpx.Client
) -> None:
    server.charges.misbehave("inv-1", stall_s=2)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.post("/charges", json={"invoice": "inv-1"}, timeout=0.3)
    assert time.monotonic() - started < 1.5
    assert server.charges.per_invoice() == {"inv-1": 1}, "applied, although the client timed out"
    # Only the first charge of the invoice misbehaves.
    assert client.post("/charges", json={"invoice": "inv-1"}, timeout=0.3).status_code == 201


def test_a_charge_can_fail_or_drop_the_connection_after_it_was_applied(
    server: LocalHTTPServer, client: httpx.Client
) -> None:
    server.charges.misbehave("inv-1", status=502)
    server.charges.misbehave("inv-2", drop=True)
    assert client.post("/charges", json={"invoice": "inv-1"}).status_code == 502
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/charges", json={"invoice": "inv-2"})
    assert server.charges.per_invoice() == {"inv-1": 1, "inv-2": 1}
