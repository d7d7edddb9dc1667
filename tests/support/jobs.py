"""Build definitions from a folder and run their jobs through Dagster, for tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg

from translators.definitions import build_definitions
from translators.loader import LoadResult, load_definitions
from translators.schedules import run_config_for

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REAL_DEFS = PROJECT_ROOT / "workflow_defs"


def load(defs_dir: Path) -> tuple[LoadResult, dg.Definitions]:
    loaded = load_definitions(defs_dir)
    assert loaded.ok, "\n".join(str(p) for p in loaded.problems)
    return loaded, build_definitions(loaded)


def run_job(
    defs: dg.Definitions,
    job_name: str,
    params: dict[str, Any] | None = None,
    *,
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """Run a translated job in-process, with its params as `workflows run` passes them."""
    job = defs.resolve_job_def(job_name)
    return job.execute_in_process(
        run_config=run_config_for(params or {}, None, "UTC"),
        instance=instance,
        raise_on_error=raise_on_error,
    )


def write_defs(root: Path, app_id: str, workflows: dict[str, dict], services: tuple = ()) -> Path:
    """A definitions folder: the real catalog entries named in `services`, and workflows."""
    (root / "services").mkdir(parents=True, exist_ok=True)
    for name in services:
        shutil.copy(REAL_DEFS / "services" / f"{name}.json", root / "services" / f"{name}.json")
    folder = root / "apps" / app_id / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    for stem, document in workflows.items():
        (folder / f"{stem}.json").write_text(json.dumps(document, indent=2))
    return root


def events_of(result: dg.ExecutionResult, kind: str) -> list[dg.DagsterEvent]:
    """The run's events of one type (`STEP_FAILURE`, `STEP_UP_FOR_RETRY`, ...)."""
    return [e for e in result.all_events if e.event_type_value == kind]


_FRESH_RUNNER = """
import sys
import dagster as dg
from translators.run_creation import reconstructable
from translators.schedules import run_config_for

with dg.DagsterInstance.get() as instance:
    for name in sys.argv[1:]:
        config = run_config_for({}, None, "UTC")
        with dg.execute_job(reconstructable(name), instance, run_config=config) as r:
            print("ran", name, r.run_id, r.success)
"""


def run_fresh(root: Path, *jobs: str, timeout: float = 300) -> dict[str, tuple[str, bool]]:
    """Run the jobs one after another in a new Python process (its own forkserver and
    secret registry, this test's env and `$DAGSTER_HOME`): job -> (run id, success)."""
    env = {**os.environ, "WORKFLOW_DEFS_DIR": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", _FRESH_RUNNER, *jobs],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line.split()[1:] for line in done.stdout.splitlines() if line.startswith("ran ")]
    return {name: (run_id, success == "True") for name, run_id, success in lines}
