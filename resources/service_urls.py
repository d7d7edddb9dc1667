"""The URL of a service request: base URL, path template, query (no I/O).

Internal to `resources.service_http`. A URL is built as text, encoded exactly as httpx
would encode it (`httpx.URL`), without parsing it per request when the base URL and the
path template allow; anything unusual goes through httpx.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import orjson

PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def join_path(base_url: str, template: str, path: str) -> str:
    """`base_url` + `path` (`template` with its placeholders filled), encoded as httpx
    would, without parsing it per request when the template allows (`_plain_template`).
    """
    url = f"{base_url}/{path.lstrip('/')}"
    if _plain_template(base_url, template) and not _DOT_SEGMENT_RE.search(url):
        return url  # filled segments are percent-encoded (`path_segment`): nothing to do
    return str(httpx.URL(url))


# A `.` or `..` segment (an empty value next to a literal dot): httpx would resolve it.
_DOT_SEGMENT_RE = re.compile(r"/\.{1,2}(?:/|$)")
_PLAIN_URL_RE = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$")


@lru_cache(maxsize=256)
def _plain_template(base_url: str, template: str) -> bool:
    """Whether base URL and path template are already in the form httpx gives a URL
    (lowercase scheme and host, no query or fragment, only characters that need no
    encoding), so that joining them with filled segments needs no parsing."""
    literal = PLACEHOLDER_RE.sub("x", template)
    joined = f"{base_url}/{literal.lstrip('/')}"
    if not _PLAIN_URL_RE.match(literal) or "?" in base_url or "#" in base_url:
        return False
    return str(httpx.URL(joined)) == joined


def with_query(url: str, query: Mapping[str, Any]) -> str:
    """`url` with `query` merged into it, encoded like httpx's `copy_merge_params`."""
    if "?" in url or "#" in url:  # httpx re-encodes the query it has even with no params
        return str(httpx.URL(url).copy_merge_params(query))
    if not query:
        return url
    pairs = [
        (name, _query_text(value))
        for name, values in query.items()
        for value in (values if isinstance(values, list | tuple) else (values,))
    ]
    return f"{url}?{urlencode(pairs)}"


def _query_text(value: Any) -> str:
    """A query value as httpx writes it: true/false, None as empty."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


def query_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Query parameters: None dropped, objects as JSON text, lists repeated."""
    query: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, dict) or (
            isinstance(value, list) and any(isinstance(v, dict | list) for v in value)
        ):
            value = orjson.dumps(value).decode()
        query[name] = value
    return query


def path_segment(value: object) -> str:
    """`value` as exactly one path segment, so that data never changes the path.

    Every reserved character is percent-encoded (`/`, `?`, `#`, ...); a `.` or `..`
    segment, which `quote` leaves alone and httpx would resolve (dropping the segment
    before it), becomes `%2E` / `%2E%2E`, which httpx sends as it is.
    """
    text = quote(str(value), safe="")
    return text.replace(".", "%2E") if text in (".", "..") else text
