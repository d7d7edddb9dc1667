"""The Dagster instance of the CLI commands: `$DAGSTER_HOME`, else `./.dagster_home`."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import dagster as dg
import yaml

MINIMAL_INSTANCE_YAML = """\
# Written by `workflows run`: SQLite storage in this folder (Dagster's default).
telemetry:
  enabled: false
python_logs:
  python_log_level: INFO
"""


def ensure_dagster_home() -> Path:
    """`$DAGSTER_HOME`, else `./.dagster_home`, seeded with the project's `dagster.yaml`
    (so CLI runs land in the same instance that `dagster dev` shows, see README), else
    with a minimal one: without it Dagster warns on every run and shows its banner."""
    home = Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    local_config = Path.cwd() / "dagster.yaml"
    if not (home / "dagster.yaml").exists():
        if local_config.exists():
            shutil.copyfile(local_config, home / "dagster.yaml")
        else:
            (home / "dagster.yaml").write_text(MINIMAL_INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def cli_instance(home: Path) -> dg.DagsterInstance:
    """The instance of `home`, its Python log level INFO unless its config sets one.

    Dagster's default (DEBUG) makes every step process print its engine events to the
    console; the progress lines already say what happened.
    """
    from dagster._core.instance.ref import InstanceRef

    config = yaml.safe_load((home / "dagster.yaml").read_text()) or {}
    python_logs = dict(config.get("python_logs") or {})
    overrides = {}
    if "python_log_level" not in python_logs:
        overrides = {"python_logs": {**python_logs, "python_log_level": "INFO"}}
    # Two CLI runs started together on a new home would both create its SQLite storage
    # and stamp its schema version twice (alembic then refuses the instance for good).
    with (home / ".instance.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home), overrides=overrides))
        _ = instance.run_storage, instance.event_log_storage, instance.schedule_storage
        return instance
