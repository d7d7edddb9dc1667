"""Where a service's rate-limit slots live, so that its limit holds across processes.

A service's `rateLimit` (SPEC 9) must hold for every process of every run: two steps of
one run on two Celery workers, two concurrent runs, a run and a `workflows run`. The
limiter (resources.rate_limit) keeps its evenly spaced schedule in one of these stores;
each keeps a single number per service, "the next free slot", and `take` moves it on by
one interval atomically and says how long the caller waits for the slot it got.

- `RedisSlots`, when `$WORKFLOWS_REDIS_URL` is set (the Celery profile, docs/scaling.md):
  a Lua script does the read-compare-write in Redis, on Redis's own clock, so processes
  on several machines share one schedule whatever their clocks say.
- `FileSlots` otherwise: a small file per service under `$WORKFLOWS_RATE_LIMIT_DIR`
  (default `<data dir>/rate_limits`), read and rewritten under an exclusive `flock`.
  Correct for every process on one machine that uses the same folder (the CLI, the run
  workers, step processes); not across machines (use Redis there). The slot is a
  wall-clock time, the only clock all processes share.

A store that fails (Redis unreachable) raises `SharedLimitError`: a limit that silently
stopped holding would let every worker call at full rate.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from resources.paths import data_dir
from resources.secrets import mask_db_url, redact

REDIS_URL_ENV = "WORKFLOWS_REDIS_URL"
RATE_LIMIT_DIR_ENV = "WORKFLOWS_RATE_LIMIT_DIR"
REDIS_KEY_PREFIX = "workflows:rate_limit:"
# A stored slot this far beyond what any queue of waiters explains comes from a clock
# that was stepped back (or a file from before a reboot): start afresh instead of waiting.
_STALE_SLOTS = 1024
_STALE_GRACE_S = 60.0

# KEYS[1] the service's key; ARGV[1] the interval in seconds. Returns the wait as text:
# Redis turns a Lua number into an integer reply, which would drop the fraction.
_TAKE_SLOT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
if nxt > now + interval * 1024 + 60 then nxt = 0 end
local slot = math.max(now, nxt)
local ttl = math.ceil((slot + interval - now) * 1000) + 60000
redis.call('SET', KEYS[1], string.format('%.6f', slot + interval), 'PX', ttl)
return string.format('%.6f', slot - now)
"""


class SharedLimitError(RuntimeError):
    """The shared rate-limit state could not be reached or updated."""


class SlotStore(Protocol):
    """Hands out slots `interval` seconds apart; `take` returns the seconds to wait."""

    location: str

    def take(self, interval: float) -> float: ...


def shared_slots(service_name: str) -> SlotStore:
    """The store this process uses for `service_name`, from the environment."""
    redis_url = os.environ.get(REDIS_URL_ENV)
    if redis_url:
        return RedisSlots(redis_url, service_name)
    folder = os.environ.get(RATE_LIMIT_DIR_ENV) or str(data_dir() / "rate_limits")
    return FileSlots(Path(folder), service_name)


def store_location(service_name: str) -> str:
    """Which shared state `shared_slots` would use now (a cache key, without secrets)."""
    redis_url = os.environ.get(REDIS_URL_ENV)
    if redis_url:
        return "redis " + mask_db_url(redis_url)
    return "file " + (os.environ.get(RATE_LIMIT_DIR_ENV) or str(data_dir() / "rate_limits"))


class FileSlots:
    """The next free slot of one service in a file, updated under `flock`."""

    def __init__(self, folder: Path, service_name: str) -> None:
        self.service = service_name
        # Not dagster_name: a file name keeps `.` and `-`, so two services whose names
        # differ there (`a-b`, `a_b`) never share a slot file (and so one rate limit).
        self.path = folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", service_name) + ".slot")
        self.location = f"file {self.path}"

    def take(self, interval: float) -> float:
        # Opened per call: a descriptor inherited over fork would share its lock with the
        # parent, and flock would then exclude nothing between the two processes.
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise SharedLimitError(
                f"rate limit of service {self.service!r}: cannot open {self.path}: {error}"
            ) from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by close
            raw = os.pread(fd, 64, 0).strip()
            now = time.time()
            slot = max(now, _fresh(_parse(raw), now, interval))
            os.pwrite(fd, f"{slot + interval:.6f}".encode().ljust(32), 0)
        finally:
            os.close(fd)
        return slot - now


def _parse(raw: bytes) -> float:
    try:
        return float(raw) if raw else 0.0
    except ValueError:
        return 0.0  # a torn or foreign file: the schedule starts afresh


def _fresh(stored: float, now: float, interval: float) -> float:
    return 0.0 if stored > now + interval * _STALE_SLOTS + _STALE_GRACE_S else stored


_clients_lock = threading.Lock()
_clients: dict[str, Any] = {}


class RedisSlots:
    """The next free slot of one service in Redis, moved on by one atomic script."""

    def __init__(self, url: str, service_name: str) -> None:
        self.service = service_name
        self.key = REDIS_KEY_PREFIX + service_name
        self.location = "redis " + mask_db_url(url)
        self._url = url

    def take(self, interval: float) -> float:
        import redis  # only deployments with Redis pay for the import

        try:
            script = _script(self._url)
            return float(script(keys=[self.key], args=[f"{interval:.9f}"]))
        except redis.RedisError as error:
            raise SharedLimitError(
                f"rate limit of service {self.service!r}: Redis at "
                f"{mask_db_url(self._url)} ({REDIS_URL_ENV}) failed: {redact(str(error))}"
            ) from error


def _script(url: str) -> Any:
    """One client (its own connection pool, which reconnects after a fork) per URL."""
    with _clients_lock:
        script = _clients.get(url)
        if script is None:
            import redis

            client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
            script = _clients[url] = client.register_script(_TAKE_SLOT_LUA)
        return script
