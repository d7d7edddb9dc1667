"""P6: the demo workflow run by `workflows run`, against the sum of its steps' durations.

The case starts the bundled demo services (`demo.server`, a thread of this process),
creates the demo app's tables in a SQLite file of a temporary data folder, and runs
`python -m translators run demo-shop/syncEnrichedOrders` as a child process from the
project root with a fresh `DAGSTER_HOME`, so the run gets the project's `dagster.yaml`
and the workflow's own settings: the default settings a user gets. Its wall time is
from spawning the command to its exit. The steps' own durations come from the run's
event log (each step's STEP_START to its STEP_SUCCESS / STEP_FAILURE); the result also
says how long the command took before the run started and after it ended.

`python -m bench.p6_demo case` prints one RESULT line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, emit_result

WORKFLOW = "demo-shop/syncEnrichedOrders"
_RUN_LINE = re.compile(r"^run ([0-9a-f-]{36}): (SUCCESS|FAILURE)", re.MULTILINE)
# Variables of the caller that would point the run elsewhere than its temporary folders.
_CLEARED = ("APP_DB_URL", "TABLE_STORE_ROOT", "WORKFLOW_DEFS_DIR", "DAGSTER_HOME")


def step_windows(home: Path, run_id: str) -> tuple[dict[str, float], dict[str, float]]:
    """Each step's seconds and the run's RUN_START / RUN_SUCCESS-or-FAILURE timestamps."""
    from translators.cli_run import cli_instance

    starts: dict[str, float] = {}
    steps: dict[str, float] = {}
    run: dict[str, float] = {}
    with cli_instance(home) as instance:
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None:
                continue
            kind, key = event.event_type.name, event.step_key
            if key and kind == "STEP_START":
                starts[key] = entry.timestamp
            elif key and kind in ("STEP_SUCCESS", "STEP_FAILURE") and key in starts:
                steps[key] = round(entry.timestamp - starts[key], 3)
            elif kind in ("RUN_START", "RUN_SUCCESS", "RUN_FAILURE"):
                run[kind] = entry.timestamp
    return steps, run


def run_demo(root: Path, profile_child: str | None = None) -> dict[str, Any]:
    """Run the demo workflow with `workflows run` under `root`; its figures. With
    `profile_child`, the command runs under cProfile writing that file."""
    from demo.app_schema import ensure_demo_schema_for_app
    from demo.server import demo_secrets_env, running_demo_server, service_base_url_env

    for name in _CLEARED:
        os.environ.pop(name, None)
    home = root / "dagster_home"
    os.environ["WORKFLOWS_DATA_DIR"] = str(root / "data")
    with running_demo_server(end_date=dt.date.today()) as base_url:
        os.environ.update(service_base_url_env(base_url))
        os.environ.update(demo_secrets_env())
        ensure_demo_schema_for_app(WORKFLOW.split("/")[0])
        env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)}
        env.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
        profiler = ["-m", "cProfile", "-o", profile_child] if profile_child else []
        spawned = time.time()
        done = subprocess.run(
            [sys.executable, *profiler, "-m", "translators", "run", WORKFLOW],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        exited = time.time()
    found = _RUN_LINE.search(done.stdout)
    if done.returncode != 0 or not found or found.group(2) != "SUCCESS":
        raise RuntimeError(f"workflows run failed ({done.returncode}):\n{done.stdout[-3000:]}")
    steps, run = step_windows(home, found.group(1))
    wall_s = exited - spawned
    steps_sum = sum(steps.values())
    end = run.get("RUN_SUCCESS", exited)
    return {
        "workflow": WORKFLOW,
        "wall_s": round(wall_s, 3),
        "steps_sum_s": round(steps_sum, 3),
        "overhead_s": round(wall_s - steps_sum, 3),
        "steps": len(steps),
        "step_s": steps,
        "before_run_start_s": round(run.get("RUN_START", spawned) - spawned, 3),
        "run_s": round(end - run.get("RUN_START", spawned), 3),
        "after_run_end_s": round(exited - end, 3),
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench.p6_demo case")
    parser.add_argument("--profile-child", help="run `workflows run` under cProfile into this file")
    args = parser.parse_args(argv[1:] if argv[:1] == ["case"] else argv)
    with tempfile.TemporaryDirectory(prefix="bench-p6-") as tmp:
        emit_result(run_demo(Path(tmp), args.profile_child))


if __name__ == "__main__":
    main()
