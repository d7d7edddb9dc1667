"""Shared parts of the benchmarks: measuring, running a case in a fresh process, results.

Every measured case runs in a subprocess of its own (`python -m bench.<suite> case ...`)
so that its peak RSS is its own; the case prints one `RESULT {json}` line on stdout and
its log (Dagster's console events) goes to `bench/results/tmp/<case>.log`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "bench" / "results"
LOG_DIR = RESULTS_DIR / "tmp"  # ignored by git
RESULT_PREFIX = "RESULT "
CASE_TIMEOUT_S = 600
PACKAGES = (
    "dagster",
    "httpx",
    "httpcore",
    "anyio",
    "orjson",
    "pyarrow",
    "duckdb",
    "SQLAlchemy",
    "psycopg",
    "uvloop",
)


# --- measuring inside a case -------------------------------------------------------------


def current_rss_mb() -> float:
    """The resident set size of this process now (from /proc/self/statm)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """The peak resident set size of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RssSampler:
    """Samples this process's RSS every `interval_s` on a thread, with wall-clock times.

    `peak_between(start, end)` then gives the peak inside one step's time window (Dagster
    event timestamps are wall-clock seconds too), which `ru_maxrss` cannot.
    """

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), current_rss_mb()))
            self._stop.wait(self.interval_s)

    def window(self, start: float, end: float) -> dict[str, float]:
        """RSS at the start of [start, end] and its peak inside (MB)."""
        inside = [rss for t, rss in self.samples if start <= t <= end]
        before = [rss for t, rss in self.samples if t <= start]
        first = before[-1] if before else (inside[0] if inside else 0.0)
        peak = max(inside, default=first)
        return {"rss_at_start_mb": round(first, 1), "peak_rss_mb": round(peak, 1)}

    def quarters(self, start: float, end: float) -> list[float | None]:
        """The peak RSS in each quarter of [start, end]: level when memory is flat."""
        width = (end - start) / 4
        peaks: list[float | None] = []
        for index in range(4):
            low, high = start + index * width, start + (index + 1) * width
            inside = [rss for t, rss in self.samples if low <= t <= high]
            peaks.append(round(max(inside), 1) if inside else None)
        return peaks


def emit_result(result: Mapping[str, Any]) -> None:
    """Hand the case's result to the driver (the one line it reads)."""
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)


# --- running cases from the driver -------------------------------------------------------


def run_case(
    module: str, args: list[str], label: str, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Run `python -m <module> case <args>` in a fresh process; return its RESULT dict."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{label}.log"
    child_env = {**os.environ, **(env or {}), "PYTHONPATH": str(REPO_ROOT)}
    child_env.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    with log_path.open("w") as log:
        done = subprocess.run(
            [sys.executable, "-m", module, "case", *args],
            cwd=REPO_ROOT,
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            timeout=CASE_TIMEOUT_S,
            check=False,
        )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"case {label} failed (exit {done.returncode}); log tail:\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX) :])
    return result


@dataclass
class Series:
    """The runs of one case and the median of each numeric field."""

    name: str
    params: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)

    def median(self) -> dict[str, Any]:
        keys = [k for k, v in self.runs[0].items() if _is_number(v)]
        return {k: _round(statistics.median(run[k] for run in self.runs)) for k in keys}

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": self.params,
            "repeats": len(self.runs),
            "median": self.median(),
            "runs": self.runs,
        }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _round(value: float) -> float:
    return round(value, 3) if abs(value) < 100 else round(value, 1)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def write_results(name: str, document: Mapping[str, Any], quick: bool = False) -> Path:
    """`bench/results/<name>.json`; a quick (smoke) run goes to the ignored `tmp/` instead."""
    folder = LOG_DIR if quick else RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


# --- the local page server --------------------------------------------------------------


@contextmanager
def page_server() -> Iterator[str]:
    """Start `bench.page_server` in its own process; yield its base URL; stop it by PID."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.page_server", "--port", "0"],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the page server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- facts about the machine ------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "cpu": _cpu_model(),
        "memory_gib": round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": _git_commit(),
        "versions": versions,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or None
