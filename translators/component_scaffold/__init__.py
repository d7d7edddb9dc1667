"""`dg scaffold defs translators.component.WorkflowsComponent <path>`: a defs.yaml and an
example `workflow_defs/` (one service, one app, one workflow, a schedule) to start from.

The example calls the bundled demo shop service (`python -m demo.server`, or any service
answering `GET /products` with offset paging) and upserts into the app's `products`
table, which `apps/example/tables.sql` creates (the workflows never create tables).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

EXAMPLE = Path(__file__).parent / "example"
DEFS_DIR = "workflow_defs"


class WorkflowsScaffolder(dg.Scaffolder):
    """Writes defs.yaml (`defs_dir: workflow_defs`) and copies the example tree beside it."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        dg.scaffold_component(request, {"defs_dir": DEFS_DIR})
        target = Path(request.target_path) / DEFS_DIR
        # An existing folder is the user's work: never overwrite it.
        if not target.exists():
            shutil.copytree(EXAMPLE, target)
