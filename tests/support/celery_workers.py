"""`dagster-celery` worker processes and the instance database for the Celery tests.

Workers are started with the command of docs/scaling.md, each in its own session so the
worker (a child of the `dagster-celery` command) stops with it, by that process group's
id. Databases are created on the throwaway PostgreSQL server of tests/support/postgres.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from tests.support.jobs import PROJECT_ROOT

READY_TIMEOUT_S = 60.0


def descendants(pid: int) -> set[int]:
    """`pid` and every process below it (a worker's pids: the command, celery, its pool)."""
    found, todo = {pid}, [pid]
    while todo:
        parent = todo.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found.add(child)
            todo.append(child)
    return found


def create_database(server_url: str, name: str) -> str:
    conninfo = (
        make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def instance_env(dagster_db_url: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables deploy/celery/dagster.yaml reads."""
    url = make_url(dagster_db_url)
    return {
        "DAGSTER_PG_HOST": str(url.host),
        "DAGSTER_PG_PORT": str(url.port),
        "DAGSTER_PG_USERNAME": str(url.username),
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": str(url.database),
    }


def start_worker(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [
        str(Path(sys.executable).parent / "dagster-celery"),
        *("worker", "start", "-A", "dagster_celery.app"),
        *("-y", "deploy/celery/celery.yaml", "-n", name, "--", "--pool=solo"),
    ]
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_ready(workers: dict[str, subprocess.Popen[bytes]], logs: dict[str, Path]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    pending = set(workers)
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            text = logs[name].read_text(errors="replace")
            assert workers[name].poll() is None, f"worker {name} exited:\n{text[-3000:]}"
            if " ready." in text:
                pending.discard(name)
        time.sleep(0.2)
    assert not pending, f"workers not ready after {READY_TIMEOUT_S}s: {sorted(pending)}"


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """Stop a worker this test started, by its process group (a warm shutdown first), and
    wait until every process of it is gone: `dagster-celery` may exit before the celery
    process it started, which could still take a step otherwise."""
    pids = descendants(worker.pid)
    try:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    deadline = time.monotonic() + 20
    while (alive := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
