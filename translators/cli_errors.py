"""What `workflows run` prints for a failed step: the step's own error, redacted.

Dagster records a step's exception inside its own wrappers
(`DagsterExecutionStepExecutionError: Error occurred while executing op ...`, and
`RetryRequested` once retries are exhausted). The cause chain of the event's
`SerializableErrorInfo` holds what the step raised; that is what a user needs.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from resources.secrets import redact, register_secret, register_sensitive_query_name
from translators.spec.service import (
    ApiKeyQueryAuthSpec,
    BasicAuthSpec,
    BearerAuthSpec,
    HeaderAuthSpec,
    OAuth2ClientCredentialsAuthSpec,
    ServiceSpec,
)

MAX_LINES = 8
MAX_LINE_CHARS = 400
# Raised by Dagster around or instead of the step's own exception.
_FRAMEWORK_CLASSES = {"RetryRequested"}


def _is_framework(error: Any) -> bool:
    name = error.cls_name or ""
    return name.startswith("Dagster") or name in _FRAMEWORK_CLASSES


def _chain(error: Any) -> Iterator[Any]:
    """The error, then what caused it (explicit cause first, else the implicit context)."""
    seen = 0
    while error is not None and seen < 50:  # a bound, in case of a cyclic record
        yield error
        error = error.cause or error.context
        seen += 1


def step_error(error: Any) -> str:
    """The message of the first error below Dagster's wrappers, however deep they nest;
    Dagster's own message when there is no other. Redacted; at most MAX_LINES lines."""
    chain = list(_chain(error))
    if not chain:
        return "(no error recorded)"
    own = [e for e in chain if not _is_framework(e) and (e.message or "").strip()]
    chosen = own[0] if own else chain[-1]
    return _text(chosen.cls_name, chosen.message or "")


def _text(cls_name: str | None, message: str) -> str:
    text = message.strip()
    # `format_exception_only` spells the class with its module: "pkg.mod.Error: message".
    head, sep, rest = text.partition(": ")
    if cls_name and sep and head.rsplit(".", 1)[-1] == cls_name and " " not in head:
        text = rest
    if cls_name and text != cls_name:
        text = f"{cls_name}: {text}" if text else cls_name
    lines = [_cut(line) for line in redact(text).splitlines() if line.strip()]
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES], f"... ({len(lines) - MAX_LINES} more lines)"]
    return "\n".join(lines)


def _cut(line: str) -> str:
    line = line.rstrip()
    return line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 3] + "..."


def register_service_secrets(services: Mapping[str, ServiceSpec]) -> None:
    """Register the catalog's credentials that are set in the environment.

    A step running in its own process registers only the secrets it read itself; the
    CLI must mask every credential it may find in an error message it prints.
    """
    for spec in services.values():
        auth = spec.auth
        if isinstance(auth, BearerAuthSpec):
            register_secret(os.environ.get(auth.token_env))
        elif isinstance(auth, HeaderAuthSpec | ApiKeyQueryAuthSpec):
            register_secret(os.environ.get(auth.value_env))
            if isinstance(auth, ApiKeyQueryAuthSpec):
                register_sensitive_query_name(auth.name)
        elif isinstance(auth, OAuth2ClientCredentialsAuthSpec):
            register_secret(os.environ.get(auth.client_secret_env))
        elif isinstance(auth, BasicAuthSpec):
            user = os.environ.get(auth.username_env)
            password = os.environ.get(auth.password_env, "")
            register_secret(password)
            if user:
                register_secret(base64.b64encode(f"{user}:{password}".encode()).decode())
        if spec.user_tokens_env:
            _register_user_tokens(os.environ.get(spec.user_tokens_env))


def _register_user_tokens(raw: str | None) -> None:
    register_secret(raw)
    try:
        tokens = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return
    if isinstance(tokens, dict):
        for value in tokens.values():
            register_secret(str(value))
