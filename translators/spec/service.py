"""The service catalog: `workflow_defs/services/<name>.json` (SPEC 9)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from resources.service_limits import DEFAULT_MAX_RESPONSE_BYTES
from translators.spec.base import SpecModel
from translators.spec.modifiers import RateLimitSpec

_ENV = "Names the environment variable holding the {}; the value never appears in output."


class NoAuthSpec(SpecModel):
    """No credentials."""

    type: Literal["none"] = Field(description="Auth type: none.")


class BearerAuthSpec(SpecModel):
    """`Authorization: Bearer <token>`."""

    type: Literal["bearer"] = Field(description="Auth type: bearer.")
    token_env: str = Field(description=_ENV.format("token"))


class HeaderAuthSpec(SpecModel):
    """A header of its own holding a secret, e.g. X-Api-Key."""

    type: Literal["header"] = Field(description="Auth type: header.")
    name: str = Field(description="The header's name.")
    value_env: str = Field(description=_ENV.format("header's value"))


class BasicAuthSpec(SpecModel):
    """HTTP basic auth."""

    type: Literal["basic"] = Field(description="Auth type: basic.")
    username_env: str = Field(description=_ENV.format("user name"))
    password_env: str = Field(description=_ENV.format("password"))


AuthSpec = Annotated[
    NoAuthSpec | BearerAuthSpec | HeaderAuthSpec | BasicAuthSpec,
    Field(discriminator="type"),
]


class OperationSpec(SpecModel):
    """One operation: params fill the path's placeholders first, the rest go to the query
    string (GET/DELETE) or the JSON body (POST/PUT/PATCH)."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = Field(
        "GET", description="The HTTP method."
    )
    path: Annotated[str, Field(pattern=r"^/")] = Field(
        description="Appended to baseUrl; {name} placeholders are filled from params."
    )
    mutation: bool = Field(
        False,
        description="The call changes something: it is retried only when it surely did not "
        "take effect, or when preExecute or idempotencyHeader guards the retry.",
    )
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
    """A service of the catalog (`services/<name>.json`, SPEC 9); each is a Dagster
    resource."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")] = Field(
        description="The service's name: the file name without .json."
    )
    base_url: Annotated[str, Field(pattern=r"^https?://")] = Field(
        description="http(s) URL the operations' paths are appended to; "
        "SERVICE_<NAME>_BASE_URL overrides it."
    )
    description: str | None = Field(None, description="What the service is, for people.")
    auth: AuthSpec = Field(
        default_factory=lambda: NoAuthSpec(type="none"),
        description="How requests authenticate (default: none).",
    )
    # Names an environment variable holding a JSON object: user id -> token (runAsUser).
    user_tokens_env: str | None = Field(
        None,
        description="Names an environment variable holding a JSON object user id -> token, "
        "for forEach.runAsUser.",
    )
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
    rate_limit: RateLimitSpec | None = Field(
        None, description="A limit across every op and forEach item of a process."
    )
    operations: Annotated[dict[str, OperationSpec], Field(min_length=1)] = Field(
        description="Operation name -> method and path; steps call them by name."
    )
