"""The paginator family without HTTP: first params, next page, stop rules (SPEC 5.1)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from resources.paginators import (
    CursorPaginator,
    LinkHeaderPaginator,
    NextPage,
    NextUrlPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    PaginationError,
    Paginator,
    ensure_same_origin,
    header_value,
    parse_link_header,
)

BASE = "http://api.test/v1/items?limit=5"


def step(p: Paginator, body: Any = None, count: int = 1, **headers: str) -> NextPage | None:
    return p.next_request(body, headers, count, current_url=BASE)


# --- cursor -----------------------------------------------------------------------------


def test_cursor_reads_a_dot_path_and_sends_it_as_param() -> None:
    p = CursorPaginator("meta.next", "after")
    assert p.first_request_params() == {}
    assert step(p, {"meta": {"next": "c2"}}) == NextPage(params={"after": "c2"})
    assert step(p, {"meta": {"next": 17}}) == NextPage(params={"after": 17})


@pytest.mark.parametrize(
    "body", [{"meta": {"next": None}}, {"meta": {"next": ""}}, {"meta": {}}, {}, None]
)
def test_cursor_stops_on_null_empty_or_absent_cursor(body: Any) -> None:
    assert step(CursorPaginator("meta.next", "after"), body) is None


@pytest.mark.parametrize(
    ("has_more", "expected"),
    [(False, None), ("false", None), (0, None), (None, None), (True, {"after": "c"})],
)
def test_cursor_has_more_false_stops_even_with_a_cursor(has_more: Any, expected: Any) -> None:
    p = CursorPaginator("next", "after", has_more_field="page.has_more")
    result = step(p, {"next": "c", "page": {"has_more": has_more}})
    assert (result.params if result else None) == expected


def test_cursor_absent_has_more_field_is_an_error_naming_it() -> None:
    p = CursorPaginator("next", "after", has_more_field="hasMore")
    with pytest.raises(PaginationError, match=r"hasMoreField `hasMore`.*\['has_more', 'next'\]"):
        step(p, {"next": "c", "has_more": True})


def test_cursor_that_repeats_is_a_loop_error() -> None:
    p = CursorPaginator("next", "after")
    step(p, {"next": "a"})
    step(p, {"next": "b"})
    with pytest.raises(PaginationError, match=r"'a' .*already used.*loops"):
        step(p, {"next": "a"})


def test_cursor_must_be_a_scalar() -> None:
    with pytest.raises(PaginationError, match="holds a dict"):
        step(CursorPaginator("next", "after"), {"next": {"x": 1}})


# --- page number and offset -------------------------------------------------------------


def test_page_number_counts_up_from_start_page_until_an_empty_page() -> None:
    p = PageNumberPaginator("page", start_page=0)
    assert p.first_request_params() == {"page": 0}
    assert step(p, count=5) == NextPage(params={"page": 1})
    assert step(p, count=1) == NextPage(params={"page": 2})
    assert step(p, count=0) is None


def test_offset_advances_by_limit_until_an_empty_page() -> None:
    p = OffsetPaginator("offset", "limit", 10, start_offset=5)
    assert p.first_request_params() == {"offset": 5, "limit": 10}
    assert step(p, count=10) == NextPage(params={"offset": 15, "limit": 10})
    assert step(p, count=3) == NextPage(params={"offset": 25, "limit": 10})
    assert step(p, count=0) is None


def test_offset_needs_a_positive_limit() -> None:
    with pytest.raises(ValueError, match="limit_value"):
        OffsetPaginator("offset", "limit", 0)


# --- max pages and fresh state ----------------------------------------------------------


def test_exceeding_max_pages_is_an_error_not_a_silent_stop() -> None:
    p = PageNumberPaginator("page", max_pages=3)
    step(p, count=1)
    step(p, count=1)
    with pytest.raises(PaginationError, match="maxPages is 3"):
        step(p, count=1)


def test_exactly_max_pages_is_fine() -> None:
    p = PageNumberPaginator("page", max_pages=3)
    assert [step(p, count=c) is None for c in (1, 1, 0)] == [False, False, True]


def test_max_pages_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_pages"):
        LinkHeaderPaginator(max_pages=0)


def test_fresh_copies_settings_but_not_loop_state() -> None:
    p = CursorPaginator("next", "after", max_pages=7)
    step(p, {"next": "a"})
    clone = p.fresh()
    assert (clone.cursor_field, clone.max_pages) == ("next", 7)
    assert step(clone, {"next": "a"}) == NextPage(params={"after": "a"})  # not a loop here
    with pytest.raises(PaginationError):
        step(p, {"next": "a"})


def test_checkpoint_and_resumed_carry_the_counters() -> None:
    p = OffsetPaginator("offset", "limit", 10, max_pages=3)
    step(p, count=10)
    resumed = p.resumed(p.checkpoint())
    assert p.checkpoint() == {"pages_seen": 1, "offset": 10}
    assert step(resumed, count=10) == NextPage(params={"offset": 20, "limit": 10})
    with pytest.raises(PaginationError, match="maxPages is 3"):
        step(resumed, count=10)
    assert PageNumberPaginator("p").resumed({"pages_seen": 4, "page": 5}).checkpoint() == {
        "pages_seen": 4,
        "page": 5,
    }


# --- link header ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('<https://a/2>; rel="next"', [("https://a/2", {"rel": "next"})]),
        ("<https://a/2>; rel=next", [("https://a/2", {"rel": "next"})]),
        (
            '<https://a/1>; rel="prev", <https://a/3>; REL="next last"',
            [("https://a/1", {"rel": "prev"}), ("https://a/3", {"rel": "next last"})],
        ),
        (
            '<https://a/1>; title="x, rel=\\"next\\""; rel=prev,<https://a/2?a=1,2>;rel=next',
            [
                ("https://a/1", {"title": 'x, rel="next"', "rel": "prev"}),
                ("https://a/2?a=1,2", {"rel": "next"}),
            ],
        ),
        ('<https://a/2>; rel="next"; rel="prev"', [("https://a/2", {"rel": "next"})]),
        ("", []),
        ("garbage", []),
    ],
)
def test_parse_link_header(value: str, expected: list[Any]) -> None:
    assert parse_link_header(value) == expected


def test_link_follows_rel_next_resolved_against_the_current_url() -> None:
    header = '</v1/items?page=1>; rel="prev", <items?page=3>; rel="Next"'
    assert step(LinkHeaderPaginator(), Link=header) == NextPage(
        url="http://api.test/v1/items?page=3"
    )


def test_link_ignores_next_quoted_inside_other_params() -> None:
    header = '<https://api.test/1>; title="rel=\\"next\\""; rel="prev"'
    assert step(LinkHeaderPaginator(), link=header) is None


def test_link_reads_repeated_link_headers() -> None:
    headers = httpx.Headers(
        [("Link", '<https://api.test/9>; rel="last"'), ("link", "</2>; rel=next")]
    )
    result = LinkHeaderPaginator().next_request([], headers, 1, current_url=BASE)
    assert result == NextPage(url="http://api.test/2")


def test_link_stops_without_next_and_errors_on_a_repeat() -> None:
    p = LinkHeaderPaginator()
    assert step(p, Link='<https://api.test/1>; rel="first"') is None
    assert step(p) is None
    step(p, Link='</p2>; rel="next"')
    with pytest.raises(PaginationError, match="repeats"):
        step(p, Link='</p2>; rel="next"')


# --- next url ---------------------------------------------------------------------------


def test_next_url_resolves_relative_urls_and_stops_on_empty() -> None:
    p = NextUrlPaginator("paging.next")
    assert step(p, {"paging": {"next": "?page=2"}}) == NextPage(
        url="http://api.test/v1/items?page=2"
    )
    assert step(p, {"paging": {"next": "https://api.test/x"}}) == NextPage(url="https://api.test/x")
    empty: list[dict[str, Any]] = [{"paging": {"next": None}}, {"paging": {"next": ""}}, {}]
    for body in empty:
        assert step(p, body) is None


def test_next_url_equal_to_the_current_url_is_a_loop() -> None:
    with pytest.raises(PaginationError, match="loops"):
        step(NextUrlPaginator("next"), {"next": BASE})


def test_next_url_must_be_a_string() -> None:
    with pytest.raises(PaginationError, match="holds a int"):
        step(NextUrlPaginator("next"), {"next": 3})


# --- origin and headers -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://api.test/v2/x", "http://API.test:80/y?z=1", "http://api.test"]
)
def test_same_origin_is_accepted(url: str) -> None:
    ensure_same_origin(url, "http://api.test/v1")


@pytest.mark.parametrize(
    "url", ["https://api.test/x", "http://api.test:8080/x", "http://evil.test/x", "//evil.test"]
)
def test_other_origins_are_refused(url: str) -> None:
    with pytest.raises(PaginationError, match=r"leaves the service's origin http://api.test:80"):
        ensure_same_origin(url, "http://api.test/v1")


def test_origin_error_masks_sensitive_query_values() -> None:
    with pytest.raises(PaginationError) as caught:
        ensure_same_origin("http://evil.test/x?api_key=hunter2", "http://api.test")
    assert "hunter2" not in str(caught.value)


def test_header_value_is_case_insensitive() -> None:
    assert header_value({"LINK": "a"}, "link") == "a"
    assert header_value({}, "link") == ""
