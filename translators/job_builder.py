"""A validated workflow plan -> one Dagster job: an op per step plus `resolve_variables`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg

from resources.secrets import redact
from resources.service_limits import service_pool
from resources.table_store import TableHandle
from translators.celery_executor import choosing_executor
from translators.errors import DefinitionError, Problem
from translators.last_value import record_table_max
from translators.loader import BrokenWorkflow, StepPlan, WorkflowPlan
from translators.naming import AFTER_INPUT_NAME, dagster_name
from translators.op_metadata import (
    PREVIEW_ROWS,
    materialization,
    op_description,
    op_tags,
    output_metadata,
)
from translators.run_secrets import redacted_failures, register_run_secrets
from translators.run_variables import VARIABLES_OP, run_variables, variables_op
from translators.run_worker import recording_worker
from translators.spec import ServiceSpec, SettingsSpec
from translators.steps import StepResult, StepRuntime
from translators.steps.registry import kind_of, split_dependencies
from translators.steps.runtime import RedactingLog
from translators.thread_executor import threads_executor

AFTER_INPUT = AFTER_INPUT_NAME
TABLE_STORE_KEY = "table_store"
APP_DB_KEY = "app_db"
# The code location module; a step process of `isolation: "process"` imports it.
DEFINITIONS_MODULE = "translators.definitions"
# What steps pass each other: the handle of a Parquet table, or nothing (a persist, a
# branch, a wait). A named type so the UI says so instead of "Any".
STEP_TABLE = dg.DagsterType(
    name="StepTable",
    type_check_fn=lambda _context, value: value is None or isinstance(value, TableHandle),
    description="A step's table: a Parquet file in the table store, passed by handle "
    "(name, path, row count, columns); empty for steps that make no table.",
)


def service_resource_key(service_name: str) -> str:
    """The Dagster resource key of a catalog service."""
    return "service_" + dagster_name(service_name)


def build_job(
    workflow: WorkflowPlan,
    services: Mapping[str, ServiceSpec],
    *,
    partitions_def: dg.TimeWindowPartitionsDefinition | None = None,
    default_run_config: dict[str, Any] | None = None,
) -> dg.JobDefinition:
    """The job for one workflow. Resources come from the enclosing `Definitions`."""
    catalog = dict(services)
    step_ops = {step.name: _step_op(workflow, step, catalog) for step in workflow.steps}
    dependencies: dict[Any, dict[str, Any]] = {}
    for step in workflow.steps:
        direct, ordering = split_dependencies(workflow, step)
        inputs: dict[str, Any] = {up: dg.DependencyDefinition(up, "result") for up in direct}
        if not step.depends_on:  # a first step runs after the variables are checked
            inputs[VARIABLES_OP] = dg.DependencyDefinition(VARIABLES_OP, "result")
        if ordering:
            inputs[AFTER_INPUT] = dg.MultiDependencyDefinition(
                [dg.DependencyDefinition(up, "result") for up in ordering]
            )
        dependencies[dg.NodeInvocation(step_ops[step.name].name, alias=step.name)] = inputs
    variables = variables_op(workflow, catalog)
    dependencies[dg.NodeInvocation(variables.name, alias=VARIABLES_OP)] = {}
    graph = dg.GraphDefinition(
        name=workflow.job_name,
        description=_job_description(workflow),
        node_defs=[variables, *step_ops.values()],
        dependencies=dependencies,
    )
    return graph.to_job(
        # The run worker records itself so a killed worker is detected (SPEC 5.5); a run
        # may go to Celery workers (settings.executor or a run tag, docs/scaling.md).
        executor_def=choosing_executor(
            recording_worker(executor_for(workflow.spec.settings)),
            always_celery=workflow.spec.settings.executor == "celery",
        ),
        tags=_job_tags(workflow),
        partitions_def=partitions_def,
        # Prefills the launchpad; backfills of a partitioned job use it as their config.
        config=default_run_config,
    )


def executor_for(settings: SettingsSpec) -> dg.ExecutorDefinition:
    """`maxParallelSteps` and `isolation` -> the executor (SPEC 5.6).

    Steps run in the run worker (~17 ms per op): one at a time with Dagster's in-process
    executor, else up to `maxParallelSteps` at once in threads. `isolation: "process"`
    gives each step its own process (~0.7 s each), forked from a server that imported
    this code location once.
    """
    if settings.isolation == "process":
        return dg.multiprocess_executor.configured(
            {
                "max_concurrent": settings.max_parallel_steps,
                "start_method": {"forkserver": {"preload_modules": [DEFINITIONS_MODULE]}},
            }
        )
    if settings.max_parallel_steps == 1:
        return dg.in_process_executor
    return threads_executor.configured({"max_concurrent": settings.max_parallel_steps})


def _job_description(workflow: WorkflowPlan) -> str:
    spec = workflow.spec
    title = spec.name or workflow.stem
    parts = [title, spec.description or "", f"Defined in {workflow.file}."]
    return "\n\n".join(part for part in parts if part)


def _job_tags(workflow: WorkflowPlan) -> dict[str, str]:
    tags = {"workflow/app": workflow.app_id, "workflow/file": workflow.file}
    if workflow.spec.id:
        tags["workflow/id"] = workflow.spec.id
    return tags


# The compute functions below leave `context` unannotated: with postponed annotations
# Dagster sees the string "OpExecutionContext" and rejects it as a foreign type.


def _step_op(
    workflow: WorkflowPlan, step: StepPlan, catalog: dict[str, ServiceSpec]
) -> dg.OpDefinition:
    kind = kind_of(step)
    # Resolved once, here: the op never goes back to the catalog while it runs.
    bound = kind.bind(step, catalog)
    service_names = kind.services(step.spec)
    resource_keys = {TABLE_STORE_KEY, APP_DB_KEY, *map(service_resource_key, service_names)}
    settings = workflow.spec.settings

    def compute(context, inputs: Mapping[str, Any]) -> Iterator[Any]:
        # Whatever this step reports may quote a secret it never read itself (a cast
        # error over an API field): register all the run knows, redact what leaves.
        register_run_secrets(catalog)
        with redacted_failures():
            result = kind.run(bound, _runtime(context, inputs))
            record_table_max(
                context,
                workflow.spec.variables,
                step.output_table,
                result.handle,
                getattr(context.resources, TABLE_STORE_KEY),
            )
        if result.materialized is not None:
            yield materialization(result.materialized)
        if result.emit:
            preview = _preview(context, result)
            yield dg.Output(result.handle, "result", metadata=output_metadata(result, preview))
        else:
            context.log.info(f"{step.name}: output not emitted; dependent steps are skipped")

    def _runtime(context: Any, inputs: Mapping[str, Any]) -> StepRuntime:
        return StepRuntime(
            plan=step,
            job_name=workflow.job_name,
            run_id=context.run_id,
            lineage=context.run.root_run_id or context.run_id,
            variables=run_variables(context, workflow)["values"],
            tables={h.name: h for h in inputs.values() if isinstance(h, TableHandle)},
            table_store=getattr(context.resources, TABLE_STORE_KEY),
            app_db=getattr(context.resources, APP_DB_KEY),
            services={
                name: getattr(context.resources, service_resource_key(name))
                for name in service_names
            },
            log=RedactingLog(context.log),
            app_access=workflow.access,
            catalog=catalog,
            inline_wait_max_seconds=settings.inline_wait_max_seconds,
        )

    return dg.OpDefinition(
        name=f"{workflow.job_name}__{step.name}",
        compute_fn=compute,
        ins=_inputs(workflow, step),
        outs={"result": dg.Out(STEP_TABLE, is_required=not kind.skips_dependents)},
        config_schema={},  # a step takes no config: the launchpad shows none (not "Any")
        required_resource_keys=resource_keys,
        retry_policy=kind.retry_policy(bound),
        # Caps the steps calling one service across runs (instance pools, SPEC 5.6).
        pool=service_pool(service_names[0]) if service_names else None,
        tags=op_tags(workflow, step, service_names),
        description=op_description(workflow, step, catalog),
    )


def _preview(context: Any, result: StepResult) -> list[dict[str, Any]] | None:
    """The first rows of the step's table for the UI; a courtesy that never fails a step."""
    if result.handle is None:
        return None
    try:
        return getattr(context.resources, TABLE_STORE_KEY).head(result.handle, PREVIEW_ROWS)
    except Exception as exc:
        context.log.warning(f"no preview of table {result.handle.name}: {redact(str(exc))}")
        return None


