"""deploy/dagster.yaml: a Dagster instance whose runs and events live in PostgreSQL, used
by the real CLI, with the idempotent run queue."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.cli import workflows
from tests.support.jobs import PROJECT_ROOT, write_defs


@pytest.fixture
def deploy_home(tmp_path: Path, pg_app_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    url = make_url(pg_app_url)
    for name, value in {
        "DAGSTER_PG_HOST": url.host,
        "DAGSTER_PG_PORT": str(url.port),
        "DAGSTER_PG_USERNAME": url.username,
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": url.database,
    }.items():
        monkeypatch.setenv(name, str(value))
    home = tmp_path / "deploy_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return pg_app_url


def test_cli_runs_land_in_postgres_storage(tmp_path: Path, deploy_home: str) -> None:
    defs = write_defs(
        tmp_path / "defs",
        "app",
        {
            "hello": {
                "settings": {"maxParallelSteps": 1},
                "steps": [{"sql": "SELECT 42 AS answer", "outputTable": "t"}],
            }
        },
    )
    result = workflows("run", "app/hello", "--defs", str(defs), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    conninfo = (
        make_url(deploy_home).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    with psycopg.connect(conninfo) as conn:
        runs = conn.execute("SELECT pipeline_name, status FROM runs").fetchall()
        steps = conn.execute(
            "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'STEP_SUCCESS'"
        ).fetchone()
    assert runs == [("app__hello", "SUCCESS")]
    assert steps == (2,), "resolve_variables and t"


def test_the_deploy_instance_uses_the_idempotent_queue(deploy_home: str) -> None:
    from translators.run_coordinator import IdempotentRunCoordinator

    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_coordinator, IdempotentRunCoordinator)
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
