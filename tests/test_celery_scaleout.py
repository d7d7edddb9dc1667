"""The Celery profile with real parts on 127.0.0.1 (docs/scaling.md): Redis as broker and
as the shared rate-limit state, two `dagster-celery worker` processes started with the
command the docs give, run and event storage in PostgreSQL (deploy/celery/dagster.yaml),
app rows in PostgreSQL. The HTTP server's request log is the witness of the rate limit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import HandledOutputData, LoadedInputData

from resources.shared_slots import REDIS_URL_ENV
from resources.table_store import TableStoreResource
from tests.support.app_tables import execute, rows
from tests.support.celery_workers import (
    create_database,
    descendants,
    instance_env,
    start_worker,
    stop_worker,
    wait_ready,
)
from tests.support.http_server import LocalHTTPServer, RecordedRequest
from tests.support.jobs import PROJECT_ROOT, write_defs
from tests.support.redis import redis_url  # noqa: F401  (fixture)
from tests.support.s3 import S3Server, S3Store, bucket_env
from translators.celery_executor import CELERY, EXECUTOR_TAG
from translators.schedules import run_config_for

pytestmark = [pytest.mark.scaleout, pytest.mark.integration]

WORKERS = ("w1", "w2")
RATE = 5.0
# Calls per burst run: 4 s alone at 5/s, so the two runs overlap even when one starts a
# few seconds after the other on a busy machine.
BURST = 20

SERVICE = {
    "name": "api",
    "baseUrl": "http://127.0.0.1:9/unused",
    "rateLimit": {"requestsPerSecond": RATE},
    "operations": {
        "pages": {"path": "/pages"},
        "echo": {"path": "/echo/{id}"},
        "fragile": {"path": "/fragile-pages"},
    },
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


# Pages of 3 of the server's 10 records; the first request for page 3 gets a 400 (no
# step retry), the next one the page. `seed` finishes in the failed run: the re-executed
# run's `counted` loads its output from there.
FRAGILE = {
    "settings": {"executor": "celery"},
    "steps": [
        {"sql": "SELECT 7 AS seven", "outputTable": "seed"},
        {
            "id": "pages",
            "service": "api",
            "operation": "fragile",
            "params": {"per_page": 3, "id": "celery", "fail_from": 3, "status": 400},
            "paginate": {"type": "pageNumber", "pageParam": "page"},
            "dataPath": "results",
            "outputTable": "records",
            "outputSchema": {"id": "INTEGER", "name": "VARCHAR"},
        },
        {
            "sql": "SELECT count(*) AS n, any_value(seven) AS seven FROM records, seed",
            "outputTable": "counted",
        },
    ],
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
    bucket: S3Store
    workers: dict[str, subprocess.Popen[bytes]]
    logs: dict[str, Path]
    machines: dict[str, dict[str, str]]  # each worker's environment

    def worker_pids(self) -> set[int]:
        return {pid for w in self.workers.values() for pid in descendants(w.pid)}

    def worker_of(self, pid: int) -> str:
        (name,) = [n for n, w in self.workers.items() if pid in descendants(w.pid)]
        return name


def _instance_home(home: Path) -> Path:
    home.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "deploy" / "celery" / "dagster.yaml", home / "dagster.yaml")
    return home


def _machine(folder: Path, env: dict[str, str]) -> dict[str, str]:
    home = _instance_home(folder / "dagster_home")
    return {**env, "DAGSTER_HOME": str(home), "WORKFLOWS_DATA_DIR": str(folder / "data")}


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server_url: str,
    redis_url: str,  # noqa: F811
    moto_s3: S3Server,
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("celery")
    suffix = uuid.uuid4().hex[:10]
    dagster_db = create_database(postgres_server_url, f"dagster_{suffix}")
    app_url = create_database(postgres_server_url, f"shop_{suffix}")
    execute(app_url, "CREATE TABLE items (id INTEGER, name TEXT, path TEXT)")
    bucket = S3Store(moto_s3, f"celery-{suffix}")
    bucket.client().create_bucket(Bucket=bucket.bucket)
    workflows = {"pipeline": PIPELINE, "burst1": _burst("r1"), "burst2": _burst("r2")}
    defs = write_defs(root / "defs", "shop", {**workflows, "fragile": FRAGILE})
    (defs / "services" / "api.json").write_text(json.dumps(SERVICE))
    home = _instance_home(root / "dagster_home")
    with LocalHTTPServer(total_records=10) as server:
        env = {
            **os.environ,
            **instance_env(dagster_db),
            "DAGSTER_HOME": str(home),
            "WORKFLOW_DEFS_DIR": str(defs),
            "WORKFLOWS_DATA_DIR": str(root / "data"),
            # The table store and the step outputs in the bucket, as across machines.
            **bucket_env(bucket),
            "APP_DB_URL": app_url,
            "SERVICE_API_BASE_URL": server.url,
            REDIS_URL_ENV: redis_url,
            # `dagster-celery worker start` runs `celery` from the PATH (the venv's).
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        # Each worker its own instance folder and data folder, as on its own machine: it
        # shares only Redis, PostgreSQL and the bucket with the others.
        machines = {name: _machine(root / name, env) for name in WORKERS}
        logs = {name: root / f"{name}.log" for name in WORKERS}
        workers = {name: start_worker(name, machines[name], logs[name]) for name in WORKERS}
        try:
            wait_ready(workers, logs)
            yield Cluster(server, env, app_url, bucket, workers, logs, machines)
        finally:
            for worker in workers.values():
                stop_worker(worker)


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
        run_id = result.run_id
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
    # The step tables and the step outputs the workers passed along are objects in the
    # bucket, listed by the S3 API; nothing of the run is in a local folder.
    bucket = in_cluster.bucket
    assert bucket.keys(f"{run_id}/") == [
        f"tables/{run_id}/{step}.parquet" for step in ("each", "joined", "pages")
    ]
    assert bucket.keys(f"storage/{run_id}/") == [
        f"tables/storage/{run_id}/{step}/result"
        for step in ("each", "joined", "pages", "persist_items", "resolve_variables")
    ]
    for env in (in_cluster.env, *in_cluster.machines.values()):
        assert not (Path(env["WORKFLOWS_DATA_DIR"]) / "tables").exists()
        assert not list((Path(env["DAGSTER_HOME"]) / "storage").glob(f"{run_id}/*/result"))


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
    assert start.dagster_event is not None and start.dagster_event.pid is not None
    return start.dagster_event.pid, start.timestamp, end.timestamp


def test_a_step_reexecuted_from_failure_on_another_worker_resumes_from_the_bucket(
    in_cluster: Cluster,
) -> None:
    """The worker that ran the failed attempt is stopped (its machine is gone) before the
    re-execution, so the step must run on the other one; it is started again at the end."""
    server, bucket = in_cluster.server, in_cluster.bucket
    recon = dg.build_reconstructable_job(
        "translators.definitions", "job_by_name", reconstructable_args=("shop__fragile",)
    )
    config = run_config_for({}, None, "UTC")
    with dg.DagsterInstance.get() as instance:
        with dg.execute_job(recon, instance, run_config=config) as first:
            assert not first.success
            first_id, first_pid = first.run_id, _pid_of(first, "pages")
            seed_at = _output_uri(first, "seed")
        assert len(bucket.keys(f"{first_id}/checkpoints/pages/")) == 2, (
            "one journal object per finished page, in the bucket"
        )
        before = len(server.state.requests)
        lost = in_cluster.worker_of(first_pid)
        stop_worker(in_cluster.workers[lost])
        try:
            options = dg.ReexecutionOptions.from_failure(first_id, instance)
            with dg.execute_job(recon, instance, reexecution_options=options) as retry:
                assert retry.success
                retry_pid = _pid_of(retry, "pages")
                handle = retry.output_for_node("pages")
                loaded = _loaded_from(retry, "counted")
                counted = list(TableStoreResource().iter_rows(retry.output_for_node("counted")))
        finally:
            _restart(in_cluster, lost)
    assert retry_pid != first_pid and in_cluster.worker_of(retry_pid) != lost
    requests = server.state.requests
    assert _pages(requests[:before]) == [1, 2, 3]
    assert _pages(requests[before:]) == [3, 4, 5], "pages 1-2 came from the bucket's checkpoint"
    assert handle.path.startswith(f"{bucket.root}/"), handle.path
    # `seed` finished in the failed run, on whichever worker, and its output went to the
    # bucket; the re-executed `counted` loaded it from there (no local folder is shared).
    assert seed_at == f"{bucket.root}/storage/{first_id}/seed/result"
    assert f"tables/storage/{first_id}/seed/result" in bucket.keys(f"storage/{first_id}/")
    assert loaded == {"pages", "seed"}
    assert counted == [{"n": 10, "seven": 7}]
    assert [row["id"] for row in TableStoreResource().iter_rows(handle)] == list(range(10))
    assert not bucket.keys(f"{first_id}/checkpoints/"), "removed once the step succeeded"


def _pages(requests: list[RecordedRequest]) -> list[int]:
    return [int(r.query["page"][-1]) for r in requests if r.path == "/fragile-pages"]


def _events(result: dg.ExecutionResult, kind: str, step: str) -> list[dg.DagsterEvent]:
    return [e for e in result.all_events if e.event_type_value == kind and e.step_key == step]


def _loaded_from(result: dg.ExecutionResult, step: str) -> set[str]:
    """The upstream steps whose outputs the step loaded through the IO manager."""
    loaded = [e.event_specific_data for e in _events(result, "LOADED_INPUT", step)]
    return {str(d.upstream_step_key) for d in loaded if isinstance(d, LoadedInputData)}


def _output_uri(result: dg.ExecutionResult, step: str) -> str:
    """Where the IO manager stored the step's output, as its HANDLED_OUTPUT event says."""
    (handled,) = _events(result, "HANDLED_OUTPUT", step)
    assert isinstance(handled.event_specific_data, HandledOutputData)
    return str(handled.event_specific_data.metadata["uri"].value)


def _pid_of(result: dg.ExecutionResult, step: str) -> int:
    (start,) = _events(result, "STEP_START", step)
    assert start.pid is not None
    return start.pid


def _restart(cluster: Cluster, name: str) -> None:
    """The stopped worker back, not waited for: steps queue in Redis until it is ready."""
    cluster.workers[name] = start_worker(name, cluster.machines[name], cluster.logs[name])
