"""`workflow_defs/` -> validated plans, collecting every problem at once (SPEC 1, 7).

`load_definitions` never raises for bad content. A workflow file with any problem is
left out of `workflows` and listed in `broken` (the others still load); a schedule or
service with a problem is left out. `LoadResult.problems` holds every problem.

Layout: `services/<name>.json`, `apps/<app_id>/workflows/<stem>.json`,
`apps/<app_id>/schedules.json` (optional). Other files are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from translators.app_access import APP_FILE, AppAccess, read_app_access
from translators.check_context import CheckContext
from translators.checks import check_variables, check_workflow, variables_of
from translators.errors import Problem, pointer_order
from translators.json_files import MAX_NESTING_DEPTH, read_json, unchecked
from translators.name_clashes import resolve_name_clashes
from translators.naming import APP_ID_EXPECTED, APP_ID_PATTERN, dagster_name, job_name
from translators.plan_cache import PlanCache
from translators.plans import BrokenWorkflow, LoadResult, SchedulePlan, StepPlan, WorkflowPlan
from translators.schedule_checks import AppWorkflows, check_schedules, workflow_stem
from translators.spec import (
    BaseStepSpec,
    ServiceCallStepSpec,
    ServiceSpec,
    VariableSpec,
    WorkflowSpec,
)
from translators.spec.base import MAX_STEPS
from translators.spec.steps import step_adapter
from translators.sql_analysis import SqlBinder
from translators.validation_errors import validation_problems

__all__ = [
    "MAX_NESTING_DEPTH",
    "BrokenWorkflow",
    "LoadResult",
    "SchedulePlan",
    "StepPlan",
    "WorkflowPlan",
    "load_definitions",
    "load_one_workflow",
    "read_json",
    "workflow_of_job",
]

_VARIABLES = TypeAdapter(dict[str, VariableSpec])


def load_definitions(defs_dir: Path) -> LoadResult:
    """Read and check everything under `defs_dir`; see the module docstring."""
    root = Path(defs_dir)
    result = LoadResult(defs_dir=root)
    if not root.is_dir():
        result.problems.append(
            Problem(
                str(root),
                "",
                "the definitions folder does not exist",
                "a folder with services/ and apps/<app_id>/workflows/",
            )
        )
        return result
    broken_services = _load_services(root, result)
    with SqlBinder() as binder:
        loading = _Loading(root, result, broken_services, binder, PlanCache.for_folder(root))
        for app_dir in sorted(p for p in (root / "apps").glob("*") if p.is_dir()):
            _load_app(loading, app_dir)
    resolve_name_clashes(result)
    return result


def load_one_workflow(defs_dir: Path, app_id: str, stem: str) -> LoadResult | None:
    """Only `apps/<app_id>/workflows/<stem>.json`, with what checking and running it needs:
    the services, its app's app.json and schedules.json (partitions, backfill).

    A run or a step process runs one job and must not pay for the other workflows (issue
    8): this reads, or takes from the plan cache, one file. Its plan and its schedules are
    the ones `load_definitions` gives (schedule entries are checked one by one), but
    `problems` also holds the complaints of schedules.json about the files not read, so
    only this file's problems are meaningful. None when one file cannot answer (no such
    file, an invalid app id, or another file with the same job name): load everything.
    """
    root = Path(defs_dir)
    path = root / "apps" / app_id / "workflows" / f"{stem}.json"
    if not APP_ID_PATTERN.match(app_id) or not path.is_file():
        return None
    name = job_name(app_id, stem)
    if [p for p in _workflow_files(root) if job_name(p.parent.parent.name, p.stem) == name] != [
        path
    ]:
        return None
    result = LoadResult(defs_dir=root)
    broken_services = _load_services(root, result)
    with SqlBinder() as binder:
        loading = _Loading(root, result, broken_services, binder, PlanCache.for_folder(root))
        _load_app(loading, path.parent.parent, only=path)
    return result


def workflow_of_job(defs_dir: Path, name: str) -> tuple[str, str] | None:
    """(app id, stem) of the one workflow file whose job is `name`, from file names only;
    None for none or several (clashing names get renamed by the full load)."""
    files = [
        p for p in _workflow_files(Path(defs_dir)) if job_name(p.parent.parent.name, p.stem) == name
    ]
    return (files[0].parent.parent.name, files[0].stem) if len(files) == 1 else None


def _workflow_files(root: Path) -> list[Path]:
    return sorted(root.glob("apps/*/workflows/*.json"))


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


# ---------------------------------------------------------------------------- services


def _load_services(root: Path, result: LoadResult) -> dict[str, str]:
    """Fill `result.services`; return service name -> file, for files with problems."""
    broken: dict[str, str] = {}
    for path in sorted((root / "services").glob("*.json")):
        try:
            _load_service(root, path, result, broken)
        except Exception as exc:  # a bug of a check stays a problem of this file
            result.problems.append(unchecked(_rel(root, path), exc))
            broken[path.stem] = _rel(root, path)
    return broken


def _load_service(root: Path, path: Path, result: LoadResult, broken: dict[str, str]) -> None:
    file = _rel(root, path)
    raw, problem = read_json(path, file)
    problems = [problem] if problem else []
    spec = None
    if problem is None:
        try:
            spec = ServiceSpec.model_validate(raw)
        except ValidationError as exc:
            problems += validation_problems(exc, raw, ServiceSpec, file)
    name = raw.get("name") if isinstance(raw, dict) else None
    if isinstance(name, str) and name != path.stem:
        problems.append(
            Problem(
                file,
                "/name",
                f"service name '{name}' differs from the file name",
                f"'{path.stem}', the file's stem",
            )
        )
    if spec is not None:
        # Each service is the resource `service_<name>` with `-` made `_` (SPEC 1).
        clash = next(
            (o for o in result.services if dagster_name(o) == dagster_name(spec.name)), None
        )
        if clash:
            problems.append(
                Problem(
                    file,
                    "/name",
                    f"service '{spec.name}' and '{clash}' are the same Dagster resource name",
                    "names that differ in more than - and _",
                )
            )
    if spec is not None and not problems:
        result.services[spec.name] = spec
    else:
        broken[path.stem] = file
        if isinstance(name, str):
            broken[name] = file
    result.problems += problems


# ---------------------------------------------------------------------------- apps


@dataclass
class _Loading:
    """What every file of one load shares."""

    root: Path
    result: LoadResult
    broken_services: dict[str, str]
    binder: SqlBinder
    cache: PlanCache

    def rel(self, path: Path) -> str:
        return _rel(self.root, path)


def _load_app(loading: _Loading, app_dir: Path, only: Path | None = None) -> None:
    app_id, folder = app_dir.name, loading.rel(app_dir)
    app_problem = None
    if not APP_ID_PATTERN.match(app_id):
        app_problem = Problem(
            folder, "", f"invalid app id '{app_id}' (the folder name)", APP_ID_EXPECTED
        )
        loading.result.problems.append(app_problem)
    access = read_app_access(app_dir, folder, read_json)  # app.json (SPEC 8)
    loading.result.problems += access.problems
    app = AppWorkflows(app_id=app_id, folder=folder, valid={})
    valid: dict[str, WorkflowPlan] = {}
    app_file = app_dir / APP_FILE
    app_context = app_file.read_bytes() if app_file.is_file() else b""
    paths = [only] if only else sorted((app_dir / "workflows").glob("*.json"))
    for path in paths:
        loaded = _cached_workflow(loading, path, access, app_context)
        if isinstance(loaded, WorkflowPlan) and app_problem is None:
            valid[path.stem] = loaded
            continue
        problems = loaded.problems if isinstance(loaded, BrokenWorkflow) else []
        if app_problem is not None:
            problems = [app_problem, *problems]
        loading.result.broken.append(
            replace(loaded, problems=problems)
            if isinstance(loaded, BrokenWorkflow)
            else BrokenWorkflow(app_id, path.stem, loaded.file, loaded.job_name, problems)
        )
        app.broken.add(path.stem)
    loading.result.workflows += valid.values()
    app.valid = valid
    if app_problem is None:
        _load_schedules(loading, app_dir / "schedules.json", app)


def _load_schedules(loading: _Loading, path: Path, app: AppWorkflows) -> None:
    if not path.is_file():
        return
    file = loading.rel(path)
    try:
        raw, problem = read_json(path, file)
        if problem is not None:
            loading.result.problems.append(problem)
            return
        stand_ins = _failing_jobs(loading, app)
        with_stand_ins = AppWorkflows(
            app.app_id, app.folder, {**stand_ins, **app.valid}, app.broken - stand_ins.keys()
        )
        plans, problems = check_schedules(raw, file, with_stand_ins)
        problems += _targets_failing(raw, file, app, stand_ins)
    except Exception as exc:  # a bug of a check stays a problem of this file
        loading.result.problems.append(unchecked(file, exc))
        return
    loading.result.schedules += plans
    loading.result.problems += sorted(problems, key=lambda p: pointer_order(p.pointer))


def _failing_jobs(loading: _Loading, app: AppWorkflows) -> dict[str, WorkflowPlan]:
    """The broken workflows of `app` that parsed, standing in with their failing jobs.

    Their schedules are checked and kept: the UI then shows each tick failing with the
    problems (and a broken service file's), instead of the schedule quietly missing.
    """
    return {
        b.stem: WorkflowPlan(b.app_id, b.stem, b.file, b.job_name, b.spec, [])
        for b in loading.result.broken
        if b.app_id == app.app_id and b.spec is not None
    }


def _targets_failing(
    raw: Any, file: str, app: AppWorkflows, stand_ins: dict[str, WorkflowPlan]
) -> list[Problem]:
    entries = raw.get("schedules") if isinstance(raw, dict) else None
    problems = []
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        target = entry.get("workflow") if isinstance(entry, dict) else None
        stem = workflow_stem(target)[0] if isinstance(target, str) else None
        if stem in stand_ins:
            problems.append(
                Problem(
                    file,
                    f"/schedules/{index}/workflow",
                    f"the workflow {app.folder}/workflows/{stem}.json has problems (listed "
                    f"for that file), so its job {stand_ins[stem].job_name} fails at once",
                    "a valid workflow",
                )
            )
    return problems


def _cached_workflow(
    loading: _Loading, path: Path, access: AppAccess, app_context: bytes
) -> WorkflowPlan | BrokenWorkflow:
    """`_checked_workflow`, or its earlier result for the same bytes (plan_cache.py)."""
    try:
        content = path.read_bytes()
    except OSError:
        return _checked_workflow(loading, path, access)  # read_json reports it
    key = loading.cache.key(loading.rel(path), content, app_context)
    cached = loading.cache.get(key)
    if isinstance(cached, (WorkflowPlan, BrokenWorkflow)):
        if isinstance(cached, BrokenWorkflow):
            loading.result.problems += cached.problems
        return cached
    loaded = _checked_workflow(loading, path, access)
    loading.cache.put(key, loaded)
    return loaded


def _checked_workflow(
    loading: _Loading, path: Path, access: AppAccess
) -> WorkflowPlan | BrokenWorkflow:
    try:
        return _load_workflow(loading, path, access)
    except Exception as exc:  # a bug of a check stays a problem of this file
        file, app_id = loading.rel(path), access.app_id
        problem = unchecked(file, exc)
        loading.result.problems.append(problem)
        return BrokenWorkflow(app_id, path.stem, file, job_name(app_id, path.stem), [problem])


def _load_workflow(
    loading: _Loading, path: Path, access: AppAccess
) -> WorkflowPlan | BrokenWorkflow:
    """One workflow file; its problems are also added to `result.problems`."""
    stem, file, app_id = path.stem, loading.rel(path), access.app_id
    raw, problem = read_json(path, file)
    if problem is not None:
        loading.result.problems.append(problem)
        return BrokenWorkflow(app_id, stem, file, job_name(app_id, stem), [problem])
    problems: list[Problem] = []
    spec: WorkflowSpec | None = None
    try:
        spec = WorkflowSpec.model_validate(raw)
    except ValidationError as exc:
        problems += validation_problems(exc, raw, WorkflowSpec, file)
    variables = variables_of(raw, spec.variables if spec else _parse_variables(raw))
    ctx = CheckContext(
        file,
        variables,
        loading.result.services,
        loading.broken_services,
        loading.binder,
        app_access=access,
    )
    check_variables(ctx, list(variables))
    raw_steps = _raw_steps(raw)
    if len(raw_steps) > MAX_STEPS:  # checking each step of a huge file would stall the load
        loading.result.problems += problems
        return BrokenWorkflow(app_id, stem, file, job_name(app_id, stem), problems)
    step_specs = list(spec.steps) if spec else [_parse_step(step) for step in raw_steps]
    steps = check_workflow(ctx, raw_steps, step_specs)
    problems += [p for p in ctx.problems if p not in problems]
    problems.sort(key=lambda p: pointer_order(p.pointer))
    loading.result.problems += problems
    if problems or spec is None:
        related = _service_problems(loading, step_specs)
        return BrokenWorkflow(app_id, stem, file, job_name(app_id, stem), problems, spec, related)
    return WorkflowPlan(app_id, stem, file, job_name(app_id, stem), spec, steps, access.databases)


def _service_problems(loading: _Loading, steps: Sequence[BaseStepSpec | None]) -> list[Problem]:
    """The problems of the broken service files these steps call."""
    names = [
        name
        for step in steps
        if isinstance(step, ServiceCallStepSpec)
        for name in (step.service, step.pre_execute.service if step.pre_execute else None)
    ]
    files = {loading.broken_services[n] for n in names if n in loading.broken_services}
    return [p for p in loading.result.problems if p.file in files]


def _raw_steps(raw: Any) -> list[Any]:
    steps = raw.get("steps") if isinstance(raw, dict) else None
    return steps if isinstance(steps, list) else []


def _parse_step(raw: Any) -> BaseStepSpec | None:
    """A step on its own, so that one bad step does not stop the checks of the others."""
    try:
        step = step_adapter().validate_python(raw)
    except ValidationError:
        return None
    return step if isinstance(step, BaseStepSpec) else None


def _parse_variables(raw: Any) -> dict[str, VariableSpec] | None:
    variables = raw.get("variables", {}) if isinstance(raw, dict) else {}
    try:
        return _VARIABLES.validate_python(variables)
    except ValidationError:
        return None
