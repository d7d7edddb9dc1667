"""A throwaway Redis server for the tests (Celery broker, shared rate limits).

`start_redis()` returns a running server: the one named by `$TEST_REDIS_URL` (left alone
when stopped), or a fresh `redis-server` on 127.0.0.1 on a free port, with no persistence
and its folder in a temporary directory. Redis runs as root too (it only warns), so it
is started directly and the PID held is the server's; `stop()` ends it by that PID and
removes the folder. `scripts/ensure-redis` installs the binary when it is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.postgres import _free_port

_START_TIMEOUT_S = 15.0


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen[bytes] | None = None
    root: Path | None = None
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Stop a server this module started (a `$TEST_REDIS_URL` server is left alone)."""
        if self._stopped or self.process is None:
            return
        self._stopped = True
        try:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        finally:
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)


def start_redis() -> RedisServer:
    """Start a throwaway server (or use `$TEST_REDIS_URL`); the caller must `stop()` it."""
    external = os.environ.get("TEST_REDIS_URL")
    if external:
        return RedisServer(url=external)
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise RuntimeError("redis-server not found: run scripts/ensure-redis or set TEST_REDIS_URL")
    root = Path(tempfile.mkdtemp(prefix="redistest-"))
    last_error = ""
    for _attempt in range(3):  # a port taken between choosing and binding gets another try
        port = _free_port()
        process = subprocess.Popen(
            _command(binary, port, root),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if _wait_ready(port, process):
            return RedisServer(url=f"redis://127.0.0.1:{port}/0", process=process, root=root)
        process.kill()
        process.wait(timeout=10)
        last_error = _tail(root / "redis.log")
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"redis-server did not start: {last_error}")


def _command(binary: str, port: int, root: Path) -> list[str]:
    return [
        binary,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(root),
        "--save",
        "",
        "--appendonly",
        "no",
        "--logfile",
        str(root / "redis.log"),
    ]


def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:]
    except OSError:
        return ""


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """One throwaway Redis for the session, started on first use."""
    server = start_redis()
    try:
        yield server.url
    finally:
        server.stop()
