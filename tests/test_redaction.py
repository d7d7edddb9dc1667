"""Redaction of every failure a step reports and of every database credential form."""

from __future__ import annotations

import json
import logging
import traceback
import uuid

import dagster as dg
import psycopg
import pytest
import sqlalchemy as sa
from dagster._utils.error import serializable_error_info_from_exc_info

from resources.app_database import mask_url
from resources.secrets import MASK, db_url_passwords, is_registered, redact, register_secret
from resources.table_store_types import CastError
from translators.run_secrets import (
    StepError,
    redacted_copy,
    redacted_failures,
    register_run_secrets,
)
from translators.spec import ServiceSpec
from translators.steps.runtime import RedactingLog


def secret(prefix: str = "tok-") -> str:
    """A value no other test registers, so each test sees its own registration."""
    return f"{prefix}{uuid.uuid4().hex}"


# --- database URLs: (url, its password, what must stay visible) --------------------------

URL_FORMS = [
    ("postgresql://bob:PW@db.example:5432/shop", "db.example:5432/shop"),
    ("postgres://bob:PW@db.example/shop", "db.example/shop"),
    ("postgresql+psycopg://bob:PW@db.example/shop", "db.example/shop"),
    ("postgresql://:PW@db.example/shop", "db.example/shop"),
    # An unencoded @ (SQLAlchemy and libpq would cut the password at the first one).
    ("postgresql://bob:ab@PW@db.example/shop", "db.example/shop"),
    # SQLAlchemy lets a password hold / and ?.
    ("postgresql://bob:ab/PW@db.example/shop", "db.example/shop"),
    ("postgresql://bob:ab?PW@db.example/shop?sslmode=require", "sslmode=require"),
    ("postgresql://bob@corp:PW@db.example/shop", "db.example/shop"),
    ("postgresql://bob:PW%40x@[::1]:5432/shop", "[::1]:5432/shop"),
    ("postgresql://bob:PW@h1:5432,h2:5433/shop", "h1:5432,h2:5433/shop"),
    ("postgresql://bob:PW@db.example/shop?application_name=me@x", "application_name=me@x"),
    ("postgresql://bob@db.example/shop?password=PW&sslmode=require", "sslmode=require"),
    ("postgresql://bob@db.example/shop?sslmode=require&password=PW", "sslmode=require"),
    ("postgresql://bob@db.example/shop?sslpassword=PW", "db.example/shop"),
    ("postgresql:///shop?host=/run/pg&password=PW", "host=/run/pg"),
    ("postgresql://bob:PW@%2Frun%2Fpg/shop", "%2Frun%2Fpg/shop"),
    ("host=db.example password=PW dbname=shop", "dbname=shop"),
    ("host=db.example password = PW dbname=shop", "dbname=shop"),
    ("host=db.example password='a b\\' PW' dbname=shop", "dbname=shop"),
    ("host=db.example sslpassword=PW user=bob", "user=bob"),
    ("password=PW host=db.example", "host=db.example"),
]


@pytest.mark.parametrize(("template", "visible"), URL_FORMS)
def test_mask_url_hides_every_credential_form(template: str, visible: str) -> None:
    # Not registered: the shape alone must give the password away to the masker.
    password = f"pw{uuid.uuid4().hex[:10]}"
    url = template.replace("PW", password)
    masked = mask_url(url)
    assert password not in masked and MASK in masked
    assert visible in masked, "only the password is masked"
    assert password not in redact(f"cannot connect to {url}: refused")


# The password a driver would be given, for the forms where it is more than `PW`.
SENT = {
    "postgresql://bob:ab@PW@db.example/shop": "ab@PW",
    "postgresql://bob:ab/PW@db.example/shop": "ab/PW",
    "postgresql://bob:ab?PW@db.example/shop?sslmode=require": "ab?PW",
    "postgresql://bob:PW%40x@[::1]:5432/shop": "PW@x",
    "host=db.example password='a b\\' PW' dbname=shop": "a b' PW",
}


