"""Masking of secret values in any text that may reach a log, an error or the Dagster UI.

Secrets are read from the environment only when a call needs them; whoever reads one
registers it here first, so every message built afterwards can be passed through
`redact`. Besides the registered values, query-string values of parameters whose name
looks sensitive (`token`, `key`, `secret`, `password`, `auth`, ...) and the password of
a `user:password@host` URL are masked, so a secret that never went through the
registry (a key hard-coded in a URL) is still hidden.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import quote, quote_plus

MASK = "***"

_SENSITIVE_NAME = r"[^=&#\s\"'<>]*(?:token|key|secret|passw|pwd|auth|signature|credential)"
# `name=value` in a query string (after ? & or ;), value up to the next separator.
_QUERY_VALUE_RE = re.compile(
    rf"(?P<prefix>[?&;]{_SENSITIVE_NAME}[^=&#\s\"'<>]*=)(?P<value>[^&#\s\"'<>]*)",
    re.IGNORECASE,
)
# `scheme://user:password@` in a URL.
_USERINFO_RE = re.compile(r"(?P<prefix>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^/\s@]*(?=@)")

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Remember `value` so that `redact` masks it from now on, in this process.

    The URL-encoded forms are registered too, because a secret sent in a query string
    shows up percent-encoded in URLs. Empty values are ignored.
    """
    if not value:
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


def is_registered(value: str) -> bool:
    """Whether `value` is a registered secret (for tests and assertions)."""
    with _lock:
        return value in _secrets


def redact(text: str) -> str:
    """`text` with every registered secret and every sensitive query value masked."""
    if not text:
        return text
    pattern = _pattern  # read once: registration may swap it concurrently
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = _QUERY_VALUE_RE.sub(lambda m: m.group("prefix") + MASK, text)
    return _USERINFO_RE.sub(lambda m: m.group("prefix") + MASK, text)


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
