"""P4: loading the definitions of many generated workflows, and what one step pays for it.

Cases, each timed as a fresh process from spawn to exit (what a code server, a run
worker or a step process pays), so Python's own start is in every figure:
- `import-dagster`: `python -c "import dagster"`, the comparator;
- `load`: the code location: `translators.definitions.load()` over a folder of N
  generated workflows (`$WORKFLOW_DEFS_DIR`), then every job resolved, as Dagster does;
- `step-load`: what a step process of one run does under the multiprocess executor:
  rebuild its job from the reconstructable target (`translators.cli_runs.reconstructable`),
  with the N-workflow folder and with a folder holding only that workflow, in turn.

All share one fresh data folder, so the first `load` finds the plan cache cold (its
`runs_s[0]`) and the later ones warm, as a restarted code server does.

The workflows come from `bench.generate_defs.generate_workflows(folder, n)` when that
module exists, else from `placeholder_workflows` below (8 steps, 3 of them SQL).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT

APP_ID = "bench"
SERVICE = "benchsvc"

LOAD_SCRIPT = """
import translators.definitions as m
loaded, defs = m.load()
jobs = defs.resolve_all_job_defs()
assert len(jobs) >= {n}, len(jobs)
"""
# Dagster's own share: the same jobs (ops, inputs, outputs, tags, dependencies) rebuilt
# from plain OpDefinitions with empty bodies, then resolved; prints those seconds only.
FLOOR_SCRIPT = """
import time
import dagster as dg
import translators.definitions as m
loaded, defs = m.load()
ours = [job for job in defs.resolve_all_job_defs() if not job.name.startswith("__")]
def body(context, inputs):
    yield from ()
started = time.perf_counter()
jobs = []
for job in ours:
    graph = job.graph
    ops = [
        dg.OpDefinition(
            name=node.definition.name,
            compute_fn=body,
            ins={i.name: dg.In(i.dagster_type) for i in node.definition.input_defs},
            outs={o.name: dg.Out(o.dagster_type, is_required=o.is_required)
                   for o in node.definition.output_defs},
            required_resource_keys=set(node.definition.required_resource_keys),
            tags=dict(node.definition.tags),
            description=node.definition.description,
            config_schema=node.definition.config_schema,
        )
        for node in graph.nodes
    ]
    copy = dg.GraphDefinition(
        name=job.name, node_defs=ops, dependencies=graph.dependencies,
        description=job.description,
    )
    jobs.append(copy.to_job(executor_def=dg.in_process_executor, tags=dict(job.tags)))
dg.Definitions(jobs=jobs, resources=dict(defs.resources or {})).resolve_all_job_defs()
print(time.perf_counter() - started)
"""
STEP_LOAD_SCRIPT = """
from translators.cli_runs import reconstructable
job = reconstructable({job!r}).get_definition()
assert job.name == {job!r}
"""


def _placeholder_workflow(index: int) -> dict[str, Any]:
    schema = {"id": "VARCHAR", "amount": "BIGINT", "kind": "VARCHAR"}
    page = {"type": "cursor", "cursorField": "meta.nextCursor", "cursorParam": "cursor"}
    fetch: dict[str, Any] = {"service": SERVICE, "operation": "listRecords", "paginate": page}
    fetch |= {"dataPath": "data", "outputSchema": schema}
    persist: dict[str, Any] = {"appId": APP_ID, "sourceTable": "per_kind", "mode": "append"}
    persist |= {"fieldMapping": {"kind": "kind", "total": "total"}}
    return {
        "name": f"Generated workflow {index}",
        "steps": [
            {"id": "fetch_a", **fetch, "params": {"limit": 100}, "outputTable": "a"},
            {"id": "fetch_b", **fetch, "params": {"limit": 50}, "outputTable": "b"},
            {"sql": "SELECT * FROM a UNION ALL SELECT * FROM b", "outputTable": "ab"},
            {
                "sql": "SELECT kind, sum(amount) AS total FROM ab GROUP BY kind",
                "outputTable": "per_kind",
            },
            {"id": "has_rows", "branch": {"sql": "SELECT count(*) > 0 FROM per_kind"}},
            {
                "id": "persist_totals",
                "dependsOn": ["has_rows"],
                "persistToDatabase": {**persist, "tableName": f"totals_{index}"},
            },
            {"sql": f"SELECT count(*) AS n, {index} AS w FROM ab", "outputTable": "counts"},
            {
                "id": "persist_counts",
                "persistToDatabase": {
                    **persist,
                    "sourceTable": "counts",
                    "tableName": f"counts_{index}",
                    "fieldMapping": {"n": "n", "w": "w"},
                },
            },
        ],
    }


def placeholder_workflows(folder: Path, n: int) -> list[str]:
    """`folder` as a definitions folder of n workflows; their job names."""
    services = folder / "services"
    services.mkdir(parents=True, exist_ok=True)
    catalog: dict[str, Any] = {
        "name": SERVICE,
        "baseUrl": "http://127.0.0.1:9",
        "operations": {"listRecords": {"method": "GET", "path": "/records"}},
    }
    (services / f"{SERVICE}.json").write_text(json.dumps(catalog))
    workflows = folder / "apps" / APP_ID / "workflows"
    workflows.mkdir(parents=True, exist_ok=True)
    for index in range(n):
        (workflows / f"wf{index:04d}.json").write_text(json.dumps(_placeholder_workflow(index)))
    return [f"{APP_ID}__wf{index:04d}" for index in range(n)]


def generator() -> tuple[str, Callable[[Path, int], Any]]:
    """The translators' generator when it exists, else the placeholder."""
    try:
        from bench.generate_defs import generate_workflows
    except ImportError:
        return "bench.p4_load.placeholder_workflows", placeholder_workflows
    return "bench.generate_defs.generate_workflows", generate_workflows


