"""`workflows run`: execute a workflow's job in the Dagster instance, with progress lines."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from translators.run_coordinator import IDEMPOTENCY_TAG, active_run_with_key
from translators.variables import VariableError, parse_param_value, resolve_variables

INVOCATION_TAG = "workflow/cli_invocation"
_STEP_EVENTS = {
    "STEP_START": "started",
    "STEP_SUCCESS": "succeeded",
    "STEP_FAILURE": "FAILED",
    "STEP_SKIPPED": "skipped",
    "STEP_UP_FOR_RETRY": "up for retry",
}


def ensure_dagster_home() -> Path:
    """`$DAGSTER_HOME`, else `./.dagster_home` seeded with the project's `dagster.yaml`,
    so CLI runs land in the same instance that `dagster dev` shows (see README)."""
    home = Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    local_config = Path.cwd() / "dagster.yaml"
    if not (home / "dagster.yaml").exists() and local_config.exists():
        shutil.copyfile(local_config, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def parse_params(pairs: list[str]) -> dict[str, object]:
    params: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--param expects K=V, got '{pair}'")
        params[key] = parse_param_value(value)
    return params


def run_workflow(ref: str, param_pairs: list[str], idempotency_key: str | None) -> int:
    params = parse_params(param_pairs)
    ensure_dagster_home()
    from translators.cli import _unknown_workflow
    from translators.definitions import load
    from translators.schedules import run_config_for

    loaded, defs = load()
    workflow = next((w for w in loaded.workflows if f"{w.app_id}/{w.stem}" == ref), None)
    if workflow is None:
        return _unknown_workflow(ref, loaded)
    try:
        # The same check `resolve_variables` makes in the run, before a run is created.
        resolve_variables(workflow.spec.variables, params, dt.datetime.now(dt.UTC))
    except VariableError as error:
        print(f"{ref}: {error}", file=sys.stderr)
        return 1
    instance = dg.DagsterInstance.get()
    # `execute_job` runs here, not through the run queue, so the CLI checks the key itself.
    if idempotency_key and active_run_with_key(instance, idempotency_key):
        print(
            f"refused: a run with idempotency key '{idempotency_key}' is still active",
            file=sys.stderr,
        )
        return 1
    tags = {INVOCATION_TAG: uuid.uuid4().hex, "workflow/launched_by": "cli"}
    if idempotency_key:
        tags[IDEMPOTENCY_TAG] = idempotency_key
    run_config = run_config_for(params, None, "UTC")
    # The console logger would repeat every debug event; progress lines replace it.
    run_config["loggers"] = {"console": {"config": {"log_level": "CRITICAL"}}}
    job = defs.resolve_job_def(workflow.job_name)
    if job.partitions_def is not None:
        tags.update(_latest_partition_tags(job))
    progress = ProgressPrinter(instance, tags[INVOCATION_TAG])
    progress.start()
    try:
        result = dg.execute_job(
            dg.build_reconstructable_job(
                "translators.definitions", "job_by_name", reconstructable_args=(workflow.job_name,)
            ),
            instance=instance,
            run_config=run_config,
            tags=tags,
            raise_on_error=False,
        )
    finally:
        progress.stop()
    return progress.summarize(result.success)


def _latest_partition_tags(job: dg.JobDefinition) -> dict[str, str]:
    partitions_def = job.partitions_def
    assert partitions_def is not None
    key = partitions_def.get_last_partition_key()
    return {"dagster/partition": key} if key else {}


@dataclass
class StepLine:
    status: str = "pending"
    started: float | None = None
    finished: float | None = None
    rows: int | None = None


@dataclass
class ProgressPrinter:
    """Follows the run's event log from a thread and prints one line per step event."""

    instance: dg.DagsterInstance
    invocation: str
    steps: dict[str, StepLine] = field(default_factory=dict)
    run_id: str | None = None
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
        if not step_key or kind not in _STEP_EVENTS:
            return
        line = self.steps.setdefault(step_key, StepLine())
        line.status = _STEP_EVENTS[kind]
        if kind == "STEP_START":
            line.started = entry.timestamp
        else:
            line.finished = entry.timestamp
        detail = f" ({line.rows} rows)" if kind == "STEP_SUCCESS" and line.rows is not None else ""
        if kind == "STEP_FAILURE" and event.step_failure_data.error:
            detail = f": {event.step_failure_data.error.message.strip().splitlines()[0]}"
        self._print(step_key, line.status + detail)

    def _print(self, step_key: str, text: str) -> None:
        print(f"[{time.time() - self._t0:6.1f}s] {step_key:<28} {text}", flush=True)

    def summarize(self, success: bool) -> int:
        print("\nsummary:")
        for step_key, line in self.steps.items():
            took = ""
            if line.started and line.finished:
                took = f"{line.finished - line.started:6.2f}s"
            rows = f"{line.rows} rows" if line.rows is not None else ""
            print(f"  {step_key:<28} {line.status:<12} {took:>8}  {rows}")
        print(f"run {self.run_id}: {'SUCCESS' if success else 'FAILURE'}")
        return 0 if success else 1
