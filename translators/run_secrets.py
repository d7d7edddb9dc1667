"""Every secret a run knows, and failures that leave a step without them.

A step may run in a process of its own that never read a service's token (a `sql` step
after a `serviceCall`), yet an error there can quote it: a DuckDB cast error over a
column the API filled. So every step first registers every secret reachable from the
catalog and the app database URLs (`register_run_secrets`), and whatever leaves the step
passes through `redacted_failures`: Dagster stores an exception's message, its notes and
its whole `__cause__` / `__context__` chain in the event log, the compute logs and the UI.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import dagster as dg
import orjson

from resources.secrets import (
    db_url_passwords,
    redact,
    redact_value,
    register_secret,
    register_sensitive_query_name,
)
from translators.spec import ServiceSpec
from translators.spec.service import (
    ApiKeyQueryAuthSpec,
    BasicAuthSpec,
    BearerAuthSpec,
    HeaderAuthSpec,
    OAuth2ClientCredentialsAuthSpec,
)

APP_DB_URL_VARIABLE = "APP_DB_URL"


class StepError(Exception):
    """Stands for a failure whose own type cannot carry a redacted message; its message
    starts with that type's name."""


def register_run_secrets(catalog: Mapping[str, ServiceSpec]) -> None:
    """Register every secret value the catalog's auth settings and the app database URLs
    name, as far as the environment holds them (unset variables are skipped here: the
    call that needs one reports it)."""
    for service in catalog.values():
        for value in _service_secrets(service):
            register_secret(value)
        if isinstance(service.auth, ApiKeyQueryAuthSpec):
            register_sensitive_query_name(service.auth.name)
    for name, value in os.environ.items():
        if name == APP_DB_URL_VARIABLE or name.startswith(APP_DB_URL_VARIABLE + "__"):
            for password in db_url_passwords(value):
                register_secret(password)


def _service_secrets(service: ServiceSpec) -> list[str]:
    auth = service.auth
    values: list[str] = []
    if isinstance(auth, BearerAuthSpec):
        values.append(os.environ.get(auth.token_env, ""))
    elif isinstance(auth, HeaderAuthSpec | ApiKeyQueryAuthSpec):
        values.append(os.environ.get(auth.value_env, ""))
    elif isinstance(auth, OAuth2ClientCredentialsAuthSpec):
        # The token is registered by the process that fetches it, when it arrives.
        values.append(os.environ.get(auth.client_secret_env, ""))
    elif isinstance(auth, BasicAuthSpec):
        user = os.environ.get(auth.username_env, "")
        password = os.environ.get(auth.password_env, "")
        # The header carries both, base64-encoded: decoding it would reveal them.
        pair = base64.b64encode(f"{user}:{password}".encode()).decode() if user else ""
        values += [user, password, pair]
    if service.user_tokens_env:
        raw = os.environ.get(service.user_tokens_env, "")
        values += [raw, *_json_strings(raw)]
    return [value for value in values if value]


def _json_strings(raw: str) -> list[str]:
    """The string values of a JSON object (user id -> token); none if it is not one."""
    try:
        parsed = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return []
    if not isinstance(parsed, dict):
        return []
    return [str(value) for value in parsed.values() if value is not None]


@contextmanager
def redacted_failures() -> Iterator[None]:
    """Re-raise whatever the block raises with every secret masked in its message, its
    notes and its chain of causes.

    A failure that quotes no secret is re-raised untouched. Otherwise a copy of the same
    type (so `RetryRequested` still retries and `Failure` keeps its metadata) is raised
    `from` the redacted copy of its cause, with the original traceback: the stack shows
    code lines only, never values.
    """
    try:
        yield
    except Exception as error:
        if _chain_is_clean(error):
            raise
        clean = redacted_copy(error)
        raise clean.with_traceback(error.__traceback__) from clean.__cause__


def redacted_copy(error: BaseException) -> BaseException:
    """`error` and its chain, each with `redact` applied (see `redacted_failures`)."""
    if _chain_is_clean(error):
        return error
    clone = _same_type_copy(error)
    notes = getattr(error, "__notes__", None)
    if notes:
        clone.__notes__ = [redact(str(note)) for note in notes]
    following = _next_in_chain(error)
    clone.__cause__ = redacted_copy(following) if following is not None else None
    clone.__suppress_context__ = True
    return clone.with_traceback(error.__traceback__)


def _same_type_copy(error: BaseException) -> BaseException:
    """A copy of `error` with redacted arguments, built without calling `__init__`;
    a `StepError` naming its type when the copy would not read the same."""
    cls = type(error)
    expected = redact(_text(error))
    try:
        clone = cls.__new__(cls)
        clone.__dict__.update(error.__dict__)
        clone.args = tuple(redact_value(arg) for arg in error.args)
        if isinstance(clone, dg.Failure) and isinstance(error, dg.Failure):
            clone.description = redact(error.description or "") or None
            clone.metadata = {k: _redact_metadata(v) for k, v in error.metadata.items()}
        if str(clone) == expected:
            return clone
    except Exception:  # a type whose __str__ needs what its __init__ sets
        pass
    return StepError(f"{cls.__name__}: {expected}")


def _redact_metadata(value: dg.MetadataValue) -> dg.MetadataValue:
    raw = getattr(value, "value", None)
    if redact_value(raw) == raw:
        return value
    if isinstance(raw, dict | list):
        return dg.MetadataValue.json(redact_value(raw))
    return dg.MetadataValue.text(redact(str(raw)))


def _chain_is_clean(error: BaseException) -> bool:
    """Whether nothing Dagster would store of `error` (message, notes, causes) changes
    under `redact`."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = _text(current)
        notes = "\n".join(str(n) for n in getattr(current, "__notes__", None) or [])
        if redact(text) != text or redact(notes) != notes:
            return False
        if isinstance(current, dg.Failure) and not _failure_is_clean(current):
            return False
        current = _next_in_chain(current)
    return True


def _failure_is_clean(failure: dg.Failure) -> bool:
    shown = [failure.description or ""]
    shown += [repr(getattr(v, "value", v)) for v in failure.metadata.values()]
    return all(redact(text) == text for text in shown)


def _next_in_chain(error: BaseException) -> BaseException | None:
    """The exception Dagster (and Python's traceback) shows after `error`."""
    if error.__cause__ is not None:
        return error.__cause__
    return None if error.__suppress_context__ else error.__context__


def _text(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:
        return type(error).__name__
