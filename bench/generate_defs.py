"""Generated definitions folders for load-time benchmarks (issue 8, target P4).

`generate_workflows(folder, n)` writes the bundled service catalog and `n` workflows of
8 steps each, 3 of them SQL (two sql steps and a SQL branch), spread over apps of 10
workflows. Each is the demo's syncEnrichedOrders with its own constants, so no two
files share SQL text (no parser cache across files makes the numbers look better).

    python -m bench.generate_defs FOLDER [N]
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path

REPO_DEFS = Path(__file__).resolve().parent.parent / "workflow_defs"
TEMPLATE = REPO_DEFS / "apps" / "demo-shop" / "workflows" / "syncEnrichedOrders.json"
WORKFLOWS_PER_APP = 10


def _workflow(template: dict, app_id: str, index: int) -> dict:
    """The demo workflow made distinct by `index`, persisting into `app_id`."""
    spec = copy.deepcopy(template)
    spec["name"] = f"Generated workflow {index}"
    spec["variables"]["appId"]["default"] = app_id
    steps = spec["steps"]
    for step in steps:
        if "sql" in step:
            step["sql"] = (
                step["sql"]
                .replace(" ORDER BY o.order_id", f" WHERE o.total_cents >= {index} ORDER BY 1")
                .replace("WHERE status IN", f"WHERE total_cents >= {index} AND status IN")
            )
        if "branch" in step:
            step["branch"]["sql"] = f"SELECT count(*) > {index} FROM enriched_orders"
    extra = copy.deepcopy(next(s for s in steps if s.get("id") == "persist_orders_enriched"))
    extra["id"] = "persist_orders_copy"
    extra["persistToDatabase"]["tableName"] = f"orders_copy_{index}"
    steps.append(extra)
    return spec


def generate_workflows(folder: Path | str, n: int) -> Path:
    """Writes a definitions folder with `n` generated workflows under `folder`; returns it."""
    root = Path(folder)
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(REPO_DEFS / "services", root / "services")
    template = json.loads(TEMPLATE.read_text())
    for index in range(n):
        app_id = f"gen-app-{index // WORKFLOWS_PER_APP:03d}"
        path = root / "apps" / app_id / "workflows" / f"wf{index:04d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_workflow(template, app_id, index), indent=2))
    return root


if __name__ == "__main__":
    target = generate_workflows(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 500)
    print(target)
