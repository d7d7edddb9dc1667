"""A broken service file: its workflows' schedules stay, and their failing jobs say why."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg

from tests.definition_files import SCHEDULES_FILE, SHOP_SERVICE, schedule, write_defs
from translators.definitions import build_definitions
from translators.errors import DefinitionError
from translators.loader import load_definitions
from translators.schedules import run_config_for

TICK = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)


def test_the_schedule_runs_the_failing_job_whose_description_lists_the_service_problems(
    tmp_path: Path,
) -> None:
    broken_service = {**SHOP_SERVICE, "baseUrl": "ftp://x", "timeoutSeconds": -1}
    files = {
        "services/shop.json": broken_service,
        SCHEDULES_FILE: {"schedules": [schedule("nightly", params={"orgId": "o"})]},
    }
    loaded = load_definitions(write_defs(tmp_path, files))
    defs = build_definitions(loaded)

    schedule_def = defs.resolve_schedule_def("shop__nightly")
    assert schedule_def.job_name == "shop__base"
    job = defs.resolve_job_def("shop__base")
    assert job.tags["workflow/broken"] == "true"
    lines = (job.description or "").splitlines()
    assert "- apps/shop/workflows/base.json#/steps/0/service: service 'shop' " in "\n".join(lines)
    assert any(
        line.startswith("- services/shop.json#/baseUrl: invalid value 'ftp://x'") for line in lines
    )
    assert any(line.startswith("- services/shop.json#/timeoutSeconds: ") for line in lines)
    # Markdown: a blank line before each list, so the bullets render as a list.
    first_bullet = next(i for i, line in enumerate(lines) if line.startswith("- "))
    assert lines[first_bullet - 1] == ""

    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=TICK)
        [request] = schedule_def.evaluate_tick(context).run_requests
        assert request.run_config == run_config_for({"orgId": "o"}, TICK, "UTC")
        result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error
    cause = error.cause if error is not None else None
    assert cause is not None and cause.cls_name == DefinitionError.__name__
    assert "services/shop.json#/baseUrl" in cause.message
    # The schedules file itself names why the job fails.
    texts = [str(p) for p in loaded.problems if p.file == SCHEDULES_FILE]
    assert texts == [
        f"{SCHEDULES_FILE}#/schedules/0/workflow: the workflow apps/shop/workflows/base.json "
        "has problems (listed for that file), so its job shop__base fails at once; "
        "expected a valid workflow"
    ]


def test_a_service_file_that_is_not_json_shows_its_error_in_the_job(tmp_path: Path) -> None:
    """The JSON syntax error itself (not only a schema problem) reaches the description."""
    files = {SCHEDULES_FILE: {"schedules": [schedule("nightly", params={"orgId": "o"})]}}
    root = write_defs(tmp_path, files)
    (root / "services" / "shop.json").write_text('{"name": "shop", "baseUrl": ')
    defs = build_definitions(load_definitions(root))

    assert defs.resolve_schedule_def("shop__nightly").job_name == "shop__base"
    job = defs.resolve_job_def("shop__base")
    assert job.tags["workflow/broken"] == "true"
    lines = (job.description or "").splitlines()
    assert "- services/shop.json#: invalid JSON: Expecting value at line 1, column 29" in "\n".join(
        lines
    ), lines
