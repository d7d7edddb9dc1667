"""Request rate limits: per step in one process, and per service across processes.

A limiter hands out evenly spaced time slots (a token bucket of size one): with 5
requests per second, calls start at t, t+0.2, t+0.4, ... whoever asks. Spacing rather
than a bucket with a burst allowance keeps the promise for any window, which is what a
server counting "N per second" or "N per minute" expects. Idle time earns no credit.

The reservation takes a lock only for the arithmetic, never while waiting, so the same
limiter serves blocking callers (`acquire`) and coroutines (`acquire_async`) at once:
the forEach event loop thread and ordinary op threads draw from one schedule.

A service's limit (`service_limiter`) keeps that schedule in shared state instead
(resources.shared_slots: Redis when `$WORKFLOWS_REDIS_URL` is set, else a locked file),
so it holds across every process of every run and, with Redis, across machines.
"""

from __future__ import annotations

import asyncio
import threading
import time

from resources.shared_slots import SlotStore, shared_slots, store_location


class RateLimiter:
    """At most `per_second` calls per second, spaced evenly.

    Args:
        per_second: the allowed rate; below 1 means fewer than one call per second
            (`requests_per_minute / 60`).
        slots: shared state holding the schedule; None keeps it in this object.
    """

    def __init__(self, per_second: float, slots: SlotStore | None = None) -> None:
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._interval = _interval(per_second)
        self._slots = slots

    @property
    def per_second(self) -> float:
        return 1.0 / self._interval

    def set_rate(self, per_second: float) -> None:
        """Change the rate; slots already handed out stay as they are."""
        interval = _interval(per_second)
        with self._lock:
            self._interval = interval

    def reserve(self) -> float:
        """Take the next free slot and return how many seconds until it starts.

        With shared slots this is one short exclusive update (a file lock or a Redis
        script, well under a millisecond here): coroutines call it on the event loop.
        """
        if self._slots is not None:
            return self._slots.take(self._interval)
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        return slot - now

    def acquire(self) -> float:
        """Block until the caller's slot; returns the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            time.sleep(wait)
        return wait

    async def acquire_async(self) -> float:
        """Like `acquire`, but sleeps without blocking the event loop."""
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)
        return wait


def _interval(per_second: float) -> float:
    if not per_second > 0:
        raise ValueError(f"a rate limit must be positive, got {per_second!r}")
    return 1.0 / per_second


def combined_rate(per_second: float | None, per_minute: float | None) -> float | None:
    """The rate (per second) that satisfies both limits; None when neither is set."""
    rates = [r for r in (per_second, None if per_minute is None else per_minute / 60.0) if r]
    return min(rates) if rates else None


_registry_lock = threading.Lock()
_registry: dict[tuple[str, str], RateLimiter] = {}


def service_limiter(
    service_name: str, *, per_second: float | None = None, per_minute: float | None = None
) -> RateLimiter | None:
    """The limiter of a service, created on first use; None without a limit.

    Its schedule lives in shared state (see the top), so every op and forEach item of
    every process using the same state draws from one schedule: the service's limit
    holds for the deployment as a whole. One object per service and state in a process;
    when the configured rate changes (a reloaded catalog), it takes the new rate.
    """
    rate = combined_rate(per_second, per_minute)
    if rate is None:
        return None
    key = (store_location(service_name), service_name)
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None:
            limiter = _registry[key] = RateLimiter(rate, shared_slots(service_name))
        elif abs(limiter.per_second - rate) > 1e-12:
            limiter.set_rate(rate)
        return limiter
