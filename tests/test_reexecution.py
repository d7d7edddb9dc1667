"""Re-execution from failure reuses finished steps and the recorded variables, and a
persist step never writes twice in one run lineage (SPEC 3.4, 5.4, 5.5)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from tests.support.app_tables import execute, rows
from tests.support.jobs import write_defs
from translators.job_builder import VARIABLES_OP
from translators.run_creation import reconstructable
from translators.schedules import run_config_for

JOB = "app__stamp"
WORKFLOW = {
    "variables": {"at": {"type": "now"}, "appId": {"type": "param", "default": "app"}},
    "settings": {"maxParallelSteps": 1},
    "steps": [
        {"sql": "SELECT '{{var.at}}' AS at", "outputTable": "stamp"},
        {
            "importFromDatabase": {"appId": "{{var.appId}}", "tableName": "late"},
            "outputTable": "late_rows",
            "outputSchema": {"id": "INTEGER"},
        },
        {
            "id": "persist_stamp",
            "dependsOn": ["late_rows"],
            "persistToDatabase": {
                "appId": "{{var.appId}}",
                "tableName": "stamps",
                "sourceTable": "stamp",
                "mode": "append",
                "fieldMapping": {"at": "at"},
            },
        },
    ],
}


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_app_url: str):
    defs_dir = write_defs(tmp_path / "defs", "app", {"stamp": WORKFLOW})
    monkeypatch.setenv("WORKFLOW_DEFS_DIR", str(defs_dir))
    monkeypatch.setenv("APP_DB_URL", sqlite_app_url)
    execute(sqlite_app_url, "CREATE TABLE stamps (at TEXT)")
    recon = reconstructable(JOB)
    with dg.instance_for_test() as instance:
        yield recon, instance, sqlite_app_url


def steps_run(result: dg.ExecutionResult) -> set[str]:
    return {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}


def test_reexecution_reuses_variables_and_writes_once(setup) -> None:
    recon, instance, url = setup
    with dg.execute_job(recon, instance, run_config=run_config_for({}, None, "UTC")) as first:
        assert not first.success, "the source table does not exist yet"
        stamp = first.output_for_node(VARIABLES_OP)["values"]["at"]

    execute(url, "CREATE TABLE late (id INTEGER)", "INSERT INTO late VALUES (1)")
    retry = dg.execute_job(
        recon,
        instance,
        reexecution_options=dg.ReexecutionOptions.from_failure(first.run_id, instance),
    )
    assert retry.success
    assert steps_run(retry) == {"late_rows", "persist_stamp"}
    assert rows(url, "SELECT at FROM stamps") == [(stamp,)], "the first run's logical time"

    again = dg.execute_job(
        recon,
        instance,
        reexecution_options=dg.ReexecutionOptions(
            parent_run_id=retry.run_id, step_selection=["persist_stamp"]
        ),
    )
    assert again.success
    assert rows(url, "SELECT count(*) FROM stamps") == [(1,)], "same lineage: no second append"
    output = next(e for e in again.all_events if e.event_type_value == "STEP_OUTPUT")
    assert output.step_output_data.metadata["already done"].value is True


def test_a_new_run_appends_again(setup) -> None:
    recon, instance, url = setup
    execute(url, "CREATE TABLE late (id INTEGER)")
    for _ in range(2):
        assert dg.execute_job(recon, instance, run_config=run_config_for({}, None, "UTC")).success
    assert rows(url, "SELECT count(*) FROM stamps") == [(2,)]
