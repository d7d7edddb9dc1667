"""Issue 8's targets P1-P6: every case and its comparators in one run, side by side.

`run_suite` runs each measured case in a fresh process (`bench.common.run_case`), the
servers' own capacity first (they must not be what bounds a figure), then computes
`targets` (`bench.target_checks`): for each of P1..P6 its figure, comparator, ratio,
target and whether it is met. A missed target is run once more under cProfile and its
top 20 saved under `results/profiles/` (`bench.profiling`).

`python -m bench.run_all --only targets [--quick]` writes `results/targets.json`.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import dlt_compare, p4_load, profiling
from bench.common import LOG_DIR, RESULTS_DIR, Series, log, machine_facts, page_server, run_case
from bench.persist import fresh_database, postgres_server, server_version
from bench.target_checks import evaluate

SCS = "bench.service_call_streaming"


@dataclass(frozen=True)
class Sizes:
    records: int  # P1 / P5: records paged, 100 a page
    items: int  # P2: forEach calls
    parallel: int
    delay_ms: int
    dynamic_items: int  # P2: DynamicOut mapped steps
    rows: int  # P3: upserted rows and the COPY / executemany comparators
    to_sql_rows: int
    workflows: int  # P4
    capacity_pages: int
    capacity_calls: int
    step_load_runs: int  # P4: step processes of each folder, in turn


FULL = Sizes(1_000_000, 10_000, 50, 20, 500, 1_000_000, 100_000, 500, 5_000, 10_000, 5)
QUICK = Sizes(2_000, 200, 50, 20, 10, 2_000, 500, 5, 100, 200, 1)


def _series(name: str, module: str, args: list[str], repeats: int, **env: str) -> Series:
    series = Series(name, {"module": module, "args": args})
    for attempt in range(repeats):
        log(f"targets: {name} run {attempt + 1}/{repeats}")
        series.runs.append(run_case(module, args, f"targets-{name}-{attempt + 1}", env or None))
    return series


def http_cases(sizes: Sizes, repeats: int) -> dict[str, Series]:
    """P1, P2, P5 and the servers' capacity, against one page server."""
    out: dict[str, Series] = {}
    with page_server() as url:
        base = ["--base-url", url]
        n, items = str(sizes.records), str(sizes.items)
        cap = ["pages", *base, "--pages", str(sizes.capacity_pages)]
        out["server_pages"] = _series("server_pages", "bench.capacity", cap, repeats)
        lat = ["latency", *base, "--calls", str(sizes.capacity_calls)]
        lat += ["--parallel", str(sizes.parallel), "--delay-ms", str(sizes.delay_ms)]
        out["server_latency"] = _series("server_latency", "bench.capacity", lat, repeats)
        bare = ["bare", *base, "--records", n, "--decoder", "orjson"]
        out["p1_bare"] = _series("p1_bare", SCS, bare, repeats)
        out["p1_job"] = _series("p1_job", SCS, ["pages", *base, "--records", n], repeats)
        each = ["for-each", *base, "--items", items, "--parallel", str(sizes.parallel)]
        each += ["--delay-ms", str(sizes.delay_ms)]
        out["p2_for_each"] = _series("p2_for_each", SCS, each, repeats)
        dyn = [*base, "--items", str(sizes.dynamic_items), "--delay-ms", str(sizes.delay_ms)]
        out["p2_dynamic_out"] = _series("p2_dynamic_out", "bench.dynamic_out", dyn, 1)
        dlt = [*base, "--records", n]
        out["p5_dlt"] = _series("p5_dlt", "bench.dlt_compare", dlt, 1)
    return out


def postgres_cases(sizes: Sizes, repeats: int) -> tuple[dict[str, Series], str]:
    """P3: the upsert through the job, then the comparators, each in a fresh database."""
    out: dict[str, Series] = {}
    plan = {
        "p3_upsert": ("bench.persist", ["--db", "postgres", "--mode", "upsert"], sizes.rows),
        "p3_copy": ("bench.p3_compare", ["--kind", "copy"], sizes.rows),
        "p3_merge": ("bench.p3_compare", ["--kind", "merge"], sizes.rows),
        "p3_executemany": ("bench.p3_compare", ["--kind", "executemany"], sizes.rows),
        "p3_to_sql": ("bench.p3_compare", ["--kind", "to_sql"], sizes.to_sql_rows),
    }
    with postgres_server() as server_url:
        version = server_version(server_url)
        for name, (module, args, rows) in plan.items():
            series = Series(name, {"module": module, "args": [*args, "--rows", str(rows)]})
            for attempt in range(repeats):
                log(f"targets: {name} run {attempt + 1}/{repeats}")
                with fresh_database(server_url) as url:
                    label = f"targets-{name}-{attempt + 1}"
                    case_args = [*args, "--rows", str(rows)]
                    series.runs.append(run_case(module, case_args, label, {"APP_DB_URL": url}))
            out[name] = series
    return out, version


def load_case(sizes: Sizes, repeats: int) -> dict[str, Any]:
    """P4: fresh processes loading a generated folder."""
    log("targets: P4 load of generated workflows")
    with tempfile.TemporaryDirectory(prefix="bench-p4-") as tmp:
        return p4_load.measure(Path(tmp), sizes.workflows, repeats, sizes.step_load_runs)


def demo_case(sizes: Sizes, repeats: int) -> dict[str, Series]:
    """P6: the demo workflow with `workflows run`."""
    return {"p6_demo": _series("p6_demo", "bench.p6_demo", [], repeats)}


def run_groups(sizes: Sizes, repeats: int, quick: bool) -> tuple[dict[str, Series], str, Any]:
    """The four groups of cases; at once in a quick (smoke) run, whose figures mean
    nothing anyway, one after the other when measuring."""
    if quick:
        with ThreadPoolExecutor(4) as pool:
            http_f = pool.submit(http_cases, sizes, repeats)
            pg_f = pool.submit(postgres_cases, sizes, repeats)
            p4_f = pool.submit(load_case, sizes, repeats)
            demo_f = pool.submit(demo_case, sizes, repeats)
            http, (pg, version) = http_f.result(), pg_f.result()
            p4, demo = p4_f.result(), demo_f.result()
    else:
        http = http_cases(sizes, repeats)
        pg, version = postgres_cases(sizes, repeats)
        p4 = load_case(sizes, repeats)
        demo = demo_case(sizes, repeats)
    return {**http, **pg, **demo}, version, p4


def run_suite(repeats: int = 3, quick: bool = False, profile: bool | None = None) -> dict[str, Any]:
    machine = machine_facts()  # before the load of the runs
    sizes = QUICK if quick else FULL
    series, pg_version, p4 = run_groups(sizes, repeats, quick)
    medians = {name: s.median() for name, s in series.items()}
    medians["p4"] = p4
    medians["p6_demo"]["step_s"] = series["p6_demo"].runs[0]["step_s"]
    targets = evaluate(medians, asdict(sizes))
    if profile if profile is not None else not quick:
        folder = (LOG_DIR if quick else RESULTS_DIR) / "profiles"
        profiling.profile_missed(targets, series, folder, sizes.workflows)
    return {
        "suite": "targets",
        "machine": machine,
        "postgres": pg_version,
        "dlt_installed": dlt_compare.installed(),
        "quick": quick,
        "sizes": asdict(sizes),
        "targets": targets,
        "p4": p4,
        "series": [s.as_json() for s in series.values()],
    }
