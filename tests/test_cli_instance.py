"""The CLI's Dagster instance: CLI runs started together on a new `DAGSTER_HOME` share one
storage instead of racing to create it (which left alembic with two version heads and
the instance unusable)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.jobs import PROJECT_ROOT

OPEN_INSTANCE = (
    "import sys; from pathlib import Path; from translators.cli_home import cli_instance; "
    "cli_instance(Path(sys.argv[1])).get_runs(); print('ok')"
)


@pytest.mark.integration
def test_processes_opening_a_new_home_together_all_get_a_working_instance(
    tmp_path: Path,
) -> None:
    for round_ in range(2):
        home = tmp_path / f"home{round_}"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_INSTANCE, str(home)],
                cwd=PROJECT_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        results = [proc.communicate(timeout=120) for proc in procs]
        failed = [err for proc, (_, err) in zip(procs, results, strict=True) if proc.returncode]
        assert not failed, failed[0][-500:]
