"""How runs are created and executed in this process: a new run, or a re-execution of a
failed or paused run from its failure. The CLI (`workflows run`, `resume`) and the
continuations of paused runs (translators/pause.py) share it; it imports no `cli_*` module."""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster._core.execution.api import create_execution_plan, execute_run
from dagster._core.execution.plan.state import KnownExecutionState
from dagster._core.storage.tags import PARENT_RUN_ID_TAG, ROOT_RUN_ID_TAG


def reconstructable(job_name: str) -> dg.ReconstructableJob:
    return dg.build_reconstructable_job(
        "translators.definitions", "job_by_name", reconstructable_args=(job_name,)
    )


def create_run(
    instance: dg.DagsterInstance,
    job_name: str,
    run_config: dict,
    tags: dict[str, str],
    parent: dg.DagsterRun | None = None,
    remote_job_origin: Any = None,
) -> dg.DagsterRun:
    """A new run of the job, or a re-execution of `parent` from its failure (the steps
    that succeeded are not run again; their tables are reused)."""
    recon = reconstructable(job_name)
    job_def = recon.get_definition()
    lineage: dict[str, object] = {}
    if parent is not None:
        steps, known = KnownExecutionState.build_resume_retry_reexecution(instance, parent)
        root = parent.root_run_id or parent.run_id
        lineage = {
            "execution_plan": create_execution_plan(
                recon, run_config, step_keys_to_execute=steps, known_state=known, tags=parent.tags
            ),
            "root_run_id": root,
            "parent_run_id": parent.run_id,
        }
        tags = {**tags, PARENT_RUN_ID_TAG: parent.run_id, ROOT_RUN_ID_TAG: root}
    return instance.create_run_for_job(
        job_def=job_def,
        run_config=run_config,
        tags={**job_def.run_tags, **tags},
        job_code_origin=recon.get_python_origin(),
        # Set for a run the queue launches (the resume sensor's continuations).
        remote_job_origin=remote_job_origin,
        **lineage,  # type: ignore[arg-type]
    )


def execute(instance: dg.DagsterInstance, job_name: str, run: dg.DagsterRun) -> bool:
    """Executes the run in this process (this process is its run worker)."""
    return execute_run(reconstructable(job_name), run, instance, raise_on_error=False).success
