"""Masking of secret values in any text that may reach a log, an error or the Dagster UI.

Secrets are read from the environment only when a call needs them; whoever reads one
registers it here first, so every message built afterwards can be passed through
`redact`. Besides the registered values, three credential shapes are masked wherever
they appear, so a secret that never went through the registry (a key hard-coded in a
URL) is still hidden:

- query-string values of parameters whose name looks sensitive (`token`, `key`,
  `secret`, `password`, `sslpassword`, `auth`, ...);
- the password of a `scheme://user:password@host` URL, also one holding unencoded `@`;
- `password=` / `sslpassword=` of a libpq keyword/value string (`host=x password=y`,
  quoted values included).

`mask_db_url` masks a database URL for display; `db_url_passwords` finds the passwords
in one, for registration.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote

MASK = "***"
# Shorter values are not masked: `ab` would turn every "cannot" and "table" of every
# message into noise, and a credential that short protects nothing anyway.
MIN_SECRET_LENGTH = 4

_SENSITIVE_NAME = r"[^=&#\s\"'<>]*(?:token|key|secret|passw|pwd|auth|signature|credential)"
# `name=value` in a query string (after ? & or ;), value up to the next separator.
_QUERY_VALUE_RE = re.compile(
    rf"(?P<prefix>[?&;]{_SENSITIVE_NAME}[^=&#\s\"'<>]*=)(?P<value>[^&#\s\"'<>]*)",
    re.IGNORECASE,
)
# `scheme://user:password@` in a URL. The user may hold `@` (SQLAlchemy reads it up to
# the first `:`); the password runs to the LAST `@` before the path, so an unencoded `@`
# in it does not leave its tail visible. A `/` or `?` ends the authority: in free text
# that keeps `http://host:8080/x?mail=a@b` intact (see `mask_db_url` for DB URLs).
_USERINFO_RE = re.compile(r"(?P<prefix>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:'\"<>]*:)[^/?\s'\"<>]*(?=@)")
# libpq keyword/value strings: `password=y`, `password = 'a b\'c'`, `sslpassword=y`.
# libpq skips blanks around `=`, so `password= host=x` really sets the password to
# `host=x`. Only after a blank, a quote, `(` or `,`, or at the start: a query string's
# `&password=` is `_QUERY_VALUE_RE`'s.
_KEYWORD_RE = re.compile(
    r"(?P<prefix>(?<![^\s'\"(,])(?:ssl)?password\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'?|[^\s'\"]+)",
    re.IGNORECASE,
)
_DB_SCHEME_RE = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.-]*://")
# A database URL in free text: its password may hold `/` and `?` (SQLAlchemy), so it is
# split like `mask_db_url` does rather than by `_USERINFO_RE`.
_DB_URL_RE = re.compile(
    r"\b(?:postgres|postgresql|mysql|mariadb|mssql|oracle|cockroachdb|redshift)"
    r"(?:\+\w+)?://[^\s'\"<>]+",
    re.IGNORECASE,
)
_KEYWORD_START_RE = re.compile(r"^\s*\w+\s*=")
_PASSWORD_PARAMS = {"password", "sslpassword"}

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
# Query parameters a service takes its key in (auth `apiKeyQuery`) whose names do not
# look sensitive (`appid`, `k`): their values are masked in any URL too.
_query_names: set[str] = set()
_query_pattern: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Remember `value` so that `redact` masks it from now on, in this process.

    The URL-encoded forms are registered too, because a secret sent in a query string
    shows up percent-encoded in URLs. Values shorter than `MIN_SECRET_LENGTH` are ignored.
    """
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    global _pattern
    forms = {value, quote(value, safe=""), quote_plus(value)}
    with _lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        # Longest first, so a secret containing another one is masked whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def register_sensitive_query_name(name: str) -> None:
    """Mask the value of the query parameter `name` in every URL from now on, in this
    process, whatever the value (even one too short to register as a secret)."""
    global _query_pattern
    with _lock:
        if not name or name in _query_names:
            return
        _query_names.add(name)
        names = "|".join(re.escape(n) for n in sorted(_query_names, key=len, reverse=True))
        _query_pattern = re.compile(rf"(?P<prefix>[?&;](?:{names})=)(?P<value>[^&#\s\"'<>]*)")


