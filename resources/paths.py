"""Where the project keeps its local files when nothing else is configured."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The folder for embedded app databases and the default table store.

    `$WORKFLOWS_DATA_DIR` when set, else `.data` under the current directory: the CLI,
    `dagster dev` and the run workers all start in the project folder (workspace.yaml sets
    the working directory), so they agree on it.
    """
    return Path(os.environ.get("WORKFLOWS_DATA_DIR") or Path.cwd() / ".data").resolve()
