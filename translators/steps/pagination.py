"""The pagination styles (SPEC 5.1): ONE table, style name -> its spec model and the
paginator (`resources.paginators`) it makes. `paginate.type` picks the row.

Adding a style: its model in `translators/spec/modifiers.py` (and in `PaginationSpec`
there), its class in `resources/paginators.py`, and a row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args

from resources.paginators import (
    CursorPaginator,
    LinkHeaderPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    Paginator,
)
from translators.spec import (
    CursorPaginationSpec,
    LinkPaginationSpec,
    NextUrlPaginationSpec,
    OffsetPaginationSpec,
    PageNumberPaginationSpec,
    PaginationSpec,
)


@dataclass(frozen=True)
class PaginationStyle:
    name: str  # the `paginate.type` value
    spec: type[Any]
    make: Callable[[Any], Paginator]


PAGINATION_STYLES: dict[str, PaginationStyle] = {
    style.name: style
    for style in (
        PaginationStyle(
            "cursor",
            CursorPaginationSpec,
            lambda s: CursorPaginator(
                s.cursor_field, s.cursor_param, s.has_more_field, max_pages=s.max_pages
            ),
        ),
        PaginationStyle(
            "pageNumber",
            PageNumberPaginationSpec,
            lambda s: PageNumberPaginator(s.page_param, s.start_page, max_pages=s.max_pages),
        ),
        PaginationStyle(
            "offset",
            OffsetPaginationSpec,
            lambda s: OffsetPaginator(
                s.offset_param, s.limit_param, s.limit_value, s.start_offset, max_pages=s.max_pages
            ),
        ),
        PaginationStyle(
            "link", LinkPaginationSpec, lambda s: LinkHeaderPaginator(max_pages=s.max_pages)
        ),
        PaginationStyle(
            "nextUrl",
            NextUrlPaginationSpec,
            lambda s: NextUrlPaginator(s.next_url_field, max_pages=s.max_pages),
        ),
    )
}


def paginator_for(spec: Any) -> Paginator:
    """`paginate` -> its paginator, through the table."""
    return PAGINATION_STYLES[spec.type].make(spec)


def union_models() -> set[type[Any]]:
    """The models `PaginationSpec` parses (the table must have a row for each)."""
    return set(get_args(get_args(PaginationSpec)[0]))