@pytest.mark.parametrize(("template", "visible"), URL_FORMS)
def test_passwords_found_in_a_db_url_are_masked_anywhere(template: str, visible: str) -> None:
    password = f"pw{uuid.uuid4().hex[:10]}"
    sent = SENT.get(template, "PW").replace("PW", password)
    found = db_url_passwords(template.replace("PW", password))
    assert sent in found
    for value in found:
        register_secret(value)
    assert redact(f'FATAL: role "x" got "{sent}"') == f'FATAL: role "x" got "{MASK}"'


def test_the_host_part_of_a_password_with_an_unencoded_at_is_masked_too() -> None:
    # libpq and SQLAlchemy read `bob:ab@TAIL@db.example` as password `ab`, host `TAIL@...`.
    tail = f"pw{uuid.uuid4().hex[:10]}"
    for value in db_url_passwords(f"postgresql://bob:ab@{tail}@db.example/shop"):
        register_secret(value)
    assert tail not in redact(f'could not translate host name "{tail}@db.example"')


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///relative/app.sqlite",
        "sqlite:////tmp/a:b@c.sqlite",
        "postgresql://bob@db.example:5432/shop",
        "postgresql://db.example/shop?sslmode=require",
    ],
)
def test_urls_without_a_password_are_shown_unchanged(url: str) -> None:
    assert mask_url(url) == url
    assert db_url_passwords(url) == []


def test_an_unparseable_db_url_is_not_shown_at_all() -> None:
    assert mask_url("::pw-in-garbage::") == "<unparseable database URL>"


def test_free_text_urls_keep_host_and_query_when_there_is_no_password() -> None:
    text = "GET http://api.example:8080/x?mail=a@b.example failed"
    assert redact(text) == text


# --- cast errors ------------------------------------------------------------------------


def test_a_cast_error_masks_a_secret_also_when_the_value_is_cut() -> None:
    token = secret("tok-" + "x" * 90)  # longer than the 80-character preview
    register_secret(token)
    error = CastError("fetch", 1, "auth", f"Bearer {token}", "INTEGER", f"int({token!r})")
    assert "Bearer ***" in str(error)
    assert token[:12] not in str(error), "the cut head of the token is not shown"


# --- failures leaving a step ------------------------------------------------------------


def raise_in_step(error: BaseException) -> BaseException:
    with pytest.raises(BaseException) as caught, redacted_failures():
        raise error
    return caught.value


def shown(error: BaseException) -> str:
    """What Dagster stores: message, notes and the whole chain (as traceback prints it)."""
    info = serializable_error_info_from_exc_info((type(error), error, error.__traceback__))
    return info.to_string() + "".join(traceback.format_exception(error))


def test_a_clean_failure_leaves_the_step_untouched() -> None:
    error = ValueError("no secret here")
    assert raise_in_step(error) is error


def test_a_failure_and_its_chain_are_redacted_keeping_the_type() -> None:
    token = secret()
    register_secret(token)
    try:
        try:
            raise KeyError(token)
        except KeyError as inner:
            raise ValueError(f"cannot cast 'Bearer {token}'") from inner
    except ValueError as outer:
        outer.add_note(f"while reading {token}")
        caught = raise_in_step(outer)
    assert type(caught) is ValueError
    assert str(caught) == "cannot cast 'Bearer ***'"
    assert isinstance(caught.__cause__, KeyError) and str(caught.__cause__) == "'***'"
    text = shown(caught)
    assert token not in text and "while reading ***" in text
    assert "raise_in_step" in text or "test_a_failure" in text, "the stack is kept"


def test_an_implicit_context_is_redacted_too() -> None:
    token = secret()
    register_secret(token)
    try:
        try:
            raise RuntimeError(f"driver said {token}")
        except RuntimeError:
            raise LookupError("while persisting")  # noqa: B904 - the implicit context is the point
    except LookupError as error:
        caught = raise_in_step(error)
    assert token not in shown(caught)


