"""Secret masking, the shared rate limiter and Retry-After parsing (no network)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from resources.rate_limit import RateLimiter, combined_rate, service_limiter
from resources.secrets import (
    MASK,
    install_log_redaction,
    is_registered,
    redact,
    redact_url,
    register_secret,
)
from resources.service_http import retry_after_seconds


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


# --- secrets ----------------------------------------------------------------------------


def test_registered_secrets_are_masked_also_when_url_encoded() -> None:
    secret = unique("a/b c+") + "=="
    register_secret(secret)
    assert is_registered(secret)
    text = f"sent {secret} and ?x=a%2Fb%20c%2B{secret[6:-2]}%3D%3D&y=1"
    masked = redact(text)
    assert secret not in masked and secret[6:-2] not in masked
    assert masked.startswith(f"sent {MASK} and ?x=")


def test_a_secret_containing_another_is_masked_whole() -> None:
    short = unique("s")
    register_secret(short)
    register_secret(short + "-longer")
    assert redact(f"[{short}-longer]") == f"[{MASK}]"


def test_empty_values_are_not_registered() -> None:
    register_secret("")
    register_secret(None)
    assert redact("plain text") == "plain text"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://h/x?api_key=abc&page=2", f"https://h/x?api_key={MASK}&page=2"),
        ("https://h/x?page=2&access_token=abc", f"https://h/x?page=2&access_token={MASK}"),
        ("https://h/x?Password=p&SECRET=s", f"https://h/x?Password={MASK}&SECRET={MASK}"),
        ("https://h/x?auth=a#frag", f"https://h/x?auth={MASK}#frag"),
        ("https://user:pw@h/x", f"https://user:{MASK}@h/x"),
        ("https://h/x?page=2&q=token", "https://h/x?page=2&q=token"),
    ],
)
def test_sensitive_query_values_and_passwords_in_urls_are_masked(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert redact(f"GET {url} failed") == f"GET {expected} failed"


def test_log_records_are_masked_by_the_filter(caplog: pytest.LogCaptureFixture) -> None:
    secret = unique("tok-")
    register_secret(secret)
    logger = logging.getLogger(unique("test.redaction."))
    install_log_redaction(logger.name)
    install_log_redaction(logger.name)  # idempotent
    assert len(logger.filters) == 1
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("token %s in %s", secret, "https://h/?token=zzz")
    assert secret not in caplog.text and "zzz" not in caplog.text
    assert f"token {MASK} in https://h/?token={MASK}" in caplog.text


# --- rate limit -------------------------------------------------------------------------


def test_limiter_spaces_calls_evenly() -> None:
    limiter = RateLimiter(50)
    started = time.monotonic()
    for _ in range(10):
        limiter.acquire()
    assert 0.18 - 0.01 <= time.monotonic() - started < 1.0


def test_threads_and_coroutines_share_one_schedule() -> None:
    limiter = RateLimiter(40)
    starts: list[float] = []
    lock = threading.Lock()

    def blocking() -> None:
        for _ in range(4):
            limiter.acquire()
            with lock:
                starts.append(time.monotonic())

    async def coroutines() -> None:
        async def one() -> None:
            await limiter.acquire_async()
            with lock:
                starts.append(time.monotonic())

        await asyncio.gather(*(one() for _ in range(4)))

    started = time.monotonic()
    thread = threading.Thread(target=blocking)
    thread.start()
    asyncio.run(coroutines())
    thread.join()
    # Eight slots 25 ms apart: the last cannot start before 7 * 25 ms.
    assert len(starts) == 8 and max(starts) - started >= 7 * 0.025 - 0.005


def test_idle_time_earns_no_burst() -> None:
    limiter = RateLimiter(10)
    limiter.acquire()
    time.sleep(0.25)
    assert limiter.reserve() == 0
    assert limiter.reserve() == pytest.approx(0.1, abs=0.01)


def test_combined_rate_takes_the_stricter_limit() -> None:
    assert combined_rate(None, None) is None
    assert combined_rate(5, None) == 5
    assert combined_rate(None, 120) == 2
    assert combined_rate(5, 120) == 2


def test_service_limiters_are_shared_per_name_and_follow_rate_changes() -> None:
    name = unique("svc-")
    assert service_limiter(name) is None
    first = service_limiter(name, per_second=5)
    assert first is not None and service_limiter(name, per_second=5) is first
    assert service_limiter(name, per_minute=60) is first and first.per_second == pytest.approx(1)
    assert service_limiter(unique("other-"), per_second=5) is not first


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


# --- Retry-After ------------------------------------------------------------------------


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert retry_after_seconds("3") == 3
    assert retry_after_seconds("1.5") == 1.5
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after_seconds(later) or 0) <= 31
    earlier = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(earlier) == 0
