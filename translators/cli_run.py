"""`workflows run`: execute a workflow's job in the Dagster instance, with progress lines."""

from __future__ import annotations

import datetime as dt
import fcntl
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
import yaml

from resources.secrets import redact
from translators.cli_errors import register_service_secrets, step_error
from translators.cli_runs import claim_or_refuse, create_run, execute
from translators.pause import PAUSED_PREFIX
from translators.run_coordinator import IDEMPOTENCY_TAG
from translators.variables import VariableError, parse_param_value, resolve_variables

INVOCATION_TAG = "workflow/cli_invocation"
MINIMAL_INSTANCE_YAML = """\
# Written by `workflows run`: SQLite storage in this folder (Dagster's default).
telemetry:
  enabled: false
python_logs:
  python_log_level: INFO
"""
_STEP_EVENTS = {
    "STEP_START": "started",
    "STEP_SUCCESS": "succeeded",
    "STEP_FAILURE": "FAILED",
    "STEP_SKIPPED": "skipped",
    "STEP_UP_FOR_RETRY": "up for retry",
}


def ensure_dagster_home() -> Path:
    """`$DAGSTER_HOME`, else `./.dagster_home`, seeded with the project's `dagster.yaml`
    (so CLI runs land in the same instance that `dagster dev` shows, see README), else
    with a minimal one: without it Dagster warns on every run and shows its banner."""
    home = Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    local_config = Path.cwd() / "dagster.yaml"
    if not (home / "dagster.yaml").exists():
        if local_config.exists():
            shutil.copyfile(local_config, home / "dagster.yaml")
        else:
            (home / "dagster.yaml").write_text(MINIMAL_INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def cli_instance(home: Path) -> dg.DagsterInstance:
    """The instance of `home`, its Python log level INFO unless its config sets one.

    Dagster's default (DEBUG) makes every step process print its engine events to the
    console; the progress lines already say what happened.
    """
    from dagster._core.instance.ref import InstanceRef

    config = yaml.safe_load((home / "dagster.yaml").read_text()) or {}
    python_logs = dict(config.get("python_logs") or {})
    overrides = {}
    if "python_log_level" not in python_logs:
        overrides = {"python_logs": {**python_logs, "python_log_level": "INFO"}}
    # Two CLI runs started together on a new home would both create its SQLite storage
    # and stamp its schema version twice (alembic then refuses the instance for good).
    with (home / ".instance.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home), overrides=overrides))
        _ = instance.run_storage, instance.event_log_storage, instance.schedule_storage
        return instance


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
    home = ensure_dagster_home()
    from translators.cli_output import unknown_workflow as _unknown_workflow
    from translators.definitions import job_by_name, load_plans, load_plans_of
    from translators.schedules import run_config_for

    loaded = load_plans_of(ref)  # this workflow's file only, when that answers
    workflow = next((w for w in loaded.workflows if f"{w.app_id}/{w.stem}" == ref), None)
    if workflow is None:
        return _unknown_workflow(ref, load_plans())  # its message lists every workflow
    try:
        # The same check `resolve_variables` makes in the run, before a run is created.
        resolve_variables(workflow.spec.variables, params, dt.datetime.now(dt.UTC))
    except VariableError as error:
        print(f"{ref}: {error}", file=sys.stderr)
        return 1
    instance = cli_instance(home)
    register_service_secrets(loaded.services)
    tags = {INVOCATION_TAG: uuid.uuid4().hex, "workflow/launched_by": "cli"}
    if idempotency_key:
        tags[IDEMPOTENCY_TAG] = idempotency_key
    run_config = run_config_for(params, None, "UTC")
    # The console logger would repeat every debug event; progress lines replace it.
    run_config["loggers"] = {"console": {"config": {"log_level": "CRITICAL"}}}
    job = job_by_name(workflow.job_name)  # builds this job only
    if job.partitions_def is not None:
        tags.update(_latest_partition_tags(job))
    # The run is created first and claims its idempotency key atomically (as the run
    # queue does); this process then executes it as its run worker.
    run = create_run(instance, workflow.job_name, run_config, tags)
    return claim_and_execute(instance, workflow.job_name, run, tags[INVOCATION_TAG])


def claim_and_execute(
    instance: dg.DagsterInstance,
    job_name: str,
    run: dg.DagsterRun,
    invocation: str,
    announce: str | None = None,
) -> int:
    """Claims the run's idempotency key, then runs it in this process (its run worker) with
    progress lines; the command's exit code. Shared by `run` and both kinds of `resume`."""
    from translators.cli_pause import finish

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
