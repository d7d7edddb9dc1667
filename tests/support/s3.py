"""An S3-compatible server for the tests: moto's standalone server, a real process.

`moto_s3` (session scope) starts `python -m moto.server` on 127.0.0.1 on a free port and
stops it by its PID at the end. `s3_store` (per test) makes a fresh bucket and points the
table store at `s3://<bucket>/tables` through the variables a deployment sets:
`TABLE_STORE_ROOT`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` and
`TABLE_STORE_ENDPOINT_URL`. Step processes inherit them, as run workers would.

moto is a pinned test dependency (pyproject's dev extra); nothing is downloaded here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

ACCESS_KEY = "test-access-key"
SECRET_KEY = "s3cr3t-Key-for-the-tests-only"
REGION = "us-east-1"
PREFIX = "tables"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    pid: int


@dataclass(frozen=True)
class S3Store:
    """A bucket the table store writes to: `root` is `s3://<bucket>/<PREFIX>`."""

    server: S3Server
    bucket: str

    @property
    def root(self) -> str:
        return f"s3://{self.bucket}/{PREFIX}"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.server.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def keys(self, under: str = "") -> list[str]:
        """The object keys below `<PREFIX>/<under>`, listed by the S3 API, sorted.

        Empty folder markers (`.../`, which pyarrow leaves where it deleted the last object
        of a folder) hold no data and are left out.
        """
        pages = self.client().get_paginator("list_objects_v2")
        prefix = f"{PREFIX}/{under}"
        return sorted(
            item["Key"]
            for page in pages.paginate(Bucket=self.bucket, Prefix=prefix)
            for item in page.get("Contents", [])
            if not item["Key"].endswith("/")
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto(timeout: float = 30.0) -> tuple[S3Server, subprocess.Popen[bytes]]:
    port = _free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 (the server's output, read on a failed start)
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                return S3Server(endpoint, process.pid), process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                log.seek(0)
                raise RuntimeError(f"moto server did not start: {log.read()[-2000:]!r}") from None
            time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3Server]:
    server, process = start_moto()
    try:
        yield server
    finally:
        stop(process)


@pytest.fixture
def s3_store(moto_s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    store = S3Store(moto_s3, f"wf-{uuid.uuid4().hex[:12]}")
    store.client().create_bucket(Bucket=store.bucket)
    for name, value in bucket_env(store).items():
        monkeypatch.setenv(name, value)
    return store


def bucket_env(store: S3Store) -> dict[str, str]:
    """The variables that point the table store (and the step outputs) at `store`."""
    return {
        "TABLE_STORE_ROOT": store.root,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
        "TABLE_STORE_ENDPOINT_URL": store.server.endpoint,
    }
