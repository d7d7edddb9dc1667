"""Run the `workflows` command line as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def workflows(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m translators ARGS` with this process's environment; never raises."""
    return subprocess.run(
        [sys.executable, "-m", "translators", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=dict(os.environ),
    )
