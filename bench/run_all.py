"""Run every benchmark and write `bench/results/<suite>.json` and `bench/results/summary.md`.

.venv/bin/python -m bench.run_all                 # every suite: targets, then the details
.venv/bin/python -m bench.run_all --only targets  # issue 8's P1-P6 with their comparators
.venv/bin/python -m bench.run_all --quick         # small sizes, results under results/tmp/
.venv/bin/python -m bench.run_all --only persist
.venv/bin/python -m bench.run_all --summary    # re-render summary.md from the JSON files
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from bench import persist, service_call_streaming, summary, summary_targets, targets
from bench.common import LOG_DIR, RESULTS_DIR, log

SUITES = {
    "targets": targets.run_suite,
    "service_call_streaming": service_call_streaming.run_suite,
    "persist": persist.run_suite,
}


def _load(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


README = RESULTS_DIR.parents[1] / "README.md"
README_START, README_END = "<!-- bench-targets:start -->", "<!-- bench-targets:end -->"


def update_readme(document: dict[str, Any]) -> None:
    """The README's targets table (between its markers) from a full run's targets.json."""
    text = README.read_text()
    if README_START not in text or README_END not in text:
        return
    head, rest = text.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    body = [summary_targets.machine_line(document), "", *summary_targets.table(document["targets"])]
    README.write_text(head + README_START + "\n" + "\n".join(body) + "\n" + README_END + tail)


def write_summary(folder: Path) -> Path:
    lines = summary_targets.render(_load(folder, "targets"))
    scs, persisted = _load(folder, "service_call_streaming"), _load(folder, "persist")
    text = "\n".join(["# Benchmark results", "", *lines]) if lines else ""
    if scs or persisted:
        details = summary.render(scs, persisted)
        text = text + details.split("\n", 2)[2] if text else details
    path = folder / "summary.md"
    path.write_text(text)
    targets_document = _load(folder, "targets")
    if folder == RESULTS_DIR and targets_document and not targets_document.get("quick"):
        update_readme(targets_document)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run_all")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case (median)")
    parser.add_argument("--quick", action="store_true", help="small sizes; into results/tmp/")
    parser.add_argument("--only", choices=sorted(SUITES), action="append")
    parser.add_argument("--summary", action="store_true", help="only re-render summary.md")
    parser.add_argument("--no-profile", action="store_true", help="targets: no profile of a miss")
    parser.add_argument("--out", type=Path, help="results folder (default results/, quick: tmp/)")
    args = parser.parse_args(argv)
    folder = args.out or (LOG_DIR if args.quick else RESULTS_DIR)
    if args.summary:
        log(f"wrote {write_summary(folder)}")
        return
    started = time.monotonic()
    for name in args.only or list(SUITES):
        log(f"suite {name}")
        suite_started = time.monotonic()
        if name == "targets":
            profile = False if args.no_profile else None  # None: profile misses unless quick
            document = targets.run_suite(args.repeats, args.quick, profile)
        else:
            document = SUITES[name](args.repeats, args.quick)
        document["suite_seconds"] = round(time.monotonic() - suite_started, 1)
        document["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.json"
        path.write_text(json.dumps(document, indent=2, default=str) + "\n")
        log(f"wrote {path}")
    total_s = time.monotonic() - started
    log(f"all done in {total_s / 60:.1f} min; wrote {write_summary(folder)}")


if __name__ == "__main__":
    main()
