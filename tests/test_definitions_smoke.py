"""Every file under workflow_defs/ loads into its job and schedules."""

from __future__ import annotations

import json

import dagster as dg

from tests.support.jobs import REAL_DEFS, load
from translators.naming import job_name, schedule_name


def test_every_workflow_file_becomes_a_job_and_every_schedule_a_schedule() -> None:
    loaded, defs = load(REAL_DEFS)
    dg.Definitions.validate_loadable(defs)
    workflow_files = sorted(REAL_DEFS.glob("apps/*/workflows/*.json"))
    assert workflow_files, "the demo app ships workflows"
    job_names = {job.name for job in defs.resolve_all_job_defs()}
    for path in workflow_files:
        app_id = path.parent.parent.name
        assert job_name(app_id, path.stem) in job_names, path
    for path in REAL_DEFS.glob("apps/*/schedules.json"):
        app_id = path.parent.name
        for entry in json.loads(path.read_text())["schedules"]:
            schedule = defs.resolve_schedule_def(schedule_name(app_id, entry["name"]))
            assert schedule.cron_schedule == entry["cron"]
            assert schedule.execution_timezone == entry.get("timezone", "UTC")
    assert sorted(loaded.services) == sorted(p.stem for p in REAL_DEFS.glob("services/*.json"))
