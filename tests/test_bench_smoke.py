"""The benchmark harness (bench/) runs every issue 8 target with tiny sizes.

A smoke run: no figure is asserted (the sizes are too small to mean anything), only
that `python -m bench.run_all --quick --only targets` runs each P1..P6 case and its
comparators end to end and writes, for each target, a figure, its comparator, a ratio,
the target and whether it is met. dlt is optional (the `bench` extra): without it the
run records "not installed".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.integration

TARGETS = ("P1", "P2", "P3", "P4", "P5", "P6")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def test_quick_run_writes_every_target(tmp_path: Path, postgres_server_url: str) -> None:
    out = tmp_path / "results"
    env = {**os.environ, "TEST_POSTGRES_URL": postgres_server_url, "PYTHONPATH": "."}
    command = [sys.executable, "-m", "bench.run_all", "--quick", "--only", "targets"]
    done = subprocess.run(
        [*command, "--repeats", "1", "--out", str(out)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    document = json.loads((out / "targets.json").read_text())
    targets = document["targets"]
    assert sorted(targets) == list(TARGETS)
    for key in TARGETS:
        target = targets[key]
        assert _number(target["figure"]), (key, target)
        assert _number(target["comparator_value"]), (key, target)
        assert _number(target["ratio"]), (key, target)
        assert target["target"] and isinstance(target["met"], bool), (key, target)
        for check in target["checks"]:
            assert _number(check["figure"]) and check["comparator"], (key, check)
    dlt = targets["P5"]["checks"][1]
    if document["dlt_installed"]:
        assert _number(dlt["comparator_value"])
    else:
        assert "not installed" in dlt["comparator"]
    summary = (out / "summary.md").read_text()
    assert "## Issue 8 targets" in summary and "| P6 |" in summary
    assert document["machine"]["cores"] and document["machine"]["cpu"]
