"""The Dagster code location: `workflow_defs/` -> one `Definitions` (SPEC 1).

`workspace.yaml` points here. Loading reads and validates every file and touches no
network and no app database.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.definitions.repository_definition import (
    SINGLETON_REPOSITORY_NAME,
    CachingRepositoryData,
)
from dagster._core.execution.build_resources import wrap_resources_for_execution

from resources.app_database import AppDatabaseResource
from resources.service import ServiceResource
from resources.step_outputs import step_output_io_manager
from resources.table_store import TableStoreResource
from translators.asset_checks import asset_checks
from translators.assets import asset_specs
from translators.errors import DefinitionError
from translators.housekeeping import housekeeping_sensor
from translators.job_builder import (
    APP_DB_KEY,
    TABLE_STORE_KEY,
    build_broken_job,
    build_job,
    service_resource_key,
)
from translators.json_files import unchecked
from translators.loader import (
    LoadResult,
    SchedulePlan,
    load_definitions,
    load_one_workflow,
    workflow_of_job,
)
from translators.location import defs_dir
from translators.plans import BrokenWorkflow, WorkflowPlan
from translators.resume_sensor import build_resume_sensor
from translators.schedules import build_schedule, partitions_for, run_config_for
from translators.spec import ServiceSpec

log = logging.getLogger("workflows")


def service_resource(spec: ServiceSpec) -> ServiceResource:
    """A catalog entry -> its resource. Only env var NAMES go into config, never secrets."""
    auth = spec.auth
    rate = spec.rate_limit
    return ServiceResource(
        service_name=spec.name,
        base_url=spec.base_url,
        timeout_seconds=spec.timeout_seconds,
        max_response_bytes=spec.max_response_bytes,
        auth_type=auth.type,
        token_env=getattr(auth, "token_env", None),
        header_name=getattr(auth, "name", None),
        value_env=getattr(auth, "value_env", None),
        username_env=getattr(auth, "username_env", None),
        password_env=getattr(auth, "password_env", None),
        user_tokens_env=spec.user_tokens_env,
        token_url=getattr(auth, "token_url", None),
        client_id_env=getattr(auth, "client_id_env", None),
        client_secret_env=getattr(auth, "client_secret_env", None),
        scopes=list(getattr(auth, "scopes", [])),
        requests_per_second=rate.requests_per_second if rate else None,
        requests_per_minute=rate.requests_per_minute if rate else None,
    )


def build_definitions(
    loaded: LoadResult,
    only: Collection[str] | None = None,
    resources: Mapping[str, Any] | None = None,
) -> dg.Definitions:
    """A pure function from the loaded models to `Definitions`; with `only`, just the
    jobs of those names (and their schedules): a run or a step builds one job.
    `resources` replace the location's own of the same keys (the Dagster component's
    table store root and database URL variables)."""
    jobs = _build_jobs(loaded, only)
    schedules = [
        build_schedule(s, jobs[s.workflow]) for s in loaded.schedules if s.workflow in jobs
    ]
    return dg.Definitions(
        # The app tables as assets (issue 9); a run's single job does not need them.
        assets=asset_specs(loaded) if only is None else None,
        asset_checks=asset_checks(loaded) if only is None else None,
        jobs=list(jobs.values()),
        schedules=schedules,
        sensors=build_sensors(),
        resources={**_resources(loaded), **(resources or {})},
    )


def _resources(loaded: LoadResult) -> dict[str, Any]:
    resources: dict[str, Any] = {
        TABLE_STORE_KEY: TableStoreResource(),
        APP_DB_KEY: AppDatabaseResource(),
        # Step outputs are small table handles, kept where "re-execute from failure" and
        # steps on other machines find them: the instance's folder, or the table store's bucket.
        "io_manager": step_output_io_manager(),
    }
    for name, spec in loaded.services.items():
        resources[service_resource_key(name)] = service_resource(spec)
    return resources


def build_sensors() -> list[dg.SensorDefinition]:
    """The location's sensors, the same whether its jobs are built at once or lazily."""
    sensors: list[dg.SensorDefinition] = []
    sensors.append(housekeeping_sensor)  # table store retention
    sensors.append(build_resume_sensor())  # continues runs paused at a long wait (SPEC 5.6)
    return sensors


