"""Choosing Celery, the service pools and the one-machine default (docs/scaling.md), without
Celery workers: what a run that asks for Celery is told when a part is missing, and that
a default run needs none of Redis, Celery or PostgreSQL (not even their imports)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest
import yaml

from resources.shared_slots import REDIS_URL_ENV
from tests.support.http_server import LocalHTTPServer
from tests.support.jobs import PROJECT_ROOT, load, write_defs
from translators.celery_executor import CELERY, EXECUTOR_TAG
from translators.loader import load_definitions
from translators.run_creation import reconstructable
from translators.schedules import run_config_for

SERVICE_STEP = {
    "id": "fetch",
    "service": "crm",
    "operation": "listCustomers",
    "outputTable": "customers",
    "outputSchema": {"id": "VARCHAR"},
}
SQL_STEP = {"sql": "SELECT 1 AS one", "outputTable": "one"}


def test_a_step_calling_a_service_is_in_that_services_pool(tmp_path: Path) -> None:
    defs_dir = write_defs(
        tmp_path / "defs", "app", {"w": {"steps": [SERVICE_STEP, SQL_STEP]}}, ("crm",)
    )
    _, defs = load(defs_dir)
    job = defs.resolve_job_def("app__w")
    assert job.graph.node_named("fetch").definition.pool == "service/crm"
    assert job.graph.node_named("one").definition.pool is None


def test_an_unknown_executor_setting_is_a_problem_with_its_pointer(tmp_path: Path) -> None:
    workflow = {"settings": {"executor": "spark"}, "steps": [SQL_STEP]}
    loaded = load_definitions(write_defs(tmp_path / "defs", "app", {"w": workflow}))
    texts = [str(p) for p in loaded.problems]
    assert any("apps/app/workflows/w.json#/settings/executor" in t for t in texts), texts
    assert any("celery" in t for t in texts), texts


def _recon(job_name: str) -> dg.ReconstructableJob:
    return reconstructable(job_name)


def test_a_celery_run_without_redis_fails_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs_dir = write_defs(tmp_path / "defs", "app", {"c1": {"steps": [SQL_STEP]}})
    monkeypatch.setenv("WORKFLOW_DEFS_DIR", str(defs_dir))
    monkeypatch.delenv(REDIS_URL_ENV, raising=False)
    with dg.instance_for_test() as instance:
        result = dg.execute_job(
            _recon("app__c1"),
            instance,
            run_config=run_config_for({}, None, "UTC"),
            tags={EXECUTOR_TAG: CELERY},
        )
        assert not result.success
        messages = _run_failure(instance, result.run_id)
    assert REDIS_URL_ENV in messages and "not set" in messages


def test_a_celery_workflow_on_an_ephemeral_instance_says_it_needs_a_persistent_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow = {"settings": {"executor": "celery"}, "steps": [SQL_STEP]}
    monkeypatch.setenv(
        "WORKFLOW_DEFS_DIR", str(write_defs(tmp_path / "d", "app", {"c2": workflow}))
    )
    monkeypatch.setenv(REDIS_URL_ENV, "redis://127.0.0.1:1/0")
    instance = dg.DagsterInstance.ephemeral()
    result = dg.execute_job(_recon("app__c2"), instance, run_config=run_config_for({}, None, "UTC"))
    assert not result.success
    assert "persistent Dagster instance" in _run_failure(instance, result.run_id)
    assert not [e for e in result.all_events if e.event_type_value == "STEP_START"]


def _run_failure(instance: dg.DagsterInstance, run_id: str) -> str:
    logs = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    return " ".join(str(e.dagster_event.event_specific_data) for e in logs if e.dagster_event)


_DEFAULT_RUN = textwrap.dedent(
    """
    import sys
    from tests.support.jobs import load, run_job
    _, defs = load(sys.argv[1])
    result = run_job(defs, "app__plain")
    assert result.success
    loaded = [m for m in ("celery", "dagster_celery", "redis", "kombu") if m in sys.modules]
    print("imported:", " ".join(loaded))
    """
)


def test_the_default_runs_on_one_machine_with_none_of_the_scaleout_parts(tmp_path: Path) -> None:
    defs_dir = write_defs(
        tmp_path / "defs", "app", {"plain": {"steps": [SERVICE_STEP, SQL_STEP]}}, ("crm",)
    )
    with LocalHTTPServer() as server:
        env = {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(PROJECT_ROOT),
            "WORKFLOWS_DATA_DIR": str(tmp_path / "data"),
            "DAGSTER_HOME": str(tmp_path / "dagster_home"),
            "DAGSTER_DISABLE_TELEMETRY": "1",
            # /echo/<anything> answers any path with one JSON object: one row.
            "SERVICE_CRM_BASE_URL": f"{server.url}/echo",
            "DEMO_CRM_KEY": "test-key",
        }
        done = subprocess.run(
            [sys.executable, "-c", _DEFAULT_RUN, str(defs_dir)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert server.state.requests, "the service step called the server"
    assert done.stdout.strip().splitlines()[-1] == "imported:"


@pytest.mark.parametrize("profile", ["deploy/dagster.yaml", "deploy/celery/dagster.yaml"])
def test_the_deploy_profiles_limit_runs_per_app_and_steps_per_service(
    profile: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Their `concurrency` block on a SQLite instance: the rest needs PostgreSQL (that is
    # tested by test_deploy_instance.py and test_celery_scaleout.py).
    block = yaml.safe_load((PROJECT_ROOT / profile).read_text())["concurrency"]
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump({"concurrency": block}))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        config = instance.get_concurrency_config()
    per_app = {"key": "workflow/app", "value": {"applyLimitPerUniqueValue": True}, "limit": 2}
    assert per_app in config.run_queue_config.tag_concurrency_limits
    assert config.pool_config.default_pool_limit == 4
