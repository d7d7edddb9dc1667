"""serviceCall modifiers: paginate, forEach, preExecute, and field mappings (SPEC 5.1-5.3)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from translators.spec.base import MAX_RETRY_DELAY_MS, SpecModel
from translators.spec.schema_rules import is_set

_DELAY = "The first retry's delay in milliseconds; it doubles for each further retry."


class GenerateSpec(SpecModel):
    """A generated value in a fieldMapping: `{"generate": "cuid" | "uuid" | "now"}`."""

    generate: Literal["cuid", "uuid", "now"] = Field(
        description="What to generate per row: a cuid, a UUID, or the current time."
    )


# Output column -> dot path in the record, `{{item.X}}`, or a generator.
FieldMapping = dict[str, str | GenerateSpec]


class _PageRetries(SpecModel):
    max_retries: Annotated[int, Field(ge=0, le=20)] = Field(
        3,
        description="Retries of each page request (0..20); when set here, these replace "
        "the step's (and a forEach's).",
    )
    retry_delay_ms: Annotated[int, Field(ge=0, le=MAX_RETRY_DELAY_MS)] = Field(
        1000, description=_DELAY
    )
    max_pages: Annotated[int, Field(ge=1)] = Field(
        10_000,
        description="The most pages one call may fetch; more is an error, never a silent "
        "truncation.",
    )


class CursorPaginationSpec(_PageRetries):
    """Pages by a cursor read from each response; stops when hasMoreField is false or the
    cursor is absent, null or empty."""

    type: Literal["cursor"] = Field(description="Pagination style: cursor.")
    cursor_field: str = Field(description="Dot path of the next cursor in the response.")
    cursor_param: str = Field(description="The request param that carries the cursor.")
    has_more_field: str | None = Field(
        None, description="Dot path of a boolean in the response; false stops the paging."
    )


class PageNumberPaginationSpec(_PageRetries):
    """Pages by number (pageParam + 1 each time); stops at a page with no records."""

    type: Literal["pageNumber"] = Field(description="Pagination style: pageNumber.")
    page_param: str = Field(description="The request param that carries the page number.")
    start_page: int = Field(1, description="The number of the first page.")


class OffsetPaginationSpec(_PageRetries):
    """Pages by offset (offsetParam + limitValue each time); stops at a page with no
    records."""

    type: Literal["offset"] = Field(description="Pagination style: offset.")
    offset_param: str = Field(description="The request param that carries the offset.")
    limit_param: str = Field(description="The request param that carries the page size.")
    limit_value: Annotated[int, Field(ge=1)] = Field(description="The page size sent.")
    start_offset: Annotated[int, Field(ge=0)] = Field(0, description="The first offset.")


class LinkPaginationSpec(_PageRetries):
    """Extension: follows the `Link: <...>; rel="next"` header (RFC 8288) until there is
    none."""

    type: Literal["link"] = Field(description="Pagination style: link.")


class NextUrlPaginationSpec(_PageRetries):
    """Extension: follows the URL at nextUrlField until it is absent, null or empty."""

    type: Literal["nextUrl"] = Field(description="Pagination style: nextUrl.")
    next_url_field: str = Field(description="Dot path of the next page's URL in the response.")


PaginationSpec = Annotated[
    CursorPaginationSpec
    | PageNumberPaginationSpec
    | OffsetPaginationSpec
    | LinkPaginationSpec
    | NextUrlPaginationSpec,
    Field(discriminator="type"),
]


class RateLimitSpec(SpecModel):
    """Exactly one of requestsPerSecond / requestsPerMinute."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [is_set("requestsPerSecond"), is_set("requestsPerMinute")]}
    )

    requests_per_second: Annotated[float, Field(gt=0)] | None = Field(
        None, description="Requests started per second at most."
    )
    requests_per_minute: Annotated[float, Field(gt=0)] | None = Field(
        None, description="Requests started per minute at most."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> RateLimitSpec:
        if (self.requests_per_second is None) == (self.requests_per_minute is None):
            raise ValueError("set exactly one of requestsPerSecond or requestsPerMinute")
        return self

    @property
    def per_second(self) -> float:
        if self.requests_per_second is not None:
            return self.requests_per_second
        assert self.requests_per_minute is not None
        return self.requests_per_minute / 60.0


class ForEachSpec(SpecModel):
    """One call per row of an earlier table, in parallel and rate limited (SPEC 5.2)."""

    source: str = Field(
        description="The outputTable of an earlier step (exact name); the step runs after it."
    )
    item_key: str | None = Field(
        None,
        description="A column that names an item in errors, logs, checkpoints and the "
        "skipped-items list (default: the row's position).",
    )
    parallel: Annotated[int, Field(ge=1, le=50)] = Field(
        1, description="Calls in flight at once, 1..50."
    )
    rate_limit: RateLimitSpec | None = Field(
        None, description="A rate limit for this step's calls, besides the service's."
    )
    run_as_user: str | None = Field(
        None,
        description="A template giving the user whose token the call uses; the service "
        "needs userTokensEnv.",
    )
    max_retries: Annotated[int, Field(ge=0, le=20)] = Field(
        3,
        description="Retries of each request of an item (0..20); a paginate that sets its "
        "own applies instead.",
    )
    retry_delay_ms: Annotated[int, Field(ge=0, le=MAX_RETRY_DELAY_MS)] = Field(
        1000, description=_DELAY
    )
    on_item_error: Literal["fail", "skip"] = Field(
        "fail",
        description="fail: the first failed item fails the step. skip: it is left out and "
        "listed in the step's metadata.",
    )


class PreExecuteSpec(SpecModel):
    """Called first; when it returns at least one record the main call is skipped."""

    service: str = Field(description="A catalog service; it may differ from the step's.")
    operation: str = Field(description="An operation of that service.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Like the step's params; {{item.X}} too when the step has forEach.",
    )
    data_path: str | None = Field(
        None, description="Dot path to the records in the response (default: the whole one)."
    )