def is_registered(value: str) -> bool:
    """Whether `value` is a registered secret (for tests and assertions)."""
    with _lock:
        return value in _secrets


def redact(text: str) -> str:
    """`text` with every registered secret and every credential shape masked."""
    if not text:
        return text
    pattern = _pattern  # read once: registration may swap it concurrently
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = _QUERY_VALUE_RE.sub(lambda m: m.group("prefix") + MASK, text)
    query_pattern = _query_pattern
    if query_pattern is not None:
        text = query_pattern.sub(lambda m: m.group("prefix") + MASK, text)
    text = _KEYWORD_RE.sub(lambda m: m.group("prefix") + MASK, text)
    text = _DB_URL_RE.sub(lambda m: _mask_userinfo(m.group(0)), text)
    return _USERINFO_RE.sub(lambda m: m.group("prefix") + MASK, text)


def redact_value(value: Any) -> Any:
    """`value` with `redact` applied to every string in it (dicts, lists and tuples too)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value


def mask_db_url(url: str) -> str:
    """A database URL or libpq keyword/value string, safe to show.

    Registered secrets and every credential form libpq and SQLAlchemy accept are masked:
    the URL's password (also with unencoded `@`, `/` or `?` in it), `password` and
    `sslpassword` query parameters, and keyword/value `password=`. Text that is neither
    (a typo in a variable) may be a bare secret: it is not shown at all.
    """
    if not _DB_SCHEME_RE.match(url) and not _KEYWORD_START_RE.match(url):
        return "<unparseable database URL>"
    return redact(_mask_userinfo(url))


def _mask_userinfo(url: str) -> str:
    head, password, tail = _split_userinfo(url)
    return url if password is None else head + MASK + tail


def db_url_passwords(url: str) -> list[str]:
    """Every password a database URL or libpq keyword/value string carries, as written
    and decoded, so that registering them hides them in any later message."""
    found: list[str] = []
    _head, password, after = _split_userinfo(url)
    if password:
        found += [password, unquote(password)]
        # SQLAlchemy and libpq end the password at its first `@`: the rest becomes the
        # host, which a "cannot resolve host" error quotes.
        found += password.split("@", 1) if "@" in password else []
    after = url if password is None else after
    if _DB_SCHEME_RE.match(url) and "?" in after:
        for name, value in parse_qsl(after.split("?", 1)[1]):
            if name.lower() in _PASSWORD_PARAMS:
                found.append(value)
    for match in _KEYWORD_RE.finditer(url):
        value = match.group("value")
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value.strip("'"))
        found.append(value)
    return [v for v in dict.fromkeys(found) if v]


def _split_userinfo(url: str) -> tuple[str, str | None, str]:
    """`(up to the password, the password, from the @ on)`; `(url, None, "")` if none.

    The user info ends at the last `@` before the query (the first `?` after an `@`):
    SQLAlchemy lets a password hold `/` and `?`, and a `@` in the query (an
    `application_name`) is not part of it. The user ends at the first `:`.
    """
    scheme = _DB_SCHEME_RE.match(url)
    if scheme is None:
        return url, None, ""
    rest = url[scheme.end() :]
    first_at = rest.find("@")
    if first_at < 0:
        return url, None, ""
    query = rest.find("?", first_at)
    at = rest.rfind("@", 0, query if query >= 0 else len(rest))
    colon = rest.find(":", 0, at)
    if colon < 0 or "/" in rest[:colon]:
        return url, None, ""
    split = scheme.end() + colon + 1
    return url[:split], url[split : scheme.end() + at], url[scheme.end() + at :]


def redact_url(url: object) -> str:
    """A URL (a string or an `httpx.URL`) safe to show: secrets, sensitive query values
    and the password of the user info masked."""
    return redact(str(url))


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in a record's final message.

    Attached to the loggers of the HTTP library, whose request lines include full URLs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_log_redaction(*logger_names: str) -> None:
    """Attach one `RedactingFilter` to each named logger (idempotent)."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
