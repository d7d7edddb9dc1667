"""The default run launcher with a run worker health check, for Dagster's run monitoring.

`DefaultRunLauncher` (one process per run on the code server's machine) does not
implement `check_run_worker_health`, so the daemon's run monitoring cannot tell that a
killed run worker is gone: the run would stay STARTED for ever. This launcher answers
from what the worker recorded (translators/run_worker.py): the process itself on the
same host, the heartbeat otherwise. A lost worker makes monitoring mark the run FAILED
("worker lost"), `run_retries` then re-executes it from failure.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus

from translators.run_worker import worker_state


class WorkerCheckingRunLauncher(DefaultRunLauncher):
    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        state = worker_state(self._instance, run.run_id)
        if state.alive is False:
            return CheckRunHealthResult(WorkerStatus.FAILED, state.reason)
        # Nothing recorded yet (the worker is starting up) counts as running: the start
        # timeout of run monitoring covers a worker that never gets that far.
        return CheckRunHealthResult(WorkerStatus.RUNNING, state.reason)
