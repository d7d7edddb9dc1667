"""A real `dagster-daemon` for tests, started as the README's deployment section does.

`instance_config` picks the instance: the project's `dagster.yaml` (SQLite storage under
`$DAGSTER_HOME`) or `deploy/dagster.yaml` (PostgreSQL, from the `DAGSTER_PG_*` variables
of a throwaway database). Either way the daemon runs the schedules, the sensors (resume,
housekeeping), the run queue, run monitoring and run retries. It is stopped by its PID;
its process group (the code server it started) is killed if it hangs or outlives it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy.engine import make_url

from tests.support.jobs import PROJECT_ROOT
from tests.support.waiting import wait_for

BIN = Path(sys.executable).parent
INSTANCE_CONFIGS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def use_instance_config(
    kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Put the chosen `dagster.yaml` into `$DAGSTER_HOME` (and its database into the env)."""
    home = Path(os.environ["DAGSTER_HOME"])
    if kind == "sqlite":
        shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
        return
    url = make_url(request.getfixturevalue("pg_app_url"))
    for name, value in {
        "DAGSTER_PG_HOST": url.host,
        "DAGSTER_PG_PORT": url.port,
        "DAGSTER_PG_USERNAME": url.username,
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": url.database,
    }.items():
        monkeypatch.setenv(name, str(value))
    shutil.copyfile(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")


def workspace_file(folder: Path) -> Path:
    """A workspace.yaml like the project's, usable from any working directory."""
    workspace = folder / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: translators.definitions\n"
        f"      working_directory: {PROJECT_ROOT}\n      location_name: workflows\n"
    )
    return workspace


@contextmanager
def running_daemon(folder: Path) -> Iterator[Path]:
    """`dagster-daemon run -w workspace.yaml` on the instance of `$DAGSTER_HOME`; yields the
    workspace file, for `dagster job launch -w`."""
    from translators.instance_db import connect

    workspace = workspace_file(folder)
    with connect(dg.DagsterInstance.get()):
        pass  # storage first: the daemon and `dagster job launch` would race for it
    log_path = folder / "daemon.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
        env=dict(os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its code server stays in a group of our own
    )
    try:
        instance = dg.DagsterInstance.get()
        wait_for(lambda: instance.get_daemon_heartbeats(), 120, "the daemon to start")
        yield workspace
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        _reap_group(proc.pid)
        log.close()
        print(log_path.read_text()[-6000:])


def _reap_group(pgid: int) -> None:
    """Waits for the daemon's code server to follow it, then kills what is left of its
    group: a code server whose shutdown fails (its instance database dropped by the test
    meanwhile) would otherwise stay behind, orphaned, for good."""
    try:
        wait_for(lambda: not _group_alive(pgid), 15, "the daemon's code server to exit")
    except AssertionError:
        os.killpg(pgid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process of group `pgid` remains: orphans that exited
    may stay zombies here (nothing reaps them), which `killpg(pgid, 0)` would count."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False
