"""Schedules from schedules.json, and variables resolved against the logical time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from tests.support.jobs import REAL_DEFS, load, write_defs
from translators.job_builder import VARIABLES_OP
from translators.spec import WorkflowSpec
from translators.variables import VariableError, resolve_variables

TICK = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)


def evaluate(defs: dg.Definitions, name: str, instance: dg.DagsterInstance, tick: dt.datetime):
    schedule = defs.resolve_schedule_def(name)
    # The repository, as the daemon gives it: a partitioned job's schedule looks it up there.
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    )
    return schedule.evaluate_tick(context)


def test_a_tick_hands_params_and_its_time_to_the_run() -> None:
    _, defs = load(REAL_DEFS)
    with dg.instance_for_test() as instance:
        result = evaluate(defs, "demo_shop__weekly_top_customers", instance, TICK)
    [request] = result.run_requests
    config = request.run_config["ops"][VARIABLES_OP]["config"]
    assert config["params"] == {
        "appId": "demo-shop",
        "sendNotifications": True,
        "notifyChannel": "ops",
    }
    assert config["logical_time"] == "2026-11-25T03:00:00Z"
    assert config["timezone"] == "Europe/Berlin"
    assert request.tags["workflow/schedule"] == "weekly-top-customers"


def test_skip_if_running_skips_while_a_run_is_active() -> None:
    _, defs = load(REAL_DEFS)
    job = defs.resolve_job_def("demo_shop__syncEnrichedOrders")
    with dg.instance_for_test() as instance:
        assert evaluate(defs, "demo_shop__daily_order_sync", instance, TICK).run_requests
        instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)
        result = evaluate(defs, "demo_shop__daily_order_sync", instance, TICK)
        assert not result.run_requests
        assert "still active" in result.skip_message
        # The weekly schedule has skipIfRunning false: a run of another job never blocks it.
        assert evaluate(defs, "demo_shop__weekly_top_customers", instance, TICK).run_requests


def test_schedules_start_running_with_their_timezone() -> None:
    _, defs = load(REAL_DEFS)
    schedule = defs.resolve_schedule_def("demo_shop__weekly_top_customers")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.execution_timezone == "Europe/Berlin"


def test_backfill_start_makes_the_job_partitioned_by_the_cron(tmp_path: Path) -> None:
    defs_dir = write_defs(
        tmp_path / "defs",
        "app",
        {
            "daily": {
                "variables": {"day": {"type": "dateOffset", "days": 0}},
                "settings": {"maxParallelSteps": 1},
                "steps": [{"sql": "SELECT CAST('{{var.day}}' AS DATE) AS day", "outputTable": "d"}],
            }
        },
    )
    (defs_dir / "apps" / "app" / "schedules.json").write_text(
        '{"schedules": [{"name": "nightly", "cron": "0 2 * * *", "timezone": "Asia/Tokyo",'
        ' "workflow": "./workflows/daily.json", "backfillStart": "2026-11-01"}]}'
    )
    _, defs = load(defs_dir)
    job = defs.resolve_job_def("app__daily")
    keys = job.partitions_def.get_partition_keys(current_time=TICK)
    assert keys[0] == "2026-11-01T02:00"
    # A backfilled partition runs with the partition's start as its logical time, and
    # dateOffset dates are taken in the schedule's timezone.
    result = job.execute_in_process(partition_key="2026-11-10T02:00")
    assert result.success
    variables = result.output_for_node(VARIABLES_OP)
    assert variables["values"]["day"] == "2026-11-10"
    assert variables["logical_time"] == "2026-11-09T17:00:00Z"


def workflow(variables: dict) -> WorkflowSpec:
    return WorkflowSpec.model_validate(
        {"variables": variables, "steps": [{"wait": {"duration": "1s"}}]}
    )


def test_date_offsets_are_taken_in_the_given_timezone() -> None:
    spec = workflow(
        {
            "today": {"type": "dateOffset"},
            "yesterday": {"type": "dateOffset", "days": -1},
            "at": {"type": "now"},
        }
    )
    late = dt.datetime(2026, 11, 25, 23, 30, tzinfo=dt.UTC)
    assert resolve_variables(spec.variables, {}, late, "UTC") == {
        "today": "2026-11-25",
        "yesterday": "2026-11-24",
        "at": "2026-11-25T23:30:00Z",
    }
    assert resolve_variables(spec.variables, {}, late, "Asia/Tokyo")["today"] == "2026-11-26"


def test_params_required_optional_and_unknown() -> None:
    spec = workflow(
        {
            "org": {"type": "param"},
            "limit": {"type": "param", "default": 10},
            "tag": {"type": "param", "optional": True},
        }
    )
    values = resolve_variables(spec.variables, {"org": "o1"}, TICK)
    assert values == {"org": "o1", "limit": 10, "tag": None}
    with pytest.raises(VariableError, match="'org' is required"):
        resolve_variables(spec.variables, {}, TICK)
    with pytest.raises(VariableError, match="unknown params"):
        resolve_variables(spec.variables, {"org": "o", "orgg": 1}, TICK)