def build_repository(loaded: LoadResult) -> dg.RepositoryDefinition:
    """The code location with every job built only when asked for (issue 8).

    Building 500 jobs costs seconds; loading the location, a `workflows run` or a step
    process needs names, or one job. Same content as `build_definitions`: each job gets
    the location's resources bound, as `Definitions` binds them; the repository keeps
    Definitions' name so runs and schedule states recorded before still match.
    """
    bound = wrap_resources_for_execution(_resources(loaded))
    built: dict[str, dg.JobDefinition] = {}

    def job(name: str) -> dg.JobDefinition:
        if name not in built:
            raw = _build_jobs(loaded, {name})[name]
            built[name] = raw.with_top_level_resources({**bound, **raw.resource_defs})
        return built[name]

    names = [w.job_name for w in loaded.workflows] + [b.job_name for b in loaded.broken]
    backfills = _backfills(loaded)
    content = {
        "jobs": {name: _later(job, name) for name in names},
        "schedules": {
            s.schedule_name: _later(_schedule, s, backfills.get(s.workflow))
            for s in loaded.schedules
            if s.workflow in names
        },
        "sensors": {sensor.name: _later(_same, sensor) for sensor in build_sensors()},
    }
    return dg.RepositoryDefinition(
        name=SINGLETON_REPOSITORY_NAME,
        repository_data=_with_assets(content, loaded, bound),
    )


def _with_assets(
    content: dict[str, dict[str, Any]], loaded: LoadResult, resources: dict[str, Any]
) -> CachingRepositoryData:
    """The lazy jobs, schedules and sensors of `content`, plus the app tables as assets
    (issue 9) as `Definitions(assets=...)` adds them (specs take milliseconds: not lazy).
    What `CachingRepositoryData.from_dict` does, which takes no assets."""
    assets = dg.Definitions(
        assets=asset_specs(loaded),
        asset_checks=asset_checks(loaded),  # they read the app database: resources bound
        resources=resources,
    ).get_repository_def()
    # The implicit asset job of those assets, as Definitions would list it.
    asset_jobs = {name: assets.get_job(name) for name in assets.job_names}
    return CachingRepositoryData(
        jobs={**content["jobs"], **asset_jobs},
        schedules=content["schedules"],
        sensors=content["sensors"],
        source_assets_by_key={},
        assets_defs_by_key=assets.assets_defs_by_key,
        asset_checks_defs_by_key=assets.asset_checks_defs_by_key,
        # The sensors' resources (housekeeping takes the table store), shown in the UI.
        top_level_resources=resources,
        utilized_env_vars={},
        unresolved_partitioned_asset_schedules={},
        component_tree=None,
    )


def _schedule(schedule: SchedulePlan, backfill: SchedulePlan | None) -> dg.ScheduleDefinition:
    # Dagster loads every schedule with the location: by job name, not by building it.
    partitions_def = partitions_for(backfill) if backfill else None
    return build_schedule(schedule, schedule.workflow, partitions_def)


def _same(value: Any) -> Any:
    return value


