"""Job and schedule names that collide after sanitising (`check-total` and `check_total`
are one Dagster name): the later file is broken under a name made unique, so its failing
job can still exist, and schedules follow their file to its final job (SPEC 7)."""

from __future__ import annotations

from dataclasses import replace

from translators.errors import Problem
from translators.plans import BrokenWorkflow, LoadResult, SchedulePlan, WorkflowPlan
from translators.schedule_checks import workflow_stem


def resolve_name_clashes(result: LoadResult) -> None:
    """Every clash of `result` reported as a problem of the later file or schedule."""
    _check_unique_job_names(result)
    _check_unique_schedule_names(result)


def _check_unique_job_names(result: LoadResult) -> None:
    """Workflow files whose job names collide after sanitising: the later one is broken,
    under a name made unique so that its failing job can still exist."""
    owners: dict[str, str] = {}
    broken: list[BrokenWorkflow] = []
    for item in result.broken:
        if item.job_name in owners:
            problem = _job_clash(result, item.file, item.job_name, owners)
            item = replace(
                item, job_name=_unique(item.job_name, owners), problems=[*item.problems, problem]
            )
        owners[item.job_name] = item.file
        broken.append(item)
    kept: list[WorkflowPlan] = []
    for workflow in result.workflows:
        if workflow.job_name not in owners:
            owners[workflow.job_name] = workflow.file
            kept.append(workflow)
            continue
        problem = _job_clash(result, workflow.file, workflow.job_name, owners)
        unique = _unique(workflow.job_name, owners)
        owners[unique] = workflow.file
        broken.append(
            BrokenWorkflow(workflow.app_id, workflow.stem, workflow.file, unique, [problem])
        )
    result.workflows, result.broken = kept, broken
    _retarget_schedules(result, {file: name for name, file in owners.items()})


def _retarget_schedules(result: LoadResult, job_of_file: dict[str, str]) -> None:
    """Schedules follow their workflow file to its final job name (a renamed failing job
    included), never to another file's job of the name it had."""
    kept: list[SchedulePlan] = []
    for schedule in result.schedules:
        stem = workflow_stem(schedule.spec.workflow)[0]
        job = job_of_file.get(f"apps/{schedule.app_id}/workflows/{stem}.json")
        if job is not None:
            kept.append(replace(schedule, workflow=job))
    result.schedules = kept


def _job_clash(result: LoadResult, file: str, name: str, owners: dict[str, str]) -> Problem:
    problem = Problem(
        file,
        "",
        f"the job name '{name}' is already used by {owners[name]}",
        "app ids and file names that stay distinct after replacing characters other "
        "than letters, digits and _ with _",
    )
    result.problems.append(problem)
    return problem


def _unique(name: str, taken: dict[str, str]) -> str:
    count = 2
    while f"{name}_{count}" in taken:
        count += 1
    return f"{name}_{count}"


def _check_unique_schedule_names(result: LoadResult) -> None:
    """Schedule names of different apps that collide after sanitising."""
    owners: dict[str, SchedulePlan] = {}
    kept: list[SchedulePlan] = []
    for schedule in result.schedules:
        other = owners.setdefault(schedule.schedule_name, schedule)
        if other is schedule:
            kept.append(schedule)
            continue
        result.problems.append(
            Problem(
                schedule.file,
                schedule.pointer + "/name",
                f"the schedule name '{schedule.schedule_name}' is already used by "
                f"{other.file}#{other.pointer}",
                "schedule names unique after sanitising",
            )
        )
    result.schedules = kept
