"""The profile of a missed target: its case run once more under cProfile, top 20 saved.

`results/profiles/<P>.txt` holds the 20 most expensive functions by cumulative and by
own time (`pstats`). The case runs as in the measured run (a fresh process, the same
arguments) against a fresh page server / PostgreSQL database / generated folder, so
the profile shows what bounds the figure; cProfile's own overhead inflates pure-Python
calls, so read shares, not seconds. cProfile sees the main thread only: time spent in
other threads (steps run in threads of the run worker, forEach's event loop) shows as
the main thread waiting on them, so the HTTP cases (P1, P2, P5: an event loop in its own
thread) are sampled with py-spy over every thread instead when it is installed (the
bench extra installs it): own and cumulative shares of the samples, idle waits left out.
"""

from __future__ import annotations

import collections
import io
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import p4_load
from bench.common import REPO_ROOT, Series, log, page_server
from bench.persist import fresh_database, postgres_server

TOP = 20
# Cases whose work runs in several threads: sampled (py-spy) rather than cProfiled.
THREADED = ("P1", "P2", "P5")
# The series whose case shows what bounds each target.
CASE_OF = {"P1": "p1_job", "P2": "p2_for_each", "P3": "p3_upsert", "P5": "p1_job"}


def top20(profile: Path, title: str) -> str:
    out = io.StringIO()
    out.write(f"# {title}\n")
    for order in ("cumulative", "tottime"):
        out.write(f"\n## top {TOP} by {order}\n")
        stats = pstats.Stats(str(profile), stream=out)
        stats.strip_dirs().sort_stats(order).print_stats(TOP)
    return out.getvalue()


def run_profiled(argv: list[str], profile: Path, env: Mapping[str, str] | None = None) -> None:
    """`python -m cProfile -o profile <argv>` from the project root."""
    child_env = {**os.environ, **(env or {}), "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "cProfile", "-o", str(profile), *argv]
    done = subprocess.run(command, cwd=REPO_ROOT, env=child_env, capture_output=True, check=False)
    if done.returncode != 0 or not profile.exists():
        raise RuntimeError(f"profiled run failed: {done.stderr.decode(errors='replace')[-2000:]}")


def run_sampled(argv: list[str], title: str, env: Mapping[str, str] | None = None) -> str:
    """`py-spy record` of `python <argv>` over every thread; the top functions as text."""
    with tempfile.TemporaryDirectory(prefix="bench-pyspy-") as tmp:
        raw = Path(tmp) / "samples.txt"
        child_env = {**os.environ, **(env or {}), "PYTHONPATH": str(REPO_ROOT)}
        command = [_py_spy() or "py-spy", "record", "-f", "raw", "-r", "200", "-o", str(raw)]
        command += ["--", sys.executable, *argv]
        done = subprocess.run(
            command, cwd=REPO_ROOT, env=child_env, capture_output=True, check=False
        )
        if done.returncode != 0 or not raw.exists():
            stderr = done.stderr.decode(errors="replace")[-2000:]
            raise RuntimeError(f"sampled run failed: {stderr}")
        return _sample_tables(raw.read_text(), title)


def _py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _sample_tables(raw: str, title: str) -> str:
    """Own and cumulative shares per function from py-spy's raw (collapsed) stacks."""
    own: collections.Counter[str] = collections.Counter()
    cumulative: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if any("RssSampler" in frame for frame in frames):
            continue  # the benchmark's own memory sampler, idle in Event.wait
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            cumulative[frame] += int(count)
    out = io.StringIO()
    out.write(f"# {title}\n\n{total} samples at 200/s over every thread (py-spy), idle left out\n")
    for name, counter in (("own", own), ("cumulative", cumulative)):
        out.write(f"\n## top {TOP} by {name} samples\n\n")
        for frame, count in counter.most_common(TOP):
            out.write(f"{count / max(total, 1):7.1%}  {frame}\n")
    return out.getvalue()


def _with_url(args: list[str], url: str) -> list[str]:
    return [url if i and args[i - 1] == "--base-url" else a for i, a in enumerate(args)]


@contextmanager
def _resources(key: str) -> Iterator[dict[str, str]]:
    """What the case of `key` needs running: a page server or a PostgreSQL database."""
    if key in ("P1", "P2", "P5"):
        with page_server() as url:
            yield {"base_url": url}
    elif key == "P3":
        with postgres_server() as server, fresh_database(server) as url:
            yield {"APP_DB_URL": url}
    else:
        yield {}


def profile_case(key: str, series: Mapping[str, Series], out: Path, workflows: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp, _resources(key) as res:
        prof = Path(tmp) / "case.prof"
        if key in CASE_OF:
            params = series[CASE_OF[key]].params
            args = _with_url(list(params["args"]), res.get("base_url", ""))
            env = {"APP_DB_URL": res["APP_DB_URL"]} if "APP_DB_URL" in res else None
            argv = ["-m", params["module"], "case", *args]
            if key in THREADED and _py_spy():
                title = f"{key}: py-spy samples of the case that missed its target"
                out.write_text(run_sampled(argv, title, env))
                return
            run_profiled(argv, prof, env)
        elif key == "P4":
            _, generate = p4_load.generator()
            generate(Path(tmp) / "defs", workflows)
            script = Path(tmp) / "load.py"
            script.write_text(p4_load.LOAD_SCRIPT.format(n=workflows))
            run_profiled([str(script)], prof, {"WORKFLOW_DEFS_DIR": str(Path(tmp) / "defs")})
        else:  # P6: the profile of the `workflows run` process itself
            run_profiled(
                ["-m", "bench.p6_demo", "case", "--profile-child", str(prof)], Path(tmp) / "p6.prof"
            )
        out.write_text(top20(prof, f"{key}: cProfile of the case that missed its target"))


def profile_missed(
    targets: Mapping[str, Any], series: Mapping[str, Series], folder: Path, workflows: int
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for key, result in targets.items():
        out = folder / f"{key}.txt"
        if result["met"]:
            out.unlink(missing_ok=True)  # a profile of an earlier miss would mislead
            continue
        log(f"targets: {key} missed; profiling into {out}")
        try:
            profile_case(key, series, out, workflows)
            inside = out.resolve().is_relative_to(REPO_ROOT)
            result["profile"] = str(out.resolve().relative_to(REPO_ROOT) if inside else out)
        except Exception as error:  # a failed profile must not lose the results
            result["profile"] = f"profiling failed: {error}"[:500]
