"""Issue 8: unchanged files are not checked again (plan cache), a run builds only its own
job, and independent steps run at once inside the run worker by default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

import translators.definitions as definitions
from tests.support.jobs import PROJECT_ROOT, REAL_DEFS, write_defs
from translators.job_builder import executor_for
from translators.loader import load_definitions
from translators.schedules import run_config_for
from translators.spec.workflow import SettingsSpec

SLOW_SQL = "SELECT count(*) AS n FROM range(30000000) t(i) WHERE i % 7 = 3"
TWO_SQL = {
    "steps": [
        {"sql": "SELECT 1 AS id, 'a' AS name", "outputTable": "first"},
        {"sql": "SELECT id, upper(name) AS name FROM first", "outputTable": "second"},
    ]
}


def test_a_cache_hit_binds_no_sql_and_gives_the_same_plans(tmp_path: Path, binds) -> None:
    defs = write_defs(tmp_path / "defs", "shop", {"a": TWO_SQL, "b": TWO_SQL})
    first = load_definitions(defs)
    assert len(binds) == 4 and first.ok
    binds.clear()
    again = load_definitions(defs)
    assert binds == [], "nothing is bound again for unchanged files"
    assert [w.job_name for w in again.workflows] == ["shop__a", "shop__b"]
    assert [s.output_schema for s in again.workflows[0].steps] == [
        s.output_schema for s in first.workflows[0].steps
    ]


def test_a_changed_file_is_checked_again_and_only_it(tmp_path: Path, binds) -> None:
    defs = write_defs(tmp_path / "defs", "shop", {"a": TWO_SQL, "b": TWO_SQL})
    load_definitions(defs)
    changed = json.loads(json.dumps(TWO_SQL))
    changed["steps"][1]["sql"] = "SELECT id, name, 42 AS answer FROM first"
    (defs / "apps/shop/workflows/b.json").write_text(json.dumps(changed))
    binds.clear()
    loaded = load_definitions(defs)
    assert len(binds) == 2, "the two queries of b.json only"
    [b] = [w for w in loaded.workflows if w.stem == "b"]
    assert b.steps[1].output_schema == {"id": "INTEGER", "name": "VARCHAR", "answer": "INTEGER"}


def test_a_changed_service_catalog_invalidates_every_entry(tmp_path: Path, binds) -> None:
    defs = write_defs(tmp_path / "defs", "shop", {"a": TWO_SQL}, services=("shop",))
    load_definitions(defs)
    (defs / "services/crm.json").write_text(
        (PROJECT_ROOT / "workflow_defs/services/crm.json").read_text()
    )
    binds.clear()
    load_definitions(defs)
    assert len(binds) == 2


def test_a_broken_files_problems_come_back_from_the_cache(tmp_path: Path, binds) -> None:
    broken = {"steps": [{"sql": "SELECT nope FROM missing_table", "outputTable": "t"}]}
    defs = write_defs(tmp_path / "defs", "shop", {"bad": broken, "good": TWO_SQL})
    first = [str(p) for p in load_definitions(defs).problems]
    assert first and all("apps/shop/workflows/bad.json#/steps/0" in p for p in first)
    binds.clear()
    again = load_definitions(defs)
    assert binds == []
    assert [str(p) for p in again.problems] == first
    assert [b.job_name for b in again.broken] == ["shop__bad"]


def test_the_cache_can_be_switched_off(tmp_path: Path, binds, monkeypatch) -> None:
    monkeypatch.setenv("WORKFLOWS_PLAN_CACHE", "off")
    defs = write_defs(tmp_path / "defs", "shop", {"a": TWO_SQL})
    load_definitions(defs)
    load_definitions(defs)
    assert len(binds) == 4


def test_a_run_builds_its_own_job_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    defs = write_defs(tmp_path / "defs", "shop", {"a": TWO_SQL, "b": TWO_SQL})
    write_defs(defs, "other", {"c": TWO_SQL})
    monkeypatch.setenv("WORKFLOW_DEFS_DIR", str(defs))
    built: list[str] = []
    real = definitions.build_job

    def counting(workflow: Any, *args: Any, **kwargs: Any) -> dg.JobDefinition:
        built.append(workflow.job_name)
        return real(workflow, *args, **kwargs)

    monkeypatch.setattr(definitions, "build_job", counting)
    job = definitions.job_by_name("shop__b")
    assert job.name == "shop__b"
    assert built == ["shop__b"]


def test_importing_the_code_location_builds_nothing(tmp_path: Path) -> None:
    """A process that imports the module (a step process, the forkserver) pays nothing
    for the workflows until it asks for a job."""
    defs = write_defs(tmp_path / "defs", "shop", {"a": TWO_SQL})
    code = (
        "import translators.definitions as d\n"
        "print(d._plans_from.cache_info().currsize, d._definitions_from.cache_info().currsize)\n"
    )
    env = {**os.environ, "WORKFLOW_DEFS_DIR": str(defs)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "0"]


def test_the_executor_follows_the_settings() -> None:
    assert executor_for(SettingsSpec()).name == "threads"
    assert executor_for(SettingsSpec(max_parallel_steps=1)).name == "in_process"
    assert executor_for(SettingsSpec.model_validate({"isolation": "process"})).name == (
        "multiprocess"
    )


def test_independent_steps_overlap_in_the_run_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow = {
        "steps": [
            {"id": "left", "sql": SLOW_SQL, "outputTable": "l"},
            {"id": "right", "sql": SLOW_SQL, "outputTable": "r"},
            {"sql": "SELECT * FROM l UNION ALL SELECT * FROM r", "outputTable": "both"},
        ]
    }
    defs = write_defs(tmp_path / "defs", "shop", {"par": workflow})
    monkeypatch.setenv("WORKFLOW_DEFS_DIR", str(defs))
    recon = dg.build_reconstructable_job(
        "translators.definitions", "job_by_name", reconstructable_args=("shop__par",)
    )
    with (
        dg.instance_for_test() as instance,
        dg.execute_job(recon, instance, run_config=run_config_for({}, None, "UTC")) as result,
    ):
        assert result.success
        events = instance.all_logs(result.run_id)
    windows: dict[str, list[float]] = {}
    pids = set()
    for entry in events:
        event = entry.dagster_event
        if event and event.event_type_value in ("STEP_START", "STEP_SUCCESS"):
            windows.setdefault(event.step_key or "", []).append(entry.timestamp)
            pids.add(event.pid)
    (left_start, left_end), (right_start, right_end) = windows["left"], windows["right"]
    assert left_start < right_end and right_start < left_end, "the two windows overlap"
    assert pids == {os.getpid()}, "the steps ran in this process, not one process each"


def test_the_location_builds_a_job_when_asked_and_matches_the_definitions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded = load_definitions(REAL_DEFS)
    built: list[str] = []
    real = definitions.build_job

    def counting(workflow: Any, *args: Any, **kwargs: Any) -> dg.JobDefinition:
        built.append(workflow.job_name)
        return real(workflow, *args, **kwargs)

    monkeypatch.setattr(definitions, "build_job", counting)
    repo = definitions.build_repository(loaded)
    assert built == [], "loading the location builds no job"
    job = repo.get_job("demo_shop__syncEnrichedOrders")
    assert built == ["demo_shop__syncEnrichedOrders"]
    full = definitions.build_definitions(loaded).get_repository_def()
    assert repo.name == full.name, "runs and schedule states keep their repository"
    assert sorted(repo.job_names) == sorted(full.job_names)
    assert set(job.resource_defs) == set(full.get_job(job.name).resource_defs)
    assert {s.name for s in repo.schedule_defs} == {s.name for s in full.schedule_defs}
    assert {s.name for s in repo.sensor_defs} == {s.name for s in full.sensor_defs}


def test_isolation_process_runs_each_step_in_its_own_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow = {"settings": {"isolation": "process"}, **TWO_SQL}
    defs = write_defs(tmp_path / "defs", "shop", {"iso": workflow})
    monkeypatch.setenv("WORKFLOW_DEFS_DIR", str(defs))
    recon = dg.build_reconstructable_job(
        "translators.definitions",
        "job_by_name",
        reconstructable_args=("shop__iso",),
        reconstructor_working_directory=str(PROJECT_ROOT),
    )
    with (
        dg.instance_for_test() as instance,
        dg.execute_job(recon, instance, run_config=run_config_for({}, None, "UTC")) as result,
    ):
        assert result.success
        pids = {
            entry.dagster_event.pid
            for entry in instance.all_logs(result.run_id)
            if entry.dagster_event and entry.dagster_event.event_type_value == "STEP_START"
        }
    assert len(pids) == 3 and os.getpid() not in pids, "one process per step"
