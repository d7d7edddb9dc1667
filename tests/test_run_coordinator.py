"""The run queue refuses a launch whose idempotencyKey matches an active run (SPEC 5.5)."""

from __future__ import annotations

import threading
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.run_coordinator import SubmitRunContext
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from tests.support.jobs import REAL_DEFS, load

COORDINATOR = {
    "run_coordinator": {
        "module": "translators.run_coordinator",
        "class": "IdempotentRunCoordinator",
    }
}


def origin(job_name: str) -> RemoteJobOrigin:
    """Queued runs must say where their code lives; any origin will do for the queue."""
    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="translators.definitions")
    )
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job_name)


def launch(instance: dg.DagsterInstance, job: dg.JobDefinition, **tags: str) -> dg.DagsterRun:
    run = instance.create_run_for_job(job, tags=tags, remote_job_origin=origin(job.name))
    return instance.run_coordinator.submit_run(SubmitRunContext(run, workspace=None))  # type: ignore[arg-type]


def test_a_second_launch_with_an_active_key_is_refused() -> None:
    _, defs = load(REAL_DEFS)
    job = defs.resolve_job_def("demo_shop__syncEnrichedOrders")
    with dg.instance_for_test(overrides=COORDINATOR) as instance:
        first = launch(instance, job, idempotencyKey="k")
        assert first.status == dg.DagsterRunStatus.QUEUED
        second = launch(instance, job, idempotencyKey="k")
        assert second.status == dg.DagsterRunStatus.CANCELED
        messages = [e.message for e in instance.all_logs(second.run_id)]
        assert any(f"run {first.run_id} with idempotency key 'k'" in (m or "") for m in messages)

        other = launch(instance, job, idempotencyKey="k2")
        assert other.status == dg.DagsterRunStatus.QUEUED
        untagged = launch(instance, job)
        assert untagged.status == dg.DagsterRunStatus.QUEUED


def test_the_key_is_free_again_once_the_run_finished() -> None:
    _, defs = load(REAL_DEFS)
    job = defs.resolve_job_def("demo_shop__syncEnrichedOrders")
    with dg.instance_for_test(overrides=COORDINATOR) as instance:
        first = launch(instance, job, idempotencyKey="k")
        instance.report_run_canceled(first)
        again = launch(instance, job, idempotencyKey="k")
        assert again.status == dg.DagsterRunStatus.QUEUED


@pytest.mark.parametrize("storage", ["sqlite", "postgres"])
def test_two_submissions_of_one_key_at_once_queue_one_run(
    storage: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    overrides: dict = dict(COORDINATOR)
    if storage == "postgres":
        url = request.getfixturevalue("pg_app_url")
        pg = url.replace("postgresql://", "postgresql+psycopg2://", 1)
        overrides["storage"] = {"postgres": {"postgres_url": pg}}
    _, defs = load(REAL_DEFS)
    job = defs.resolve_job_def("demo_shop__syncEnrichedOrders")
    with dg.instance_for_test(overrides=overrides, temp_dir=str(tmp_path)) as instance:
        for attempt in range(5):  # several rounds: a race lost once in a while still fails
            runs = [
                instance.create_run_for_job(
                    job, tags={"idempotencyKey": f"k{attempt}"}, remote_job_origin=origin(job.name)
                )
                for _ in range(2)
            ]
            start = threading.Barrier(2)
            results: list[dg.DagsterRun] = []

            def submit(
                run: dg.DagsterRun, start: threading.Barrier, results: list[dg.DagsterRun]
            ) -> None:
                start.wait()
                submitted = instance.run_coordinator.submit_run(
                    SubmitRunContext(run, workspace=None)  # type: ignore[arg-type]
                )
                results.append(submitted)

            threads = [threading.Thread(target=submit, args=(run, start, results)) for run in runs]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            statuses = sorted(r.status.value for r in results)
            assert statuses == ["CANCELED", "QUEUED"], statuses


def test_a_dead_holder_releases_its_key() -> None:
    _, defs = load(REAL_DEFS)
    job = defs.resolve_job_def("demo_shop__syncEnrichedOrders")
    with dg.instance_for_test(overrides=COORDINATOR) as instance:
        first = launch(instance, job, idempotencyKey="k")
        instance.report_run_failed(first, "worker lost: process 1 on elsewhere is gone")
        again = launch(instance, job, idempotencyKey="k")
        assert again.status == dg.DagsterRunStatus.QUEUED
