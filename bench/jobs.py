"""Write a definitions folder, translate it, run one job in-process, time its steps.

The same path the product takes: `translators.loader.load_definitions` ->
`translators.definitions.build_definitions` -> the job's `execute_in_process` with the
run config `workflows run` passes, on an ephemeral Dagster instance kept in the case's
temporary folder.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from bench.common import RssSampler, current_rss_mb
from translators.definitions import build_definitions
from translators.loader import load_definitions
from translators.schedules import run_config_for

APP_ID = "bench"


def write_defs(
    root: Path, services: Mapping[str, dict[str, Any]], workflows: Mapping[str, dict[str, Any]]
) -> Path:
    """A definitions folder: `services/<name>.json` and `apps/bench/workflows/<stem>.json`."""
    (root / "services").mkdir(parents=True, exist_ok=True)
    for name, document in services.items():
        (root / "services" / f"{name}.json").write_text(json.dumps(document, indent=2))
    folder = root / "apps" / APP_ID / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    for stem, document in workflows.items():
        (folder / f"{stem}.json").write_text(json.dumps(document, indent=2))
    return root


@dataclass
class StepTiming:
    """One step of a finished run: its wall-clock window and its output metadata."""

    start: float
    end: float
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class JobRun:
    """A finished in-process run of a translated job."""

    success: bool
    wall_s: float
    setup_s: float
    rss_before_run_mb: float
    steps: dict[str, StepTiming]
    result: dg.ExecuteInProcessResult

    def step(self, name: str) -> StepTiming:
        return self.steps[name]


def run_workflow(
    defs_dir: Path, stem: str, instance_dir: Path, params: Mapping[str, Any] | None = None
) -> JobRun:
    """Load and translate `defs_dir`, then run the job of workflow `stem` in-process."""
    started = time.perf_counter()
    loaded = load_definitions(defs_dir)
    if not loaded.ok:
        raise RuntimeError("\n".join(str(p) for p in loaded.problems))
    job_name = next(w.job_name for w in loaded.workflows if w.stem == stem)
    job = build_definitions(loaded).resolve_job_def(job_name)
    setup_s = time.perf_counter() - started
    rss_before = current_rss_mb()
    instance_dir.mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.ephemeral(tempdir=str(instance_dir)) as instance:
        began = time.perf_counter()
        result = job.execute_in_process(
            run_config=run_config_for(dict(params or {}), None, "UTC"),
            instance=instance,
            raise_on_error=True,
        )
        wall_s = time.perf_counter() - began
        timings = _step_timings(instance.all_logs(result.run_id))
    return JobRun(result.success, wall_s, setup_s, rss_before, timings, result)


def _step_timings(entries: Sequence[Any]) -> dict[str, StepTiming]:
    """Each step's window from the event log (entries carry wall-clock timestamps)."""
    starts: dict[str, float] = {}
    timings: dict[str, StepTiming] = {}
    metadata: dict[str, dict[str, Any]] = {}
    for entry in entries:
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        key, kind = event.step_key, event.event_type_value
        if kind == "STEP_START":
            starts[key] = entry.timestamp
        elif kind == "STEP_OUTPUT":
            values = getattr(event.event_specific_data, "metadata", None) or {}
            metadata[key] = {k: getattr(v, "value", v) for k, v in values.items()}
        elif kind == "STEP_SUCCESS" and key in starts:
            timings[key] = StepTiming(starts[key], entry.timestamp, metadata.get(key, {}))
    return timings


def step_summary(run: JobRun, step: str, sampler: RssSampler) -> dict[str, Any]:
    """The figures every case reports about its measured step."""
    timing = run.step(step)
    window = sampler.window(timing.start, timing.end)
    return {
        "step_s": round(timing.seconds, 3),
        "job_wall_s": round(run.wall_s, 3),
        "setup_s": round(run.setup_s, 3),
        "rss_before_run_mb": round(run.rss_before_run_mb, 1),
        "step_rss_at_start_mb": window["rss_at_start_mb"],
        "step_peak_rss_mb": window["peak_rss_mb"],
        "step_rss_growth_mb": round(window["peak_rss_mb"] - window["rss_at_start_mb"], 1),
        "step_rss_by_quarter_mb": sampler.quarters(timing.start, timing.end),
    }
