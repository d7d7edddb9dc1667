"""The default executor: independent steps run at once, in threads of the run worker.

A process per step (Dagster's multiprocess executor) costs 0.7-2 s per step to start a
Python, import Dagster and rebuild the job; the steps here mostly wait on HTTP, DuckDB
or a database, which release the GIL. So this is Dagster's in-process executor (one
execution context, resources set up once, logs captured once per run) with the single
change that up to `max_concurrent` steps run at the same time, each in a thread.

Every step event is still made by Dagster's own `dagster_event_sequence_for_step` and
fed back to the one `ActiveExecution` in the orchestrating thread, exactly as the
multiprocess executor feeds back its children's events: start, success, failure, skips,
`RetryPolicy` retries and their delays, and instance concurrency pools keep their
meaning. A workflow that wants a process per step says `settings.isolation: "process"`.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.api import ExecuteRunWithPlanIterable
from dagster._core.execution.compute_logs import create_compute_log_file_key
from dagster._core.execution.context.system import PlanExecutionContext, PlanOrchestrationContext
from dagster._core.execution.context_creation_job import PlanExecutionContextManager
from dagster._core.execution.plan.execute_plan import (
    _handle_compute_log_setup_error,
    _handle_compute_log_teardown_error,
    _trigger_hook,
    dagster_event_sequence_for_step,
)
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode, get_retries_config
from dagster._core.execution.step_dependency_config import (
    StepDependencyConfig,
    get_step_dependency_config_field,
)
from dagster._core.executor.base import Executor

THREADS_EXECUTOR = "threads"
# How often the orchestrating thread looks up from the event queue while steps run:
# bounds the delay of a due retry or an interrupt, costs nothing measurable.
_POLL_SECONDS = 0.05
_DONE = object()


class ThreadsExecutor(Executor):
    def __init__(
        self,
        retries: RetryMode,
        max_concurrent: int,
        step_dependency_config: StepDependencyConfig | None = None,
    ) -> None:
        self._retries = retries
        self._max_concurrent = max(1, max_concurrent)
        self._step_dependency_config = step_dependency_config or StepDependencyConfig.default()

    @property
    def retries(self) -> RetryMode:
        return self._retries

    @property
    def step_dependency_config(self) -> StepDependencyConfig:
        return self._step_dependency_config

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        keys = execution_plan.step_keys_to_execute
        yield DagsterEvent.engine_event(
            plan_context,
            f"Executing steps in threads of process {os.getpid()}, "
            f"at most {self._max_concurrent} at once",
            event_specific_data=EngineEventData.in_process(os.getpid(), keys),
        )
        # The in-process executor's context manager: resources are set up once per run.
        yield from iter(
            ExecuteRunWithPlanIterable(
                execution_plan=plan_context.execution_plan,
                iterator=partial(_threaded_plan_iterator, max_concurrent=self._max_concurrent),
                execution_context_manager=PlanExecutionContextManager(
                    job=plan_context.job,
                    retry_mode=plan_context.retry_mode,
                    execution_plan=plan_context.execution_plan,
                    run_config=plan_context.run_config,
                    dagster_run=plan_context.dagster_run,
                    instance=plan_context.instance,
                    raise_on_error=plan_context.raise_on_error,
                    output_capture=plan_context.output_capture,
                    step_dependency_config=self.step_dependency_config,
                ),
            )
        )


@dataclass
class _Running:
    context: Any
    events: list[DagsterEvent] = field(default_factory=list)


def _run_step(step_context: Any, key: str, out: queue.Queue) -> None:
    """Runs one step in this thread; every event, and then `_DONE`, goes to `out`."""
    try:
        for event in dagster_event_sequence_for_step(step_context):
            out.put((key, event))
    except BaseException as error:  # a framework error fails the run, as in-process
        out.put((key, error))
    finally:
        out.put((key, _DONE))


def _threaded_plan_iterator(
    job_context: PlanExecutionContext, execution_plan: ExecutionPlan, max_concurrent: int
) -> Iterator[DagsterEvent]:
    """`inner_plan_execution_iterator` with up to `max_concurrent` steps at once."""
    compute_log_manager = job_context.instance.compute_log_manager
    step_keys = [step.key for step in execution_plan.get_steps_to_execute_in_topo_order()]
    with (
        InstanceConcurrencyContext(job_context.instance, job_context.dagster_run) as pools,
        execution_plan.start(
            retry_mode=job_context.retry_mode,
            max_concurrent=max_concurrent,
            instance_concurrency_context=pools,
            step_dependency_config=job_context.step_dependency_config,
        ) as active,
        ExitStack() as capture,
    ):
        log_key = compute_log_manager.build_log_key_for_run(
            job_context.run_id, create_compute_log_file_key()
        )
        try:
            # Output is captured per run, as in-process: the threads share stdout.
            log_context = capture.enter_context(compute_log_manager.capture_logs(log_key))
            yield DagsterEvent.capture_logs(job_context, step_keys, log_key, log_context)
        except Exception:
            yield from _handle_compute_log_setup_error(job_context, sys.exc_info())
        yield from _orchestrate(job_context, active, max_concurrent)
        try:
            capture.close()
        except Exception:
            yield from _handle_compute_log_teardown_error(job_context, sys.exc_info())


def _orchestrate(job_context: Any, active: Any, max_concurrent: int) -> Iterator[DagsterEvent]:
    """Starts ready steps, relays their events to `active`, finishes them in order."""
    out: queue.Queue = queue.Queue()
    running: dict[str, _Running] = {}
    stopping = False
    while running or (not stopping and not active.is_complete):
        if active.check_for_interrupts():
            # Threads cannot be killed: running steps finish, no new step starts.
            stopping = True
            active.mark_interrupted()
        if not stopping:
            steps = active.get_steps_to_execute(limit=max_concurrent - len(running))
            yield from active.concurrency_event_iterator(job_context)
            for step in steps:
                context = job_context.for_step(step, active.get_known_state())
                running[step.key] = _Running(context)
                threading.Thread(
                    target=_run_step,
                    args=(context, step.key, out),
                    name=f"step {step.key}",
                    daemon=True,
                ).start()
        if not running:
            active.sleep_til_ready()
            continue
        try:
            key, item = out.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            continue
        if isinstance(item, BaseException):
            raise item
        if item is not _DONE:
            running[key].events.append(item)
            yield item
            active.handle_event(item)
            continue
        step = running.pop(key)
        active.verify_complete(job_context, key)
        for event in active.plan_events_iterator(job_context):  # skips downstream
            step.events.append(event)
            yield event
        yield from _trigger_hook(step.context, step.events)


def _create_threads_executor(init_context: Any) -> ThreadsExecutor:
    config = init_context.executor_config
    return ThreadsExecutor(
        retries=RetryMode.from_config(config["retries"]),  # type: ignore[arg-type]
        max_concurrent=config["max_concurrent"],
        step_dependency_config=StepDependencyConfig.from_config(
            config.get("step_dependency_config")
        ),
    )


threads_executor = dg.ExecutorDefinition(
    name=THREADS_EXECUTOR,
    config_schema={
        "max_concurrent": dg.Field(int, default_value=4, description="steps at once"),
        "retries": get_retries_config(),
        "step_dependency_config": get_step_dependency_config_field(),
    },
    executor_creation_fn=_create_threads_executor,
    description="Runs independent steps at once in threads of the run worker.",
)