def test_a_db_error_with_parameters_becomes_a_step_error_naming_its_type() -> None:
    token = secret()
    register_secret(token)
    orig = psycopg.errors.UniqueViolation(f"Key (t)=({token}) already exists")
    error = sa.exc.IntegrityError("INSERT INTO t VALUES (%s)", (token,), orig)
    caught = raise_in_step(error)
    assert isinstance(caught, StepError)
    assert str(caught).startswith("IntegrityError: ")
    assert token not in shown(caught) and "already exists" in str(caught)


def test_a_retry_request_still_retries_with_a_redacted_cause() -> None:
    token = secret()
    register_secret(token)
    try:
        try:
            raise sa.exc.OperationalError("SELECT %s", (token,), psycopg.OperationalError("gone"))
        except sa.exc.OperationalError as db_error:
            raise dg.RetryRequested(max_retries=3, seconds_to_wait=2) from db_error
    except dg.RetryRequested as retry:
        caught = raise_in_step(retry)
    assert isinstance(caught, dg.RetryRequested)
    assert (caught.max_retries, caught.seconds_to_wait) == (3, 2)
    text = shown(caught)
    assert token not in text and "OperationalError" in text


def test_a_dagster_failure_keeps_its_metadata_redacted() -> None:
    token = secret()
    register_secret(token)
    failure = dg.Failure(
        description=f"bad row {token}",
        metadata={"row": f"value {token}", "rows": dg.MetadataValue.json({"v": [token]})},
        allow_retries=False,
    )
    caught = raise_in_step(failure)
    assert isinstance(caught, dg.Failure) and caught.allow_retries is False
    assert caught.description == "bad row ***"
    values = json.dumps({k: str(getattr(v, "value", v)) for k, v in caught.metadata.items()})
    assert token not in values and MASK in values


def test_redacted_copy_leaves_the_original_alone() -> None:
    token = secret()
    register_secret(token)
    original = ValueError(f"has {token}")
    copy = redacted_copy(original)
    assert copy is not original and token in str(original) and token not in str(copy)


# --- every secret the run knows ---------------------------------------------------------


def test_every_catalog_secret_and_app_db_password_is_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = {name: secret(name.lower() + "-") for name in ("BEARER", "HDR", "USER", "PASS")}
    user_tokens = {"ann": secret("ann-"), "bob": secret("bob-")}
    for name, value in values.items():
        monkeypatch.setenv(f"T_{name}", value)
    monkeypatch.setenv("T_USERS", json.dumps(user_tokens))
    db_password, app_password = secret("db-"), secret("app-")
    monkeypatch.setenv("APP_DB_URL", f"postgresql://u@h/db?password={db_password}")
    monkeypatch.setenv("APP_DB_URL__SHOP", f"host=h password={app_password}")
    ops = {"get": {"path": "/x"}}
    catalog = {
        spec["name"]: ServiceSpec.model_validate({"baseUrl": "http://h", "operations": ops, **spec})
        for spec in (
            {"name": "a", "auth": {"type": "bearer", "tokenEnv": "T_BEARER"}},
            {"name": "b", "auth": {"type": "header", "name": "X-Key", "valueEnv": "T_HDR"}},
            {
                "name": "c",
                "auth": {"type": "basic", "usernameEnv": "T_USER", "passwordEnv": "T_PASS"},
                "userTokensEnv": "T_USERS",
            },
            {"name": "d", "auth": {"type": "bearer", "tokenEnv": "T_UNSET"}},
        )
    }
    register_run_secrets(catalog)
    for value in [*values.values(), *user_tokens.values(), db_password, app_password]:
        assert is_registered(value), value


def test_the_step_log_masks_every_message(caplog: pytest.LogCaptureFixture) -> None:
    token = secret()
    register_secret(token)
    logger = logging.getLogger(secret("test.step_log."))
    with caplog.at_level(logging.INFO, logger=logger.name):
        RedactingLog(logger).warning("row %s: %s", 3, f"bad {token}")
        RedactingLog(logger).info(f"plain {token}")
    assert [r.getMessage() for r in caplog.records] == ["row 3: bad ***", "plain ***"]
