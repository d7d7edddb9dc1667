"""Who runs a run, and whether it is still alive (SPEC 5.5, a run whose worker died).

The run worker (the `workflows run` process, or the process the launcher starts for a
queued run) records itself when its executor starts: host, pid, the process's start
time from /proc (so a reused pid is not mistaken for it), and a heartbeat it refreshes
while the run goes on. `worker_state` reads that back: on the same host the process is
checked directly; on another host a stale heartbeat means the worker is gone.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.events import JobFailureData, RunFailureReason
from dagster._core.executor.base import Executor

HEARTBEAT_SECONDS = 10.0
# A worker on another host is lost after this long without a heartbeat; with the
# daemon's 20 s monitoring poll (dagster.yaml) that stays within the minute SPEC 5.5 asks for.
STALE_AFTER_SECONDS = 25.0
WORKER_LOST = "worker lost"
log = logging.getLogger("workflows")
# The workers table (translators.instance_db, SQLAlchemy) is imported by the functions that
# use it: every process that builds a job imports this module, and SQLAlchemy costs
# ~0.3 s of a code-location load that never touches that table (issue 8).


def process_start(pid: int) -> str | None:
    """`<boot id>:<start ticks>` of a live process, None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its end.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return f"{boot}:{fields[19]}"


def record_worker(instance: dg.DagsterInstance, run_id: str) -> None:
    """This process runs `run_id` (replaces an earlier record of the same run)."""
    pid = os.getpid()
    row = {
        "run_id": run_id,
        "host": socket.gethostname(),
        "pid": pid,
        "process_start": process_start(pid) or "unknown",
        "heartbeat": time.time(),
    }
    from translators.instance_db import WORKERS, connect  # lazy: SQLAlchemy, see top

    with connect(instance) as conn:
        conn.execute(WORKERS.delete().where(WORKERS.c.run_id == run_id))
        conn.execute(WORKERS.insert().values(**row))


def _beat(instance: dg.DagsterInstance, run_id: str, stop: threading.Event) -> None:
    from translators.instance_db import WORKERS, connect  # lazy: SQLAlchemy, see top

    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            with connect(instance) as conn:
                conn.execute(
                    WORKERS.update().where(WORKERS.c.run_id == run_id).values(heartbeat=time.time())
                )
        except Exception as error:  # a missed beat is retried on the next tick
            log.warning("run worker heartbeat failed: %s", error)


@contextmanager
def recorded_worker(instance: dg.DagsterInstance, run_id: str) -> Iterator[None]:
    record_worker(instance, run_id)
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(instance, run_id, stop), daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()


@dataclass(frozen=True)
class WorkerState:
    alive: bool | None  # None: nothing recorded (yet), so nothing can be said
    reason: str


def worker_state(instance: dg.DagsterInstance, run_id: str) -> WorkerState:
    import sqlalchemy as sa  # lazy: see top

    from translators.instance_db import WORKERS, connect  # lazy: SQLAlchemy, see top

    with connect(instance) as conn:
        row = conn.execute(sa.select(WORKERS).where(WORKERS.c.run_id == run_id)).first()
    if row is None:
        return WorkerState(None, "no run worker recorded yet")
    where = f"process {row.pid} on {row.host}"
    if row.host == socket.gethostname():
        if process_start(row.pid) == row.process_start:
            return WorkerState(True, f"{where} is running")
        return WorkerState(False, f"{WORKER_LOST}: {where} is gone")
    silent = time.time() - row.heartbeat
    if silent > STALE_AFTER_SECONDS:
        return WorkerState(False, f"{WORKER_LOST}: no heartbeat from {where} for {silent:.0f}s")
    return WorkerState(True, f"{where} sent a heartbeat {silent:.0f}s ago")


def fail_if_worker_lost(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Marks a STARTED run whose worker is gone FAILED ("worker lost"); True if it did."""
    if run.status != dg.DagsterRunStatus.STARTED:
        return False
    state = worker_state(instance, run.run_id)
    if state.alive is not False:
        return False
    current = instance.get_run_by_id(run.run_id)
    if current is None or current.status != dg.DagsterRunStatus.STARTED:
        return False  # someone else finished or failed it meanwhile
    instance.report_run_failed(
        current,
        state.reason,
        JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION),
    )
    return True


class DelegatingExecutor(Executor):
    """An executor that hands everything to the job's own executor (`inner`); subclasses
    change `execute` only. Dagster asks the run's executor object itself for retries and
    step dependencies, so a wrapper must answer them as the inner one would."""

    def __init__(self, inner: Executor) -> None:
        self._inner = inner

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def get_step_event_or_retry_event(self, *args, **kwargs):
        return self._inner.get_step_event_or_retry_event(*args, **kwargs)

    def execute(self, plan_context, execution_plan):
        return self._inner.execute(plan_context, execution_plan)


def wrapped_executor(
    executor_def: dg.ExecutorDefinition, wrap: Callable[[Executor], Executor]
) -> dg.ExecutorDefinition:
    """`executor_def` (same name, config and requirements) whose executor is `wrap(inner)`."""
    create = executor_def.executor_creation_fn
    assert create is not None

    def create_wrapped(init_context):
        return wrap(create(init_context))

    return dg.ExecutorDefinition(
        name=executor_def.name,
        config_schema=executor_def.config_schema,  # type: ignore[arg-type]
        requirements=executor_def.get_requirements,
        executor_creation_fn=create_wrapped,
        description=executor_def.description,
    )


class _RecordingExecutor(DelegatingExecutor):
    """`execute` runs in the run worker for the whole run, which makes it the one place
    to record the worker and keep its heartbeat."""

    def execute(self, plan_context, execution_plan):
        with recorded_worker(plan_context.instance, plan_context.run_id):
            yield from self._inner.execute(plan_context, execution_plan)


def recording_worker(executor_def: dg.ExecutorDefinition) -> dg.ExecutorDefinition:
    """The same executor (name, config, requirements), recording its run worker."""
    return wrapped_executor(executor_def, _RecordingExecutor)
