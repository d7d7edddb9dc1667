"""The Celery profile with real parts on 127.0.0.1 (docs/scaling.md): Redis as broker and
as the shared rate-limit state, two `dagster-celery worker` processes started with the
command the docs give, run and event storage in PostgreSQL (deploy/celery/dagster.yaml),
app rows in PostgreSQL. The HTTP server's request log is the witness of the rate limit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from sqlalchemy.engine import make_url

from resources.shared_slots import REDIS_URL_ENV
from tests.support.app_tables import execute, rows
from tests.support.http_server import LocalHTTPServer
from tests.support.jobs import PROJECT_ROOT, write_defs
from tests.support.redis import redis_url  # noqa: F401  (fixture)
from translators.celery_executor import CELERY, EXECUTOR_TAG
from translators.schedules import run_config_for

pytestmark = [pytest.mark.scaleout, pytest.mark.integration]

WORKERS = ("w1", "w2")
READY_TIMEOUT_S = 60.0
RATE = 5.0
# Calls per burst run: 4 s alone at 5/s, so the two runs overlap even when one starts a
# few seconds after the other on a busy machine.
BURST = 20

SERVICE = {
    "name": "api",
    "baseUrl": "http://127.0.0.1:9/unused",
    "rateLimit": {"requestsPerSecond": RATE},
    "operations": {"pages": {"path": "/pages"}, "echo": {"path": "/echo/{id}"}},
}
PIPELINE = {  # paging, forEach, SQL, persist: each step a Celery task
    "steps": [
        {
            "id": "pages",
            "service": "api",
            "operation": "pages",
            "params": {"per_page": 4},
            "paginate": {"type": "pageNumber", "pageParam": "page"},
            "dataPath": "results",
            "outputTable": "records",
            "outputSchema": {"id": "INTEGER", "name": "VARCHAR"},
        },
        {
            "id": "each",
            "service": "api",
            "operation": "echo",
            "params": {"id": "{{item.id}}"},
            "forEach": {"source": "records", "itemKey": "id", "parallel": 3},
            "fieldMapping": {"id": "{{item.id}}", "path": "path"},
            "outputTable": "echoed",
            "outputSchema": {"id": "INTEGER", "path": "VARCHAR"},
        },
        {
            "sql": "SELECT r.id, r.name, e.path FROM records r JOIN echoed e ON e.id = r.id",
            "outputTable": "joined",
        },
        {
            "persistToDatabase": {
                "appId": "shop",
                "tableName": "items",
                "sourceTable": "joined",
                "mode": "append",
                "fieldMapping": {"id": "id", "name": "name", "path": "path"},
            }
        },
    ]
}


def _burst(prefix: str) -> dict:
    """A forEach of BURST calls; two runs of two such workflows run at once, one per worker."""
    items = {"sql": f"SELECT range AS n FROM range({BURST})", "outputTable": "items"}
    each = {
        "id": "burst",
        "service": "api",
        "operation": "echo",
        "params": {"id": f"{prefix}-{{{{item.n}}}}"},
        "forEach": {"source": "items", "itemKey": "n", "parallel": 5},
        "fieldMapping": {"n": "{{item.n}}"},
        "outputSchema": {"n": "INTEGER"},
    }
    return {"settings": {"executor": "celery"}, "steps": [items, each]}


@dataclass
class Cluster:
    server: LocalHTTPServer
    env: dict[str, str]
    app_url: str
    workers: dict[str, subprocess.Popen[bytes]]

    def worker_pids(self) -> set[int]:
        return {pid for w in self.workers.values() for pid in _descendants(w.pid)}


def _descendants(pid: int) -> set[int]:
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


def _create_database(server_url: str, name: str) -> str:
    conninfo = (
        make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _instance_env(dagster_db_url: str) -> dict[str, str]:
    url = make_url(dagster_db_url)
    return {
        "DAGSTER_PG_HOST": str(url.host),
        "DAGSTER_PG_PORT": str(url.port),
        "DAGSTER_PG_USERNAME": str(url.username),
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": str(url.database),
    }


def _start_worker(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # The command of docs/scaling.md; its own session, so the worker (a child of the
    # dagster-celery command) is stopped together with it, by this process group's id.
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


def _wait_ready(workers: dict[str, subprocess.Popen[bytes]], logs: dict[str, Path]) -> None:
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


def _stop(worker: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=20)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server_url: str,
    redis_url: str,  # noqa: F811
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("celery")
    suffix = uuid.uuid4().hex[:10]
    dagster_db = _create_database(postgres_server_url, f"dagster_{suffix}")
    app_url = _create_database(postgres_server_url, f"shop_{suffix}")
    execute(app_url, "CREATE TABLE items (id INTEGER, name TEXT, path TEXT)")
    defs = write_defs(
        root / "defs",
        "shop",
        {"pipeline": PIPELINE, "burst1": _burst("r1"), "burst2": _burst("r2")},
    )
    (defs / "services" / "api.json").write_text(json.dumps(SERVICE))
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "celery" / "dagster.yaml", home / "dagster.yaml")
    with LocalHTTPServer(total_records=10) as server:
        env = {
            **os.environ,
            **_instance_env(dagster_db),
            "DAGSTER_HOME": str(home),
            "WORKFLOW_DEFS_DIR": str(defs),
            "WORKFLOWS_DATA_DIR": str(root / "data"),
            # One folder all workers share on this machine (S3 when on several).
            "TABLE_STORE_ROOT": str(root / "tables"),
            "APP_DB_URL": app_url,
            "SERVICE_API_BASE_URL": server.url,
            REDIS_URL_ENV: redis_url,
            # `dagster-celery worker start` runs `celery` from the PATH (the venv's).
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        logs = {name: root / f"{name}.log" for name in WORKERS}
        workers = {name: _start_worker(name, env, logs[name]) for name in WORKERS}
        try:
            _wait_ready(workers, logs)
            yield Cluster(server, env, app_url, workers)
        finally:
            for worker in workers.values():
                _stop(worker)


@pytest.fixture
def in_cluster(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    for name, value in cluster.env.items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)
    return cluster


def test_a_run_tagged_celery_runs_its_steps_on_the_workers(in_cluster: Cluster) -> None:
    recon = dg.build_reconstructable_job(
        "translators.definitions", "job_by_name", reconstructable_args=("shop__pipeline",)
    )
    with (
        dg.DagsterInstance.get() as instance,
        dg.execute_job(
            recon,
            instance,
            run_config=run_config_for({}, None, "UTC"),
            tags={EXECUTOR_TAG: CELERY},
        ) as result,
    ):
        assert result.success
        starts = [e for e in result.all_events if e.event_type_value == "STEP_START"]
        hosts = [e for e in result.all_events if "in celery worker" in (e.message or "")]
    assert {e.step_key for e in starts} == {
        "resolve_variables",
        "pages",
        "each",
        "joined",
        "persist_items",
    }
    pids = {e.pid for e in starts}
    assert os.getpid() not in pids, "no step ran in the launching process"
    assert pids <= in_cluster.worker_pids(), "every step ran in a Celery worker process"
    assert len(hosts) == len(starts)
    persisted = rows(in_cluster.app_url, "SELECT id, name, path FROM items ORDER BY id")
    assert persisted == [(i, f"r{i}", f"/echo/{i}") for i in range(10)]


def test_rate_limit_holds_across_two_concurrent_runs_and_two_workers(
    in_cluster: Cluster,
) -> None:
    runs = [
        subprocess.Popen(
            [str(Path(sys.executable).parent / "workflows"), "run", f"shop/{stem}"],
            env=in_cluster.env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for stem in ("burst1", "burst2")  # both start at once
    ]
    outputs = [run.communicate(timeout=120)[0].decode(errors="replace") for run in runs]
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output
    seen = [r for r in in_cluster.server.state.requests if r.path.startswith("/echo/r")]
    assert len(seen) == 2 * BURST
    assert {r.path.split("/")[2].split("-")[0] for r in seen} == set(RUNS)
    with dg.DagsterInstance.get() as instance:
        (pid1, start1, end1), (pid2, start2, end2) = (_burst_step(instance, run) for run in RUNS)
    # The two runs' calling steps ran at the same time, on two worker processes (else
    # the limit was not put to the test)...
    assert pid1 != pid2 and {pid1, pid2} <= in_cluster.worker_pids()
    assert max(start1, start2) < min(end1, end2), f"no overlap: {start1, end1, start2, end2}"
    # ...and the server saw them spaced at 5/s, whoever sent them: six requests span at
    # least five intervals, less one interval a request may arrive late on a busy machine
    # (it is never sent early). Each worker alone at 5/s would make that ~0.5 s.
    times = sorted(r.at for r in seen)
    assert min(times[i + 5] - times[i] for i in range(len(times) - 5)) >= 4 / RATE
    assert times[-1] - times[0] >= (2 * BURST - 2) / RATE


RUNS = ("r1", "r2")


def _burst_step(instance: dg.DagsterInstance, run: str) -> tuple[int, float, float]:
    """The pid, start and end time of the `burst` step of the latest run of that workflow."""
    (record,) = instance.get_run_records(dg.RunsFilter(job_name=f"shop__burst{run[-1]}"), limit=1)
    events = {
        e.dagster_event_type: e
        for e in instance.all_logs(record.dagster_run.run_id)
        if e.step_key == "burst" and e.dagster_event is not None
    }
    start = events[dg.DagsterEventType.STEP_START]
    end = events[dg.DagsterEventType.STEP_SUCCESS]
    assert start.dagster_event is not None
    return start.dagster_event.pid, start.timestamp, end.timestamp
