"""One small class per pagination style (SPEC 5.1); no HTTP in here.

The service client owns the one page loop. It asks a paginator for the parameters of
the first request, then, after each response, for the next page: `None` means there
is none. A `NextPage` carries either parameters to merge into the request or an
absolute URL to request as it is. Everything that could make the loop run forever or
stop too early is an error here: a repeated cursor or URL, more pages than
`max_pages`, a configured `has_more_field` that is absent.

A paginator keeps the state of one page loop (the page number, the cursors seen);
the client takes a `fresh()` copy for each loop, so one configured paginator may serve
many forEach items at once. Dot paths (`meta.next_cursor`) read the whole response with
`resources.records.get_path`, the same rule as `dataPath`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urljoin, urlsplit

from resources.records import MISSING, get_path
from resources.secrets import redact_url

DEFAULT_MAX_PAGES = 10_000


class PaginationError(Exception):
    """The pagination cannot go on correctly (loop, too many pages, bad next page)."""


def keys_along(data: Any, path: str) -> list[str]:
    """The keys present where a lookup of `path` stopped, for error messages."""
    value = data
    for part in path.split("."):
        following = get_path(value, part)
        if following is MISSING:
            break
        value = following
    return sorted(str(k) for k in value) if isinstance(value, Mapping) else []


@dataclass(frozen=True)
class NextPage:
    """The next request: params merged into the current ones, or an absolute URL."""

    params: Mapping[str, Any] | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        if (self.params is None) == (self.url is None):
            raise ValueError("a NextPage carries either params or a url")


@dataclass(frozen=True)
class PageResponse:
    """What a paginator sees of one response."""

    body: Any
    headers: Mapping[str, str]
    records_count: int
    url: str | None


class Paginator(ABC):
    """The interface of every pagination style.

    Args:
        max_pages: the most pages one loop may fetch; a response that points to a page
            beyond it is an error, never a silent stop.
    """

    def __init__(self, *, max_pages: int = DEFAULT_MAX_PAGES) -> None:
        if max_pages < 1:
            raise ValueError(f"max_pages must be at least 1, got {max_pages}")
        self.max_pages = max_pages
        self._reset()

    # The loop state a checkpoint keeps: counters only. Seen cursors and URLs are not
    # kept, so a loop that spans a resume is caught later, by `max_pages`.
    _resumable: tuple[str, ...] = ("_pages_seen",)

    def _reset(self) -> None:
        self._pages_seen = 0

    def fresh(self) -> Self:
        """A copy with the same settings and a new, empty loop state."""
        clone = object.__new__(type(self))  # copy.copy's generic path costs 3x more
        clone.__dict__.update(self.__dict__)
        clone._reset()
        return clone

    def checkpoint(self) -> dict[str, int]:
        """The loop state after the last `next_request`, JSON-ready (see `resumed`)."""
        return {name.lstrip("_"): getattr(self, name) for name in self._resumable}

    def resumed(self, checkpoint: Mapping[str, Any]) -> Self:
        """A fresh copy that continues from a `checkpoint()` taken earlier."""
        clone = self.fresh()
        for name in self._resumable:
            setattr(clone, name, int(checkpoint.get(name.lstrip("_"), getattr(clone, name))))
        return clone

    def first_request_params(self) -> dict[str, Any]:
        """Parameters of the first request (merged into the call's own params)."""
        return {}

    def next_request(
        self,
        response_json: Any,
        response_headers: Mapping[str, str],
        records_count: int,
        *,
        current_url: str | None = None,
    ) -> NextPage | None:
        """The request for the page after this response, or None when this was the last.

        Args:
            response_json: the whole decoded response body.
            response_headers: the response headers (looked up case-insensitively).
            records_count: how many records this response held.
            current_url: the URL just requested; relative next URLs resolve against it.
        """
        self._pages_seen += 1
        response = PageResponse(response_json, response_headers, records_count, current_url)
        following = self._next(response)
        if following is not None and self._pages_seen >= self.max_pages:
            raise PaginationError(
                f"the response to page {self._pages_seen} points to another page, but "
                f"maxPages is {self.max_pages}; raise maxPages or narrow the request"
            )
        return following

    @abstractmethod
    def _next(self, response: PageResponse) -> NextPage | None: ...


class CursorPaginator(Paginator):
    """Stops when `has_more_field` is false, or the cursor is absent, null or empty."""

    def __init__(
        self,
        cursor_field: str,
        cursor_param: str,
        has_more_field: str | None = None,
        *,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        self.cursor_field = cursor_field
        self.cursor_param = cursor_param
        self.has_more_field = has_more_field
        super().__init__(max_pages=max_pages)

    def _reset(self) -> None:
        super()._reset()
        self._seen: set[str] = set()

    def _next(self, response: PageResponse) -> NextPage | None:
        if self.has_more_field is not None:
            has_more = get_path(response.body, self.has_more_field)
            if has_more is MISSING:
                # A flag APIs always send: its absence is a misconfigured field name,
                # and treating it as "false" would silently drop pages.
                raise PaginationError(
                    f"hasMoreField `{self.has_more_field}` is not in the response; "
                    f"keys present: {keys_along(response.body, self.has_more_field)}"
                )
            if not _truthy(has_more):
                return None
        cursor = get_path(response.body, self.cursor_field)
        if cursor is MISSING or cursor is None or cursor == "":
            return None
        if isinstance(cursor, dict | list):
            raise PaginationError(
                f"cursorField `{self.cursor_field}` holds a {type(cursor).__name__}, "
                "expected a string or a number"
            )
        if str(cursor) in self._seen:
            raise PaginationError(
                f"cursor {str(cursor)[:80]!r} from `{self.cursor_field}` was already "
                f"used (page {self._pages_seen}): the pagination loops"
            )
        self._seen.add(str(cursor))
        return NextPage(params={self.cursor_param: cursor})


class PageNumberPaginator(Paginator):
    """`page_param` = start_page, start_page + 1, ...; stops at a page with no records."""

    def __init__(
        self, page_param: str, start_page: int = 1, *, max_pages: int = DEFAULT_MAX_PAGES
    ) -> None:
        self.page_param = page_param
        self.start_page = start_page
        super().__init__(max_pages=max_pages)

    _resumable = (*Paginator._resumable, "_page")

    def _reset(self) -> None:
        super()._reset()
        self._page = self.start_page

    def first_request_params(self) -> dict[str, Any]:
        return {self.page_param: self.start_page}

    def _next(self, response: PageResponse) -> NextPage | None:
        if response.records_count == 0:
            return None
        self._page += 1
        return NextPage(params={self.page_param: self._page})


class OffsetPaginator(Paginator):
    """`offset_param` advances by `limit_value`; stops at a page with no records."""

    def __init__(
        self,
        offset_param: str,
        limit_param: str,
        limit_value: int,
        start_offset: int = 0,
        *,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        if limit_value < 1:
            raise ValueError(f"limit_value must be at least 1, got {limit_value}")
        self.offset_param = offset_param
        self.limit_param = limit_param
        self.limit_value = limit_value
        self.start_offset = start_offset
        super().__init__(max_pages=max_pages)

    _resumable = (*Paginator._resumable, "_offset")

    def _reset(self) -> None:
        super()._reset()
        self._offset = self.start_offset

    def first_request_params(self) -> dict[str, Any]:
        return {self.offset_param: self.start_offset, self.limit_param: self.limit_value}

    def _next(self, response: PageResponse) -> NextPage | None:
        if response.records_count == 0:
            return None
        self._offset += self.limit_value
        return NextPage(
            params={self.offset_param: self._offset, self.limit_param: self.limit_value}
        )


class _UrlPaginator(Paginator):
    """Shared by the styles whose next page is a URL: resolution and loop detection."""

    def _reset(self) -> None:
        super()._reset()
        self._seen_urls: set[str] = set()

    def _follow(self, raw: str, current_url: str | None) -> NextPage:
        url = urljoin(current_url, raw) if current_url else raw
        if urlsplit(url).scheme not in ("http", "https"):
            raise PaginationError(f"next page URL {redact_url(raw)!r} is not an absolute http URL")
        if url in self._seen_urls or url == current_url:
            raise PaginationError(f"next page URL {redact_url(url)} repeats: the pagination loops")
        self._seen_urls.add(url)
        if current_url:
            self._seen_urls.add(current_url)
        return NextPage(url=url)


class LinkHeaderPaginator(_UrlPaginator):
    """Follows `Link: <...>; rel="next"` (RFC 8288); stops when there is none."""

    def _next(self, response: PageResponse) -> NextPage | None:
        for uri, params in parse_link_header(header_value(response.headers, "link")):
            if "next" in params.get("rel", "").lower().split():
                return self._follow(uri, response.url)
        return None


class NextUrlPaginator(_UrlPaginator):
    """Follows the URL at `next_url_field`; stops when it is absent, null or empty."""

    def __init__(self, next_url_field: str, *, max_pages: int = DEFAULT_MAX_PAGES) -> None:
        self.next_url_field = next_url_field
        super().__init__(max_pages=max_pages)

    def _next(self, response: PageResponse) -> NextPage | None:
        raw = get_path(response.body, self.next_url_field)
        if raw is MISSING or raw is None or raw == "":
            return None
        if not isinstance(raw, str):
            raise PaginationError(
                f"nextUrlField `{self.next_url_field}` holds a {type(raw).__name__}, "
                "expected a URL string"
            )
        return self._follow(raw, response.url)


def ensure_same_origin(url: str, base_url: str) -> None:
    """Raise `PaginationError` unless `url` has the scheme, host and port of `base_url`.

    Following a next-page link to another host would send the service's credentials
    there.
    """
    if _origin(url) != _origin(base_url):
        scheme, host, port = _origin(base_url)
        raise PaginationError(
            f"next page URL {redact_url(url)} leaves the service's origin {scheme}://{host}:{port}"
        )


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    default_port = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), parts.port or default_port


def header_value(headers: Mapping[str, str], name: str) -> str:
    """A header's value, case-insensitively; repeated headers joined with ", "."""
    get_list = getattr(headers, "get_list", None)  # httpx.Headers keeps repeats apart
    if get_list is not None:
        return ", ".join(get_list(name))
    getall = getattr(headers, "getall", None)  # so do aiohttp's (multidict)
    if getall is not None:
        return ", ".join(getall(name, ()))
    return ", ".join(v for k, v in headers.items() if k.lower() == name.lower())


_PARAM_NAME_RE = re.compile(r"\s*([^\s=;,]+)\s*")
_TOKEN_RE = re.compile(r"[^;,]*")


def parse_link_header(value: str) -> list[tuple[str, dict[str, str]]]:
    """The links of a `Link` header value: (URI reference, params with lower-case names).

    Handles several links in one value, quoted parameter values (with commas and
    escapes inside), and the first occurrence of a parameter winning (RFC 8288 3.3).
    """
    links: list[tuple[str, dict[str, str]]] = []
    pos = 0
    while (start := value.find("<", pos)) >= 0:
        end = value.find(">", start)
        if end < 0:
            break
        params, pos = _link_params(value, end + 1)
        links.append((value[start + 1 : end].strip(), params))
    return links


def _link_params(value: str, pos: int) -> tuple[dict[str, str], int]:
    params: dict[str, str] = {}
    while True:
        while pos < len(value) and value[pos].isspace():
            pos += 1
        if pos >= len(value) or value[pos] != ";":
            return params, pos  # a "," or garbage: the caller looks for the next "<"
        match = _PARAM_NAME_RE.match(value, pos + 1)
        if match is None:
            return params, pos + 1
        name, pos = match.group(1).lower(), match.end()
        param_value = ""
        if pos < len(value) and value[pos] == "=":
            param_value, pos = _param_value(value, pos + 1)
        params.setdefault(name, param_value)


def _param_value(value: str, pos: int) -> tuple[str, int]:
    while pos < len(value) and value[pos].isspace():
        pos += 1
    if pos < len(value) and value[pos] == '"':
        chars: list[str] = []
        pos += 1
        while pos < len(value) and value[pos] != '"':
            if value[pos] == "\\" and pos + 1 < len(value):
                pos += 1
            chars.append(value[pos])
            pos += 1
        return "".join(chars), pos + 1
    match = _TOKEN_RE.match(value, pos)
    assert match is not None  # the pattern matches the empty string
    return match.group(0).strip(), match.end()


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)
