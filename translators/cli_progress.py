"""How `workflows run` and `resume` execute a run in this process: the run claims its
idempotency key first (translators/run_coordinator.py, as the run queue does), then runs
with one progress line per step event, then a summary (a paused run is no failure)."""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field

import dagster as dg

from resources.secrets import redact
from translators.cli_errors import step_error
from translators.pause import PAUSED_PREFIX, is_paused, pause_reason
from translators.run_coordinator import IDEMPOTENCY_TAG, claim_key, refuse
from translators.run_creation import execute

INVOCATION_TAG = "workflow/cli_invocation"
_STEP_EVENTS = {
    "STEP_START": "started",
    "STEP_SUCCESS": "succeeded",
    "STEP_FAILURE": "FAILED",
    "STEP_SKIPPED": "skipped",
    "STEP_UP_FOR_RETRY": "up for retry",
}


def claim_or_refuse(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """Claims the run's idempotency key; the refusal message when another run holds it
    (the refused run is then CANCELED)."""
    key = run.tags.get(IDEMPOTENCY_TAG)
    holder = claim_key(instance, key, run.run_id) if key else None
    return refuse(instance, run, key, holder) if key and holder else None


def claim_and_execute(
    instance: dg.DagsterInstance,
    job_name: str,
    run: dg.DagsterRun,
    invocation: str,
    announce: str | None = None,
) -> int:
    """Claims the run's idempotency key, then runs it in this process (its run worker) with
    progress lines; the command's exit code. Shared by `run` and both kinds of `resume`."""
    refused = claim_or_refuse(instance, run)
    if refused:
        print(refused, file=sys.stderr)
        return 1
    if announce:
        print(announce)
    progress = ProgressPrinter(instance, invocation)
    progress.start()
    try:
        success = execute(instance, job_name, run)
    finally:
        progress.stop()
    return finish(instance, progress, run.run_id, success)


def finish(
    instance: dg.DagsterInstance, progress: ProgressPrinter, run_id: str, success: bool
) -> int:
    """The summary of a finished run; a paused run is no failure (exit 0)."""
    run = instance.get_run_by_id(run_id)
    if run is not None and is_paused(run):
        hint = f"the resume sensor continues it when due, or `workflows resume {run_id} [--now]`"
        return progress.summarize(success, paused=f"{pause_reason(run)}; {hint}")
    return progress.summarize(success)


@dataclass
class StepLine:
    status: str = "pending"
    started: float | None = None
    finished: float | None = None
    rows: int | None = None
    error: str | None = None  # the step's own error, redacted


@dataclass
class ProgressPrinter:
    """Follows the run's event log from a thread and prints one line per step event."""

    instance: dg.DagsterInstance
    invocation: str
    steps: dict[str, StepLine] = field(default_factory=dict)
    run_id: str | None = None
    run_error: str | None = None
    _cursor: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = field(default_factory=time.time)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self._drain()  # whatever arrived after the last poll

    def _follow(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self._drain()
            except Exception as error:
                logging.getLogger("workflows").debug("progress poll failed: %s", error)

    def _drain(self) -> None:
        if self.run_id is None:
            records = self.instance.get_run_records(
                filters=dg.RunsFilter(tags={INVOCATION_TAG: self.invocation}), limit=1
            )
            if not records:
                return
            self.run_id = records[0].dagster_run.run_id
            print(f"run {self.run_id} started", flush=True)
        while True:
            conn = self.instance.get_records_for_run(self.run_id, cursor=self._cursor, limit=500)
            for record in conn.records:
                self._show(record.event_log_entry)
            self._cursor = conn.cursor
            if not conn.has_more:
                return

    def _show(self, entry: dg.EventLogEntry) -> None:
        event = entry.dagster_event
        step_key = entry.step_key
        if event is None:
            level = entry.level if isinstance(entry.level, int) else logging.INFO
            if step_key and level >= logging.INFO and entry.user_message:
                self._print(step_key, entry.user_message)
            return
        kind = event.event_type_value
        if step_key and kind == "STEP_OUTPUT":
            metadata = event.step_output_data.metadata
            # A table's row count, or what a persist step wrote.
            rows = metadata.get("rows") or metadata.get("rows written")
            self.steps.setdefault(step_key, StepLine()).rows = getattr(rows, "value", None)
        stopped = any(s.error or s.status == "paused" for s in self.steps.values())
        if kind == "RUN_FAILURE" and not stopped:
            # No step failed (e.g. the job did not load): the run's own error says why.
            error = event.job_failure_data.error
            self.run_error = step_error(error) if error else redact(event.message or "")
        if not step_key or kind not in _STEP_EVENTS:
            return
        line = self.steps.setdefault(step_key, StepLine())
        line.status = _STEP_EVENTS[kind]
        if kind == "STEP_START":
            line.started = entry.timestamp
        else:
            line.finished = entry.timestamp
        detail = self._detail(event, line)  # may turn a failure into "paused"
        self._print(step_key, line.status + detail)

    def _detail(self, event: dg.DagsterEvent, line: StepLine) -> str:
        """What follows a step's status: its rows, or the step's own error (not Dagster's
        wrapper around it)."""
        kind = event.event_type_value
        if kind == "STEP_SUCCESS" and line.rows is not None:
            return f" ({line.rows} rows)"
        if kind == "STEP_FAILURE":
            error = step_error(event.step_failure_data.error)
            if PAUSED_PREFIX in error:  # a long wait paused the run: no failure
                line.status = "paused"
            else:
                line.error = error
            return ": " + error
        if kind == "STEP_UP_FOR_RETRY":
            return ": " + step_error(event.step_retry_data.error)
        return ""

    def _print(self, step_key: str, text: str) -> None:
        first, *rest = redact(text).splitlines() or [""]
        indent = " " * 40  # under the status column
        more = "".join(f"\n{indent}{line}" for line in rest)
        print(f"[{time.time() - self._t0:6.1f}s] {step_key:<28} {first}{more}", flush=True)

    def summarize(self, success: bool, paused: str | None = None) -> int:
        print("\nsummary:")
        for step_key, line in self.steps.items():
            took = ""
            if line.started and line.finished:
                took = f"{line.finished - line.started:6.2f}s"
            rows = f"{line.rows} rows" if line.rows is not None else ""
            print(f"  {step_key:<28} {line.status:<12} {took:>8}  {rows}".rstrip())
        failed = [(key, line.error) for key, line in self.steps.items() if line.error]
        if failed or self.run_error:
            print("\nwhy it failed:")
        for step_key, error in failed:
            print(f"  {step_key}: " + error.replace("\n", "\n    "))
        if self.run_error and not failed:
            print("  " + self.run_error.replace("\n", "\n    "))
        if paused:
            print(f"run {self.run_id}: PAUSED {paused}")
            return 0
        print(f"run {self.run_id}: {'SUCCESS' if success else 'FAILURE'}")
        return 0 if success else 1
