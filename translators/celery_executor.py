"""Steps on Celery workers: Dagster's `dagster-celery` executor, Redis as broker (SPEC 5.6).

A run goes to Celery when its workflow says `settings.executor: "celery"` or when it is
launched with the run tag `workflow/executor=celery`; every other run keeps the
executor `maxParallelSteps` / `isolation` choose, on one machine, and never imports
Celery or Redis. The run worker then only orchestrates: each step is a Celery task that
a `dagster-celery worker` process picks up, rebuilds the job from this code location
and runs the step in (docs/scaling.md has the commands, deploy/celery/ the profile).

Broker and result backend are the Redis at `$WORKFLOWS_REDIS_URL`, like every other
deployment setting from the environment; the same Redis holds the shared rate limits
(resources.shared_slots). The workers are started with the same URL
(deploy/celery/celery.yaml reads the same variable).

What Celery needs and the default one-machine setup does not give, it says before the
first step: a persistent instance (the workers read the run and write its events there)
and a job the workers can rebuild (a run launched through the instance, not
`execute_in_process`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.executor.base import Executor

from resources.secrets import mask_db_url
from resources.shared_slots import REDIS_URL_ENV
from translators.run_worker import DelegatingExecutor, recorded_worker, wrapped_executor

EXECUTOR_TAG = "workflow/executor"
CELERY = "celery"


def celery_broker() -> str:
    """The Redis URL of broker and result backend, or an error naming the variable."""
    broker = os.environ.get(REDIS_URL_ENV)
    if not broker:
        raise dg.DagsterUnmetExecutorRequirementsError(
            f"this run's steps go to Celery workers, but {REDIS_URL_ENV} is not set: set it "
            "to the Redis the workers listen to, e.g. redis://127.0.0.1:6379/0 "
            "(docs/scaling.md)"
        )
    return broker


def wants_celery(run: dg.DagsterRun, always: bool) -> bool:
    return always or run.tags.get(EXECUTOR_TAG) == CELERY


class ChoosingExecutor(DelegatingExecutor):
    """The job's own executor, or Dagster's Celery executor for runs that ask for it.

    It sits outside the worker-recording wrapper: Dagster's Celery loop reads
    `app_args()` from the executor of the run, which must therefore be this object.
    """

    def __init__(self, inner: Executor, always_celery: bool) -> None:
        super().__init__(inner)
        self._always = always_celery
        self._celery: Any = None

    def get_step_event_or_retry_event(self, *args, **kwargs):
        return (self._celery or self._inner).get_step_event_or_retry_event(*args, **kwargs)

    def app_args(self) -> dict[str, Any]:
        assert self._celery is not None, "app_args is asked only by the Celery loop"
        return self._celery.app_args()

    def execute(self, plan_context, execution_plan) -> Iterator[DagsterEvent]:
        if not wants_celery(plan_context.dagster_run, self._always):
            yield from self._inner.execute(plan_context, execution_plan)
            return
        _check_celery_requirements(plan_context)
        from dagster_celery.executor import CeleryExecutor  # only runs that chose Celery

        broker = celery_broker()
        self._celery = CeleryExecutor(retries=self.retries, broker=broker, backend=broker)
        yield DagsterEvent.engine_event(
            plan_context,
            f"Steps run on Celery workers (broker {mask_db_url(broker)})",
            EngineEventData(),
        )
        # The run worker orchestrates for the whole run: record it, as the inner does.
        with recorded_worker(plan_context.instance, plan_context.run_id):
            yield from self._celery.execute(plan_context, execution_plan)


def _check_celery_requirements(plan_context: Any) -> None:
    if plan_context.instance.is_ephemeral:
        raise dg.DagsterUnmetExecutorRequirementsError(
            "Celery workers need a persistent Dagster instance (they read the run and "
            "write its events there): set DAGSTER_HOME to the deployment's instance "
            "(deploy/celery/dagster.yaml)"
        )
    if not isinstance(plan_context.job, ReconstructableJob):
        raise dg.DagsterUnmetExecutorRequirementsError(
            "Celery workers rebuild the job from the code location: launch the run "
            "through the instance (`workflows run`, the UI, a schedule), not in-process"
        )


def choosing_executor(executor_def: dg.ExecutorDefinition, always_celery: bool):
    """`executor_def` (same name and config) that hands a run to Celery when it asks."""
    return wrapped_executor(executor_def, lambda inner: ChoosingExecutor(inner, always_celery))
