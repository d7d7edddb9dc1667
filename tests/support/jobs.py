"""Build definitions from a folder and run their jobs through Dagster, for tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import dagster as dg

from translators.definitions import build_definitions
from translators.loader import LoadResult, load_definitions
from translators.schedules import run_config_for

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REAL_DEFS = PROJECT_ROOT / "workflow_defs"


def load(defs_dir: Path) -> tuple[LoadResult, dg.Definitions]:
    loaded = load_definitions(defs_dir)
    assert loaded.ok, "\n".join(str(p) for p in loaded.problems)
    return loaded, build_definitions(loaded)


def run_job(
    defs: dg.Definitions,
    job_name: str,
    params: dict[str, Any] | None = None,
    *,
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """Run a translated job in-process, with its params as `workflows run` passes them."""
    job = defs.resolve_job_def(job_name)
    return job.execute_in_process(
        run_config=run_config_for(params or {}, None, "UTC"),
        instance=instance,
        raise_on_error=raise_on_error,
    )


def write_defs(root: Path, app_id: str, workflows: dict[str, dict], services: tuple = ()) -> Path:
    """A definitions folder: the real catalog entries named in `services`, and workflows."""
    (root / "services").mkdir(parents=True, exist_ok=True)
    for name in services:
        shutil.copy(REAL_DEFS / "services" / f"{name}.json", root / "services" / f"{name}.json")
    folder = root / "apps" / app_id / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    for stem, document in workflows.items():
        (folder / f"{stem}.json").write_text(json.dumps(document, indent=2))
    return root