def _later(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    """`fn(*args)` when called: Dagster takes plain functions only, not partials."""

    def build() -> Any:
        return fn(*args)

    return build


def _backfills(loaded: LoadResult) -> dict[str, SchedulePlan]:
    """Job name -> the schedule whose backfillStart makes the job partitioned."""
    partitions: dict[str, SchedulePlan] = {}
    for schedule in loaded.schedules:
        if schedule.spec.backfill_start is not None:
            partitions.setdefault(schedule.workflow, schedule)
    return partitions


def _build_jobs(loaded: LoadResult, only: Collection[str] | None) -> dict[str, dg.JobDefinition]:
    partitions = _backfills(loaded)
    jobs: dict[str, dg.JobDefinition] = {}
    for workflow in loaded.workflows:
        if only is not None and workflow.job_name not in only:
            continue
        backfill = partitions.get(workflow.job_name)
        try:
            jobs[workflow.job_name] = build_job(
                workflow,
                loaded.services,
                partitions_def=partitions_for(backfill) if backfill else None,
                default_run_config=(
                    run_config_for(backfill.spec.params, None, backfill.spec.timezone)
                    if backfill
                    else None
                ),
            )
        except Exception as exc:  # one workflow Dagster refuses must not empty the location
            jobs[workflow.job_name] = _failing_job(workflow, exc)
    for broken in loaded.broken:
        if only is None or broken.job_name in only:
            jobs[broken.job_name] = build_broken_job(broken)
    return jobs


def _failing_job(workflow: WorkflowPlan, exc: Exception) -> dg.JobDefinition:
    problem = unchecked(workflow.file, exc)
    log.error("workflow definition problem: %s", problem)
    broken = BrokenWorkflow(
        workflow.app_id, workflow.stem, workflow.file, workflow.job_name, [problem], workflow.spec
    )
    return build_broken_job(broken)


VALIDATION_CLI_ENV = "DAGSTER_IS_DEFS_VALIDATION_CLI"


class WorkflowDefinitionsInvalid(DefinitionError):
    """Raised only under `dg check defs` / `dagster definitions validate`: there a broken
    workflow file must fail the check, while a normal load keeps it as a failing job so
    the other workflows (and the project's other definitions) still load."""

    def __init__(self, loaded: LoadResult) -> None:
        self.defs_dir = loaded.defs_dir
        super().__init__(loaded.problems)

    def __str__(self) -> str:
        lines = "\n".join(str(problem) for problem in self.problems)
        count = len(self.problems)
        return f"{count} workflow definition problem(s) in {self.defs_dir}:\n{lines}"


def check_for_validation(loaded: LoadResult) -> None:
    """Under Dagster's definitions validation, every problem of `loaded` fails it with
    the messages of `workflows check` (`file#pointer: ...`); elsewhere nothing happens."""
    if os.environ.get(VALIDATION_CLI_ENV) == "1" and loaded.problems:
        raise WorkflowDefinitionsInvalid(loaded)


def select_apps(loaded: LoadResult, apps: Collection[str]) -> LoadResult:
    """Only the workflows, schedules and problems of `apps` (service problems stay)."""
    wanted = set(apps)
    return LoadResult(
        defs_dir=loaded.defs_dir,
        services=loaded.services,
        workflows=[w for w in loaded.workflows if w.app_id in wanted],
        schedules=[s for s in loaded.schedules if s.app_id in wanted],
        broken=[b for b in loaded.broken if b.app_id in wanted],
        problems=[
            p
            for p in loaded.problems
            if not p.file.startswith("apps/") or p.file.split("/")[1] in wanted
        ],
    )


def plans_of(folder: Path) -> LoadResult:
    """The checked plans of any definitions folder, once per folder and process."""
    return _plans_from(folder.resolve())


def load() -> tuple[LoadResult, dg.Definitions]:
    """The definitions of `defs_dir()`, built once per folder and process."""
    return load_plans(), _definitions_from(defs_dir())


def load_plans() -> LoadResult:
    """The checked plans of `defs_dir()` (unchanged files come from the plan cache)."""
    return _plans_from(defs_dir())


@cache
def _plans_from(folder: Path) -> LoadResult:
    loaded = load_definitions(folder)
    for problem in loaded.problems:
        log.error("workflow definition problem: %s", problem)
    return loaded


def load_plans_of(ref: str) -> LoadResult:
    """The plans that running the workflow `<app_id>/<stem>` needs: its file alone when
    that answers (a run must not pay for the other workflows, issue 8), else all."""
    app_id, _, stem = ref.partition("/")
    loaded = _one_from(defs_dir(), app_id, stem) if app_id and stem and "/" not in stem else None
    return loaded or load_plans()


@cache
def _one_from(folder: Path, app_id: str, stem: str) -> LoadResult | None:
    loaded = load_one_workflow(folder, app_id, stem)
    if loaded is None:
        return None
    # schedules.json also complains about the files not read here: `workflows check` and
    # the code location report those; this file's own problems are logged as a full load does.
    file = f"apps/{app_id}/workflows/{stem}.json"
    for problem in loaded.problems:
        if problem.file == file:
            log.error("workflow definition problem: %s", problem)
    return loaded


@cache
def _definitions_from(folder: Path) -> dg.Definitions:
    return build_definitions(_plans_from(folder))


@cache
def _repository_from(folder: Path) -> dg.RepositoryDefinition:
    return build_repository(_plans_from(folder))


@cache
def _job_from(folder: Path, name: str) -> dg.JobDefinition:
    found = workflow_of_job(folder, name)
    loaded = _one_from(folder, *found) if found else None
    if loaded is None or name not in _job_names(loaded):
        loaded = _plans_from(folder)  # a renamed (clashing) job, or no such file
    return build_definitions(loaded, only={name}).resolve_job_def(name)


def _job_names(loaded: LoadResult) -> set[str]:
    return {w.job_name for w in loaded.workflows} | {b.job_name for b in loaded.broken}


def job_by_name(name: str) -> dg.JobDefinition:
    """Used by `build_reconstructable_job`: a run worker or step process reads and builds
    its own workflow file only, not the other workflows' (issue 8)."""
    return _job_from(defs_dir(), name)


# Dagster accepts a RepositoryDefinition from @definitions at run time (LazyDefinitions
# checks for either); its annotation names Definitions only.
@dg.definitions  # type: ignore[arg-type]
def defs() -> dg.RepositoryDefinition:
    """The code location, loaded when Dagster loads it, not when this module is imported
    (a process that runs one job imports it too); its jobs are built when asked for."""
    check_for_validation(_plans_from(defs_dir()))
    return _repository_from(defs_dir())
