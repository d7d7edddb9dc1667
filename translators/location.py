"""Where the definitions live, without loading them."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def defs_dir() -> Path:
    """`$WORKFLOW_DEFS_DIR`, else `workflow_defs/` beside this package."""
    return Path(os.environ.get("WORKFLOW_DEFS_DIR") or PROJECT_ROOT / "workflow_defs").resolve()
