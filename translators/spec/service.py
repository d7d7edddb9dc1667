"""The service catalog: `workflow_defs/services/<name>.json` (SPEC 9)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from resources.service_limits import DEFAULT_MAX_RESPONSE_BYTES
from translators.spec.base import SpecModel
from translators.spec.modifiers import RateLimitSpec


class NoAuthSpec(SpecModel):
    type: Literal["none"]


class BearerAuthSpec(SpecModel):
    type: Literal["bearer"]
    token_env: str


class HeaderAuthSpec(SpecModel):
    type: Literal["header"]
    name: str
    value_env: str


class BasicAuthSpec(SpecModel):
    type: Literal["basic"]
    username_env: str
    password_env: str


AuthSpec = Annotated[
    NoAuthSpec | BearerAuthSpec | HeaderAuthSpec | BasicAuthSpec,
    Field(discriminator="type"),
]


class OperationSpec(SpecModel):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: Annotated[str, Field(pattern=r"^/")]
    mutation: bool = False
    idempotency_header: Annotated[
        str | None,
        Field(
            pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
            max_length=100,
            description="Extension (SPEC 5.5, 9): a header name such as Idempotency-Key. Every "
            "attempt of one call sends the same key in it, derived from (run lineage, step, "
            "item key), so a mutation whose attempt may have taken effect (a timeout, a 5xx) "
            "is retried safely: the service applies a key once.",
        ),
    ] = None


class ServiceSpec(SpecModel):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")]
    base_url: Annotated[str, Field(pattern=r"^https?://")]
    description: str | None = None
    auth: AuthSpec = Field(default_factory=lambda: NoAuthSpec(type="none"))
    # Names an environment variable holding a JSON object: user id -> token (runAsUser).
    user_tokens_env: str | None = None
    timeout_seconds: Annotated[
        float,
        Field(
            gt=0,
            description="Total deadline of one request attempt (connect, send and the whole "
            "body); an overrun is a timeout, retried as SPEC 5.5 says.",
        ),
    ] = 30
    max_response_bytes: Annotated[
        int,
        Field(
            ge=1024,
            description="Largest response body read, in bytes (default 64 MiB); a larger "
            "one fails the call at once, without a retry.",
        ),
    ] = DEFAULT_MAX_RESPONSE_BYTES
    rate_limit: RateLimitSpec | None = None
    operations: Annotated[dict[str, OperationSpec], Field(min_length=1)]
