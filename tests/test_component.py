"""WorkflowsComponent (issue 12): the same definitions as the code location, and the whole
`dg` path in a fresh virtualenv with the built wheel installed (not this source tree).

The `dg` tests share one project (module fixture): a plain Python asset beside a
scaffolded WorkflowsComponent. Its `.venv` is a new virtualenv holding the wheel and
dagster-dg-cli; the heavy third-party packages (dagster, pandas, pyarrow, ...) come from
this project's `.venv` through a `.pth` file, which adds their folder to `sys.path` but
not its editable finder, so `translators` can only come from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
from pathlib import Path

import dagster as dg
import pytest

from demo.server import demo_secrets_env, running_demo_server, service_base_url_env
from resources.secrets import redact
from translators.component import NamedUrlAppDatabaseResource, WorkflowsComponent
from translators.definitions import (
    VALIDATION_CLI_ENV,
    WorkflowDefinitionsInvalid,
    build_definitions,
    check_for_validation,
    load_plans,
)
from translators.loader import load_definitions
from translators.location import defs_dir

ROOT = Path(__file__).resolve().parent.parent
COMPONENT = "translators.component.WorkflowsComponent"
EXAMPLE_JOB = "example__syncProducts"
EXAMPLE_SCHEDULE = "example__nightly_products"
# The app-table asset of the example and the service operation it reads (issue 9), as
# `dg list defs` shows their keys.
EXAMPLE_APP_TABLE_ASSETS: list[str] = ["example/products", "shop/listProducts"]
DG_TIMEOUT = 120


# ---------- in this process: same definitions, attributes ----------


def _names(defs: dg.Definitions) -> dict[str, set[str]]:
    repo = defs.get_repository_def()
    return {
        "jobs": {j.name for j in repo.get_all_jobs() if not j.name.startswith("__")},
        "schedules": {s.name for s in repo.schedule_defs},
        "sensors": {s.name for s in repo.sensor_defs},
        "resources": set(defs.resources or {}),
    }


def test_component_builds_the_code_locations_definitions() -> None:
    component = WorkflowsComponent(defs_dir=str(defs_dir()))
    assert _names(dg.build_defs_for_component(component)) == _names(build_definitions(load_plans()))


def test_apps_subset_and_executor_defaults(tmp_path: Path) -> None:
    example = ROOT / "translators" / "component_scaffold" / "example"
    defs = dg.build_defs_for_component(
        WorkflowsComponent(defs_dir=str(example), apps=["example"], max_parallel_steps=1)
    )
    # maxParallelSteps 1 is Dagster's in-process executor; the default (4) is threads.
    assert defs.resolve_job_def(EXAMPLE_JOB).executor_def.name == "in_process"
    with pytest.raises(ValueError, match=r"no app 'exampel'.*did you mean 'example'"):
        dg.build_defs_for_component(WorkflowsComponent(defs_dir=str(example), apps=["exampel"]))


def test_database_url_from_a_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    db = NamedUrlAppDatabaseResource(url_env={"shop": "SHOP_DB_URL_T12"})
    monkeypatch.delenv("SHOP_DB_URL_T12", raising=False)
    with pytest.raises(Exception, match=r"SHOP_DB_URL_T12.*is unset"):
        db.url_for("shop")
    monkeypatch.setenv("SHOP_DB_URL_T12", "postgres://app:s3cret-t12@db.internal/shop")
    assert db.url_for("shop") == "postgresql://app:s3cret-t12@db.internal/shop"
    assert "s3cret-t12" not in redact("connect failed: app:s3cret-t12@db.internal")


def test_problems_fail_dagsters_validation_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = ROOT / "translators" / "component_scaffold" / "example"
    folder = tmp_path / "workflow_defs"
    shutil.copytree(example, folder)
    (folder / "apps" / "example" / "workflows" / "broken.json").write_text('{"steps": []}')
    loaded = load_definitions(folder)
    monkeypatch.delenv(VALIDATION_CLI_ENV, raising=False)
    check_for_validation(loaded)  # a normal load keeps the failing job instead
    monkeypatch.setenv(VALIDATION_CLI_ENV, "1")
    with pytest.raises(WorkflowDefinitionsInvalid, match=r"apps/example/workflows/broken\.json#/"):
        check_for_validation(loaded)


def test_schema_rejects_bad_attributes() -> None:
    with pytest.raises(Exception, match="max_parallel"):
        WorkflowsComponent.resolve_from_yaml("defs_dir: workflow_defs\nmax_parallel: 2\n")
    with pytest.raises(Exception, match="never the URL") as caught:
        WorkflowsComponent.resolve_from_yaml(
            "database_url_env: {shop: 'postgresql://u:pw-t12@h/db'}\n"
        )
    assert "pw-t12" not in str(caught.value)


# ---------- a fresh virtualenv, the wheel, dg ----------


class DgProject:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.defs = root / "my_proj" / "defs"

    def dg(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.root / ".venv" / "bin" / "dg"), *args],
            cwd=self.root,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=DG_TIMEOUT,
        )

    def list_defs(self) -> dict[str, set[str]]:
        done = self.dg("list", "defs", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        listed = json.loads(done.stdout[done.stdout.index("{") :])
        return {
            section: {str(item.get("asset_key") or item.get("name")) for item in listed[section]}
            for section in ("assets", "jobs", "schedules", "sensors")
        }


PLAIN_ASSET = '''import dagster as dg


@dg.asset
def plain_numbers() -> list[int]:
    """A plain Python asset of the existing project."""
    return [1, 2, 3]
'''

DEFINITIONS = """from pathlib import Path

