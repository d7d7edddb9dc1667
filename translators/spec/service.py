"""The service catalog: `workflow_defs/services/<name>.json` (SPEC 9)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

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


class ApiKeyQueryAuthSpec(SpecModel):
    """Extension (SPEC 9): a key in the query string of every request, e.g. ?api_key=..."""

    type: Literal["apiKeyQuery"] = Field(description="Auth type: apiKeyQuery.")
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.~-]+$", max_length=100)] = Field(
        description="The query parameter's name, e.g. api_key; its value is masked wherever "
        "a URL is shown."
    )
    value_env: str = Field(description=_ENV.format("key"))


class OAuth2ClientCredentialsAuthSpec(SpecModel):
    """Extension (SPEC 9): OAuth 2 client credentials. The token is fetched from tokenUrl,
    cached per process, and fetched again shortly before it expires or after a 401."""

    type: Literal["oauth2ClientCredentials"] = Field(
        description="Auth type: oauth2ClientCredentials."
    )
    token_url: Annotated[str, Field(pattern=r"^(https?://|/)")] = Field(
        description="The token endpoint: an http(s) URL, or a path starting with / that is "
        "appended to the base URL in force (SERVICE_<NAME>_BASE_URL included)."
    )
    client_id_env: str = Field(description=_ENV.format("client id"))
    client_secret_env: str = Field(description=_ENV.format("client secret"))
    scopes: list[Annotated[str, Field(pattern=r"^[!#-\[\]-~]+$")]] = Field(
        default_factory=list,
        description="Scopes asked for, sent space-separated as `scope` (default: none).",
    )


AuthSpec = Annotated[
    NoAuthSpec
    | BearerAuthSpec
    | HeaderAuthSpec
    | BasicAuthSpec
    | ApiKeyQueryAuthSpec
    | OAuth2ClientCredentialsAuthSpec,
    Field(discriminator="type"),
]


class ResponseActionSpec(SpecModel):
    """Extension (SPEC 9): what a response with this status (and body text) means."""

    status: Annotated[int, Field(ge=100, le=599)] = Field(
        description="The HTTP status the rule matches (100..599)."
    )
    contains: Annotated[str | None, Field(min_length=1)] = Field(
        None,
        description="Text the response body must contain for the rule to match (exact, "
        "case-sensitive; only the first 64 KiB of an error body are read). Default: any body.",
    )
    action: Literal["ignore", "retry", "fail"] = Field(
        description="ignore: the call yields no records and the step goes on; retry: retried "
        "like a 503 (backoff, maxRetries); fail: the step fails at once, without any retry."
    )


def _reachable(rules: list[ResponseActionSpec]) -> list[ResponseActionSpec]:
    # The first matching rule wins: a rule after a catch-all of its status is dead text.
    for i, rule in enumerate(rules):
        for j, earlier in enumerate(rules[:i]):
            if earlier.status == rule.status and earlier.contains in (None, rule.contains):
                raise ValueError(
                    f"rule {i} can never match: rule {j} matches every status {rule.status} "
                    "response it would (the first matching rule wins)"
                )
    return rules


ResponseActions = Annotated[
    list[ResponseActionSpec],
    AfterValidator(_reachable),
    Field(
        description="Extension (SPEC 9): rules {status, contains?, action} checked in order "
        "on each response before the default retry and failure rules; the first match wins."
    ),
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
    response_actions: ResponseActions = Field(
        default_factory=list,
        description="Extension (SPEC 9): rules {status, contains?, action} checked on each "
        "response of this operation before the default rules; a step's own come first.",
    )


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