def job_names(folder: Path) -> list[str]:
    """The job names of a generated folder, as the loader names them."""
    from translators.loader import load_definitions

    loaded = load_definitions(folder)
    if not loaded.ok:
        raise RuntimeError("\n".join(str(p) for p in loaded.problems[:5]))
    return sorted(w.job_name for w in loaded.workflows)


def run_python(code: str, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Seconds from spawning `python -c code` to its exit (it must succeed), and its stdout."""
    child_env = {**os.environ, **(env or {}), "PYTHONPATH": str(REPO_ROOT)}
    child_env.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"python -c failed: {done.stderr[-2000:]}")
    return seconds, done.stdout


def dagster_floor(repeats: int, env: dict[str, str]) -> dict[str, Any]:
    """Median seconds Dagster alone takes to build and resolve the same jobs (the script
    prints them: its start and imports are not counted)."""
    runs = [
        round(float(run_python(FLOOR_SCRIPT, env)[1].strip().splitlines()[-1]), 3)
        for _ in range(repeats)
    ]
    return {"median_s": round(statistics.median(runs), 3), "runs_s": runs}


def median_of(repeats: int, code: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    runs = [round(run_python(code, env)[0], 3) for _ in range(repeats)]
    return {"median_s": round(statistics.median(runs), 3), "runs_s": runs}


def measure(root: Path, workflows: int, repeats: int, step_load_runs: int) -> dict[str, Any]:
    """Every P4 figure: generate both folders, then time the fresh processes."""
    name, generate = generator()
    many, one = root / "many", root / "one"
    started = time.perf_counter()
    generate(many, workflows)
    generate_s = time.perf_counter() - started
    generate(one, 1)
    jobs = job_names(many)
    single = job_names(one)[0]
    if single not in jobs:
        raise RuntimeError(f"{single} is not among the generated jobs of the big folder")
    # A data folder of their own: the plan cache in it is cold for the first `load` only.
    data = {"WORKFLOWS_DATA_DIR": str(root / "data")}
    many_env = {"WORKFLOW_DEFS_DIR": str(many), **data}
    step_code = STEP_LOAD_SCRIPT.format(job=single)
    return {
        "generator": name,
        "workflows": len(jobs),
        "generate_s": round(generate_s, 3),
        "import_dagster": median_of(repeats, "import dagster"),
        "load": median_of(repeats, LOAD_SCRIPT.format(n=len(jobs)), many_env),
        "dagster_floor": dagster_floor(repeats, many_env),
        **step_loads(step_load_runs, step_code, many_env, {"WORKFLOW_DEFS_DIR": str(one), **data}),
        "step_job": single,
    }


def step_loads(
    runs: int, code: str, many_env: dict[str, str], one_env: dict[str, str]
) -> dict[str, Any]:
    """The step process with the big folder and with its own workflow alone, in turn:
    a difference of a few hundred ms is what is judged, and the machine's drift over a
    sequence of runs is as large."""
    many: list[float] = []
    one: list[float] = []
    for _ in range(runs):
        many.append(round(run_python(code, many_env)[0], 3))
        one.append(round(run_python(code, one_env)[0], 3))
    return {
        "step_load_many": {"median_s": round(statistics.median(many), 3), "runs_s": many},
        "step_load_one": {"median_s": round(statistics.median(one), 3), "runs_s": one},
    }
