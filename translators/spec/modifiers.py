"""serviceCall modifiers: paginate, forEach, preExecute, and field mappings (SPEC 5.1-5.3)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from translators.spec.base import MAX_RETRY_DELAY_MS, SpecModel


class GenerateSpec(SpecModel):
    """A generated value in a fieldMapping: `{"generate": "cuid" | "uuid" | "now"}`."""

    generate: Literal["cuid", "uuid", "now"]


# Output column -> dot path in the record, `{{item.X}}`, or a generator.
FieldMapping = dict[str, str | GenerateSpec]


class _PageRetries(SpecModel):
    max_retries: Annotated[int, Field(ge=0, le=20)] = 3
    retry_delay_ms: Annotated[int, Field(ge=0, le=MAX_RETRY_DELAY_MS)] = 1000
    max_pages: Annotated[int, Field(ge=1)] = 10_000


class CursorPaginationSpec(_PageRetries):
    type: Literal["cursor"]
    cursor_field: str
    cursor_param: str
    has_more_field: str | None = None


class PageNumberPaginationSpec(_PageRetries):
    type: Literal["pageNumber"]
    page_param: str
    start_page: int = 1


class OffsetPaginationSpec(_PageRetries):
    type: Literal["offset"]
    offset_param: str
    limit_param: str
    limit_value: Annotated[int, Field(ge=1)]
    start_offset: Annotated[int, Field(ge=0)] = 0


class LinkPaginationSpec(_PageRetries):
    type: Literal["link"]


class NextUrlPaginationSpec(_PageRetries):
    type: Literal["nextUrl"]
    next_url_field: str


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

    requests_per_second: Annotated[float, Field(gt=0)] | None = None
    requests_per_minute: Annotated[float, Field(gt=0)] | None = None

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
    source: str
    item_key: str | None = None
    parallel: Annotated[int, Field(ge=1, le=50)] = 1
    rate_limit: RateLimitSpec | None = None
    run_as_user: str | None = None
    max_retries: Annotated[int, Field(ge=0, le=20)] = 3
    retry_delay_ms: Annotated[int, Field(ge=0, le=MAX_RETRY_DELAY_MS)] = 1000
    on_item_error: Literal["fail", "skip"] = "fail"


class PreExecuteSpec(SpecModel):
    """Called first; when it returns at least one record the main call is skipped."""

    service: str
    operation: str
    params: dict[str, Any] = Field(default_factory=dict)
    data_path: str | None = None