def _inputs(workflow: WorkflowPlan, step: StepPlan) -> dict[str, dg.In]:
    direct, ordering = split_dependencies(workflow, step)
    ins = {up: dg.In(STEP_TABLE) for up in direct}
    if not step.depends_on:
        ins[VARIABLES_OP] = dg.In(dg.Nothing)
    if ordering:
        ins[AFTER_INPUT] = dg.In(dg.Nothing)
    return ins


def build_broken_job(broken: BrokenWorkflow) -> dg.JobDefinition:
    """A job that fails at once, its description listing the file's problems (SPEC 7),
    and those of the broken service files it uses, as markdown bullets (the UI renders
    descriptions as markdown)."""
    text = _bullets(broken.problems)
    if broken.related:
        text += "\n\nThe service files it uses have problems:\n\n" + _bullets(broken.related)

    def compute(context, _inputs: Mapping[str, Any]) -> Iterator[Any]:
        raise DefinitionError([*broken.problems, *broken.related])
        yield  # pragma: no cover - makes this a generator, as OpDefinition expects

    op = dg.OpDefinition(
        name=f"{broken.job_name}__definition_errors",
        compute_fn=compute,
        outs={},
        description=text,
    )
    graph = dg.GraphDefinition(
        name=broken.job_name,
        description=f"BROKEN definition {broken.file}; fix these problems:\n\n{text}",
        node_defs=[op],
        dependencies={dg.NodeInvocation(op.name, alias="definition_errors"): {}},
    )
    return graph.to_job(
        executor_def=dg.in_process_executor,
        tags={
            "workflow/app": broken.app_id,
            "workflow/file": broken.file,
            "workflow/broken": "true",
        },
    )


def _bullets(problems: list[Problem]) -> str:
    return "\n".join(f"- {redact(str(problem))}" for problem in problems)
