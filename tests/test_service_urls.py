"""Request URLs built as text (resources.service_urls) are exactly what httpx would send."""

from __future__ import annotations

import random
from typing import Any

import httpx

from resources.service_urls import join_path, path_segment, query_params, with_query

BASES = [
    "http://127.0.0.1:8000",
    "https://api.test/v1",
    "http://h/x?y=1",
    "http://H.test",
    "http://h/a%2fb",
    "http://h:80/x y",
]
TEMPLATES = [
    "/items/{a}/records",
    "items/{a}",
    "/{a}",
    "/x/{a}.json",
    "/a b/{a}",
    "/q?k=v/{a}",
    "/{a}/{a}",
    "/{a}./{a}",
    "/%7e/{a}",
    "/./{a}",
    "/x#f/{a}",
    "",
]
CHARS = "aZ09 -._~!$&'()*+,;=:@/?#%é€\x00[]{}|\\^`\"<>"


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(CHARS) for _ in range(rng.randint(0, 6)))


def _value(rng: random.Random) -> Any:
    return rng.choice(
        [_text(rng), True, False, None, 3, 1.5, [_text(rng), 2], [None], {"a": 1}, [{"b": [1]}]]
    )


def test_urls_match_what_httpx_builds() -> None:
    rng = random.Random(8)
    for _ in range(5000):
        base, template = rng.choice(BASES), rng.choice(TEMPLATES)
        value = rng.choice([_text(rng), "", ".", "..", rng.randint(-5, 5)])
        path = template.replace("{a}", path_segment(value))
        query = query_params({_text(rng) or "k": _value(rng) for _ in range(rng.randint(0, 3))})
        expected = str(httpx.URL(f"{base}/{path.lstrip('/')}").copy_merge_params(query))
        assert with_query(join_path(base, template, path), query) == expected, (base, path)
