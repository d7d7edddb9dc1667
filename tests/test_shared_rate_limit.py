"""A service's rate limit holds across processes: in a locked file on one machine, in Redis
across machines. The witness is the HTTP server's own request log (when each request
arrived), not a count kept by the clients."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from resources.rate_limit import service_limiter
from resources.shared_slots import REDIS_URL_ENV, FileSlots, RedisSlots, SharedLimitError
from tests.support.http_server import LocalHTTPServer, RecordedRequest
from tests.support.redis import redis_url  # noqa: F401  (fixture)

pytestmark = pytest.mark.scaleout

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RATE = 5.0
PER_PROCESS = 5
# A request is never sent before its slot but may arrive up to about one interval late on
# a busy machine: six requests span at least four intervals (each process alone at 5/s,
# two of them would make that ~0.5 s).
MIN_SPAN_OF_SIX = 4 / RATE

# Each process calls through the service's limiter as a step would, then sends its
# request to the server; a process started together with the others.
_CLIENT = textwrap.dedent(
    """
    import sys, time, urllib.request
    from resources.rate_limit import service_limiter
    url, count, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    time.sleep(max(0.0, start - time.time()))
    limiter = service_limiter("shared-svc", per_second=5)
    for i in range(count):
        limiter.acquire()
        urllib.request.urlopen(url + f"/echo/{i}", timeout=10).read()
    """
)


def _run_clients(server: LocalHTTPServer, env_extra: dict[str, str], processes: int) -> None:
    import os

    env = {**os.environ, **env_extra, "PYTHONPATH": str(PROJECT_ROOT)}
    start = time.time() + 1.5  # all begin together, after their imports
    clients = [
        subprocess.Popen(
            [sys.executable, "-c", _CLIENT, server.url, str(PER_PROCESS), str(start)],
            env=env,
            cwd=PROJECT_ROOT,
        )
        for _ in range(processes)
    ]
    for client in clients:
        assert client.wait(timeout=60) == 0


def _tightest_span_of_six(requests: list[RecordedRequest]) -> float:
    times = sorted(r.at for r in requests)
    return min(times[i + 5] - times[i] for i in range(len(times) - 5))


def test_rate_limit_holds_across_processes_with_a_file_lock(tmp_path: Path) -> None:
    with LocalHTTPServer() as server:
        _run_clients(server, {"WORKFLOWS_RATE_LIMIT_DIR": str(tmp_path / "limits")}, 2)
        seen = [r for r in server.state.requests if r.path.startswith("/echo/")]
    assert len(seen) == 2 * PER_PROCESS
    # Per process alone, two processes would send 10 per second (six within ~0.5 s).
    assert _tightest_span_of_six(seen) >= MIN_SPAN_OF_SIX
    assert max(r.at for r in seen) - min(r.at for r in seen) >= (2 * PER_PROCESS - 2) / RATE


def test_rate_limit_holds_across_processes_in_redis(redis_url: str) -> None:  # noqa: F811
    with LocalHTTPServer() as server:
        _run_clients(server, {REDIS_URL_ENV: redis_url}, 2)
        seen = [r for r in server.state.requests if r.path.startswith("/echo/")]
    assert len(seen) == 2 * PER_PROCESS
    assert _tightest_span_of_six(seen) >= MIN_SPAN_OF_SIX
    assert max(r.at for r in seen) - min(r.at for r in seen) >= (2 * PER_PROCESS - 2) / RATE


def test_slots_are_spaced_by_the_interval_in_both_stores(
    tmp_path: Path,
    redis_url: str,  # noqa: F811
) -> None:
    for store in (FileSlots(tmp_path, "svc/a b"), RedisSlots(redis_url, f"svc-{time.time()}")):
        waits = [store.take(0.5) for _ in range(3)]
        assert waits[0] == pytest.approx(0.0, abs=0.05)
        assert waits[1] == pytest.approx(0.5, abs=0.05)
        assert waits[2] == pytest.approx(1.0, abs=0.05)


def test_a_clock_stepped_back_does_not_block_the_service(tmp_path: Path) -> None:
    store = FileSlots(tmp_path, "svc")
    store.path.write_text(f"{time.time() + 10 * 24 * 3600:.6f}")  # from a clock 10 days ahead
    assert store.take(0.2) == pytest.approx(0.0, abs=0.05)


def test_unreachable_redis_is_an_error_naming_the_service_and_masked_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(REDIS_URL_ENV, "redis://:hunter2secret@127.0.0.1:1/0")
    limiter = service_limiter("billing", per_second=5)
    assert limiter is not None
    with pytest.raises(SharedLimitError) as caught:
        limiter.acquire()
    message = str(caught.value)
    assert "'billing'" in message and "127.0.0.1:1" in message and REDIS_URL_ENV in message
    assert "hunter2secret" not in message


def test_the_limiter_follows_the_store_chosen_by_the_environment(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,  # noqa: F811
) -> None:
    monkeypatch.setenv("WORKFLOWS_RATE_LIMIT_DIR", str(tmp_path))
    on_file = service_limiter("svc-env", per_second=5)
    monkeypatch.setenv(REDIS_URL_ENV, redis_url)
    on_redis = service_limiter("svc-env", per_second=5)
    assert on_file is not None and on_redis is not None and on_file is not on_redis
    on_file.acquire()
    assert (tmp_path / "svc-env.slot").exists()