import dagster as dg
from dagster.components import load_from_defs_folder


@dg.definitions
def defs() -> dg.Definitions:
    return load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


def _run(*cmd: str, **kwargs) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=DG_TIMEOUT, **kwargs)
    assert done.returncode == 0, f"{cmd}: {done.stdout}\n{done.stderr}"


def _write_project(root: Path) -> None:
    (root / "pyproject.toml").write_text(
        '[project]\nname = "my-proj"\nversion = "0.0.1"\n\n'
        '[tool.dg]\ndirectory_type = "project"\n\n'
        '[tool.dg.project]\nroot_module = "my_proj"\n'
    )
    defs = root / "my_proj" / "defs"
    defs.mkdir(parents=True)
    (root / "my_proj" / "__init__.py").write_text("")
    (root / "my_proj" / "definitions.py").write_text(DEFINITIONS)
    (defs / "__init__.py").write_text("")
    (defs / "plain_asset.py").write_text(PLAIN_ASSET)


def _make_venv(root: Path, wheel: Path) -> None:
    venv = root / ".venv"
    base = getattr(sys, "_base_executable", sys.executable)
    _run(base, "-m", "venv", "--without-pip", str(venv))
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    # After the venv's own site-packages: the project (as an installed project would be)
    # and the shared third-party packages.
    (site / "shared.pth").write_text(f"{root}\n{sysconfig.get_paths()['purelib']}\n")
    _run(
        str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
        "--no-deps", "--force-reinstall", str(wheel), "dagster-dg-cli==1.13.27",
        "dagster-dg-core==1.13.27",
    )  # fmt: skip


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> DgProject:
    tmp = tmp_path_factory.mktemp("dg")
    _run(
        sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
        "-w", str(tmp / "wheels"), str(ROOT),
    )  # fmt: skip
    wheel = next((tmp / "wheels").glob("dagster_json_workflows-*.whl"))
    root = tmp / "my-proj"
    root.mkdir()
    _write_project(root)
    _make_venv(root, wheel)
    home = tmp / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE"}
    env = {k: v for k, v in os.environ.items() if k in keep}
    env |= {
        "PATH": f"{root / '.venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
        "VIRTUAL_ENV": str(root / ".venv"),
        "DAGSTER_HOME": str(home),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "WORKFLOWS_DATA_DIR": str(tmp / "data"),
    }
    where = "import translators; print(translators.__file__)"
    found = subprocess.run(
        [str(root / ".venv" / "bin" / "python"), "-c", where],
        cwd=root, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert str(root / ".venv") in found.stdout, found.stdout + found.stderr  # the wheel's
    dg_project = DgProject(root, env)
    components = dg_project.dg("list", "components")
    assert COMPONENT in components.stdout, components.stdout + components.stderr
    done = dg_project.dg("scaffold", "defs", COMPONENT, "my_workflows")
    assert done.returncode == 0, done.stdout + done.stderr
    return dg_project


def test_scaffold_writes_defs_yaml_and_an_example_tree(project: DgProject) -> None:
    folder = project.defs / "my_workflows"
    assert f"type: {COMPONENT}" in (folder / "defs.yaml").read_text()
    assert "defs_dir: workflow_defs" in (folder / "defs.yaml").read_text()
    tree = folder / "workflow_defs"
    assert (tree / "services" / "shop.json").is_file()
    assert (tree / "apps" / "example" / "workflows" / "syncProducts.json").is_file()
    assert (tree / "apps" / "example" / "schedules.json").is_file()


def test_check_and_list_show_the_asset_and_the_workflows(project: DgProject) -> None:
    done = project.dg("check", "defs")
    assert done.returncode == 0, done.stdout + done.stderr
    listed = project.list_defs()
    assert "plain_numbers" in listed["assets"]
    assert EXAMPLE_JOB in listed["jobs"]
    assert EXAMPLE_SCHEDULE in listed["schedules"]
    assert set(EXAMPLE_APP_TABLE_ASSETS) <= listed["assets"]


def test_launch_runs_a_workflow_against_the_demo_services(project: DgProject) -> None:
    data = Path(project.env["WORKFLOWS_DATA_DIR"])
    (data / "apps").mkdir(parents=True, exist_ok=True)
    tables = project.defs / "my_workflows" / "workflow_defs" / "apps" / "example" / "tables.sql"
    with sqlite3.connect(data / "apps" / "example.sqlite") as conn:
        conn.executescript(tables.read_text())
    with running_demo_server() as base_url:
        env = service_base_url_env(base_url) | demo_secrets_env()
        done = project.dg("launch", "--job", EXAMPLE_JOB, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with sqlite3.connect(data / "apps" / "example.sqlite") as conn:
        rows = conn.execute("SELECT count(*), count(synced_at) FROM products").fetchone()
    assert rows[0] > 0 and rows[0] == rows[1]


def test_check_reports_a_broken_workflow_and_the_rest_still_loads(project: DgProject) -> None:
    broken = (
        project.defs / "my_workflows" / "workflow_defs" / "apps" / "example" / "workflows"
    ) / "broken.json"
    broken.write_text('{"steps": [{"id": "x", "service": "shop", "operation": "nope"}]}')
    try:
        done = project.dg("check", "defs")
        listed = project.list_defs()
    finally:
        broken.unlink()
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "apps/example/workflows/broken.json#/steps/0/operation" in output
    assert "plain_numbers" in listed["assets"]
    assert {EXAMPLE_JOB, "example__broken"} <= listed["jobs"]


def test_check_explains_a_bad_component_attribute(project: DgProject) -> None:
    folder = project.defs / "bad_workflows"
    folder.mkdir()
    (folder / "defs.yaml").write_text(
        f"type: {COMPONENT}\nattributes:\n  defs_dir: workflow_defs\n  max_parallel: 2\n"
    )
    try:
        done = project.dg("check", "defs")
    finally:
        (folder / "defs.yaml").unlink()
        folder.rmdir()
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "max_parallel" in output and "defs.yaml" in output
