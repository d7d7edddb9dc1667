"""An app's `schedules.json` (SPEC 6): names, cron, timezone, workflow path and params."""

from __future__ import annotations

import posixpath
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from translators.errors import Problem, did_you_mean, join_pointer, one_of
from translators.naming import schedule_name
from translators.plans import SchedulePlan, WorkflowPlan
from translators.spec import ParamVariableSpec, ScheduleEntrySpec, SchedulesFileSpec
from translators.validation_errors import validation_problems

Reporter = Callable[[tuple[str, ...], str, str | None], None]

CRON_EXPECTED = "5 fields: minute hour day-of-month month day-of-week, e.g. '0 3 * * *'"
PATH_EXPECTED = "a path inside the app folder, e.g. ./workflows/syncOrders.json"


@dataclass
class AppWorkflows:
    """The workflow files of one app, by file stem."""

    app_id: str
    folder: str  # apps/<app_id>, for messages
    valid: Mapping[str, WorkflowPlan]
    broken: set[str] = field(default_factory=set)


def cron_problem(cron: str) -> str | None:
    """None for a cron Dagster accepts: 5 fields, valid, and able to fire."""
    fields = cron.split()
    if len(fields) != 5:
        return f"cron '{cron}' has {len(fields)} field(s)"
    # Imported here: only a load that checks schedules (a cache miss) needs croniter, and
    # importing it costs ~0.15-0.3 s of every process start (issue 8).
    from croniter import croniter

    if not croniter.is_valid(cron):
        return f"invalid cron '{cron}'"
    expanded = croniter.expand(cron)[0]
    if expanded[3] == [2] and len(expanded[2]) == 1 and expanded[2][0] in (30, 31):
        return f"cron '{cron}' never fires (February has no day {expanded[2][0]})"
    return None


def timezone_problem(name: str) -> tuple[str, str] | None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        hint = did_you_mean(name, zoneinfo.available_timezones())
        return f"unknown timezone '{name}'", f"an IANA timezone such as UTC or Europe/Berlin{hint}"
    return None


def workflow_stem(path: str) -> tuple[str | None, str]:
    """(stem, "") for `./workflows/<stem>.json` or `src/server/workflows/<stem>.ts`,
    else (None, what is wrong)."""
    text = path.replace("\\", "/")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        return None, f"'{path}' is an absolute path"
    norm = posixpath.normpath(text)
    if norm == ".." or norm.startswith("../"):
        return None, f"'{path}' points outside the app folder"
    ported = re.fullmatch(r"(?:.*/)?src/server/workflows/([^/]+)\.ts", norm)
    if ported:
        return ported.group(1), ""
    match = re.fullmatch(r"workflows/([^/]+)\.json", norm)
    if match:
        return match.group(1), ""
    return None, f"'{path}' is not a workflow file (workflows/<name>.json)"


def check_schedules(
    raw: Any, file: str, app: AppWorkflows
) -> tuple[list[SchedulePlan], list[Problem]]:
    """The valid schedules of one `schedules.json`, and every problem in it."""
    problems: list[Problem] = []
    try:
        entries = list(enumerate(SchedulesFileSpec.model_validate(raw).schedules))
    except ValidationError as exc:
        problems += validation_problems(exc, raw, SchedulesFileSpec, file)
        entries = _salvage(raw)
    plans: list[SchedulePlan] = []
    names: dict[str, str] = {}
    for index, entry in entries:
        pointer = f"/schedules/{index}"
        found = _check_entry(entry, pointer, file, app, names)
        names.setdefault(schedule_name(app.app_id, entry.name), pointer)
        problems += found
        if not found:
            job = app.valid[_stem(entry)].job_name
            plans.append(
                SchedulePlan(
                    app_id=app.app_id,
                    name=entry.name,
                    schedule_name=schedule_name(app.app_id, entry.name),
                    spec=entry,
                    workflow=job,
                    file=file,
                    pointer=pointer,
                )
            )
    return plans, problems


def _stem(entry: ScheduleEntrySpec) -> str:
    return workflow_stem(entry.workflow)[0] or ""


def _salvage(raw: Any) -> list[tuple[int, ScheduleEntrySpec]]:
    """The entries that are valid on their own (their file has problems elsewhere)."""
    items = raw.get("schedules") if isinstance(raw, dict) else None
    entries = []
    for index, item in enumerate(items if isinstance(items, list) else []):
        try:
            entries.append((index, ScheduleEntrySpec.model_validate(item)))
        except ValidationError:
            continue
    return entries


def _check_entry(
    entry: ScheduleEntrySpec, pointer: str, file: str, app: AppWorkflows, names: dict[str, str]
) -> list[Problem]:
    problems: list[Problem] = []

    def report(tokens: tuple[str, ...], message: str, expected: str | None = None) -> None:
        problems.append(Problem(file, join_pointer(pointer, *tokens), message, expected))

    dagster_name = schedule_name(app.app_id, entry.name)
    if dagster_name in names:
        report(
            ("name",),
            f"schedule name '{entry.name}' is already used at {names[dagster_name]}"
            + ("" if dagster_name.endswith(f"__{entry.name}") else f" (as {dagster_name})"),
            "a unique name per app",
        )
    cron = cron_problem(entry.cron)
    if cron:
        report(("cron",), cron, CRON_EXPECTED)
    zone = timezone_problem(entry.timezone)
    if zone:
        report(("timezone",), *zone)
    workflow = _workflow(entry, app, report)
    if workflow is not None:
        _check_params(entry, workflow, report)
    return problems


def _workflow(entry: ScheduleEntrySpec, app: AppWorkflows, report: Reporter) -> WorkflowPlan | None:
    stem, problem = workflow_stem(entry.workflow)
    if stem is None:
        report(("workflow",), problem, PATH_EXPECTED)
        return None
    if stem in app.broken:
        report(
            ("workflow",),
            f"the workflow {app.folder}/workflows/{stem}.json has problems (listed for that file)",
            "a valid workflow",
        )
        return None
    if stem not in app.valid:
        known = sorted([*app.valid, *app.broken])
        report(
            ("workflow",),
            f"no workflow file {app.folder}/workflows/{stem}.json",
            f"a workflow of app {app.app_id}, {one_of(known, stem)}",
        )
        return None
    return app.valid[stem]


def _check_params(entry: ScheduleEntrySpec, workflow: WorkflowPlan, report: Reporter) -> None:
    variables = workflow.spec.variables
    params = [n for n, v in variables.items() if isinstance(v, ParamVariableSpec)]
    for key in entry.params:
        spec = variables.get(key)
        if spec is None:
            choices = one_of(params, key) if params else "none: it declares no param variables"
            report(
                ("params", key), f"unknown param '{key}'", f"a param of {workflow.file}, {choices}"
            )
        elif not isinstance(spec, ParamVariableSpec):
            report(
                ("params", key),
                f"'{key}' is a {spec.type} variable, computed for each run",
                f"only param variables in params, {one_of(params, key)}",
            )
    for name in params:
        spec = variables[name]
        if isinstance(spec, ParamVariableSpec) and spec.required and name not in entry.params:
            report(
                ("params",),
                f"missing required param '{name}'",
                f"params.{name} ({workflow.file} gives it no default)",
            )
