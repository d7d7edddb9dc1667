"""Which app databases a workflow reaches (SPEC 8): its own app's, and those its app lists
in `apps/<app_id>/app.json`; checked at load time for a literal appId, before any read or
write for a templated one, and `workflows check --db` checks a param without a default
against the app's own database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.definition_files import WORKFLOW_FILE, workflow
from tests.definition_files import write_defs as write_files
from tests.support.app_tables import execute, rows
from tests.support.cli import workflows
from tests.support.jobs import load, run_job, write_defs
from translators.loader import load_definitions

APP_FILE = "apps/shop/app.json"
IMPORT_INVOICES = {
    "id": "read",
    "importFromDatabase": {"appId": "billing", "tableName": "invoices"},
    "outputTable": "invoices",
    "outputSchema": {"id": "BIGINT"},
}
PERSIST_INVOICES = {
    "id": "save",
    "persistToDatabase": {
        "appId": "billing",
        "tableName": "invoices",
        "sourceTable": "invoices",
        "mode": "append",
        "fieldMapping": {"id": "id"},
    },
}


# ---------------------------------------------------------------------------- check time


def test_a_literal_app_id_of_another_app_is_refused_at_its_pointer(tmp_path: Path) -> None:
    files = {WORKFLOW_FILE: workflow(IMPORT_INVOICES, PERSIST_INVOICES)}
    result = load_definitions(write_files(tmp_path, files))
    found = {p.pointer: str(p) for p in result.problems if p.file == WORKFLOW_FILE}
    for pointer in ("/steps/0/importFromDatabase/appId", "/steps/1/persistToDatabase/appId"):
        text = found.get(pointer, "")
        assert "'billing'" in text and "'shop'" in text, found
        assert f'"databases" in {APP_FILE}' in text, text
    assert "shop__w" in {b.job_name for b in result.broken}


def test_app_json_lets_a_workflow_reach_the_apps_it_lists(tmp_path: Path) -> None:
    files = {
        WORKFLOW_FILE: workflow(IMPORT_INVOICES, PERSIST_INVOICES),
        APP_FILE: {"databases": ["billing"]},
    }
    result = load_definitions(write_files(tmp_path, files))
    assert result.ok, "\n".join(map(str, result.problems))
    [plan] = [w for w in result.workflows if w.stem == "w"]
    assert plan.allowed_app_ids == {"shop", "billing"}


@pytest.mark.parametrize(
    ("content", "pointer", "fragment"),
    [
        pytest.param('{"databases": [', "", "invalid JSON", id="bad-json"),
        pytest.param({"database": ["billing"]}, "/database", "database", id="unknown-key"),
        pytest.param({"databases": ["ok", "bad id"]}, "/databases/1", "bad id", id="bad-app-id"),
        pytest.param({"databases": "billing"}, "/databases", "an array", id="not-a-list"),
    ],
)
def test_app_json_problems_are_reported_at_their_pointer(
    tmp_path: Path, content: Any, pointer: str, fragment: str
) -> None:
    files = {APP_FILE: content, WORKFLOW_FILE: workflow(IMPORT_INVOICES)}
    result = load_definitions(write_files(tmp_path, files))
    texts = [str(p) for p in result.problems if p.file == APP_FILE and p.pointer == pointer]
    assert texts and fragment in texts[0], "\n".join(map(str, result.problems))
    # A broken app.json grants nothing: the other app stays refused.
    assert any(p.pointer == "/steps/0/importFromDatabase/appId" for p in result.problems)


# ---------------------------------------------------------------------------- run time

PARAM_APP = {"appId": {"type": "param"}}
ROWS_SQL = {"id": "rows", "sql": "SELECT 7 AS id", "outputTable": "fresh"}


def _param_workflows() -> dict[str, dict]:
    persist = {**PERSIST_INVOICES["persistToDatabase"], "appId": "{{var.appId}}"}
    imported = {**IMPORT_INVOICES["importFromDatabase"], "appId": "{{var.appId}}"}
    return {
        "write": {
            "variables": PARAM_APP,
            "steps": [
                ROWS_SQL,
                {"id": "save", "persistToDatabase": {**persist, "sourceTable": "fresh"}},
            ],
        },
        "read": {
            "variables": PARAM_APP,
            "steps": [{**IMPORT_INVOICES, "importFromDatabase": imported}],
        },
    }


@pytest.fixture
def billing_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("APP_DB_URL__SHOP", f"sqlite:///{tmp_path / 'shop.sqlite'}")
    url = f"sqlite:///{tmp_path / 'billing.sqlite'}"
    monkeypatch.setenv("APP_DB_URL__BILLING", url)
    return url


def _failure_message(result: Any) -> str:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return failure.step_failure_data.error.to_string()


@pytest.mark.parametrize(("job", "step"), [("shop__write", "save"), ("shop__read", "read")])
def test_a_param_app_id_of_another_app_is_refused_before_any_read_or_write(
    tmp_path: Path, billing_url: str, job: str, step: str
) -> None:
    execute(billing_url, "CREATE TABLE invoices (id INTEGER)", "INSERT INTO invoices VALUES (1)")
    _, defs = load(write_defs(tmp_path / "defs", "shop", _param_workflows()))
    result = run_job(defs, job, {"appId": "billing"}, raise_on_error=False)
    assert not result.success
    message = _failure_message(result)
    assert f"step {step}" in message and "'billing'" in message and "'shop'" in message
    assert "app.json" in message
    assert rows(billing_url, "SELECT id FROM invoices") == [(1,)], "nothing was written"
    tables = rows(billing_url, "SELECT name FROM sqlite_master WHERE type = 'table'")
    assert tables == [("invoices",)], "no persist marker or staging table either"


def test_a_param_app_id_listed_in_app_json_is_written(tmp_path: Path, billing_url: str) -> None:
    defs_dir = write_defs(tmp_path / "defs", "shop", _param_workflows())
    (defs_dir / "apps" / "shop" / "app.json").write_text(json.dumps({"databases": ["billing"]}))
    execute(billing_url, "CREATE TABLE invoices (id INTEGER)")
    _, defs = load(defs_dir)
    assert run_job(defs, "shop__write", {"appId": "billing"}).success
    assert rows(billing_url, "SELECT id FROM invoices") == [(7,)]
    assert run_job(defs, "shop__read", {"appId": "billing"}).success


def test_the_own_app_needs_no_app_json(tmp_path: Path, billing_url: str) -> None:
    shop_url = f"sqlite:///{tmp_path / 'shop.sqlite'}"
    execute(shop_url, "CREATE TABLE invoices (id INTEGER)")
    _, defs = load(write_defs(tmp_path / "defs", "shop", _param_workflows()))
    assert run_job(defs, "shop__write", {"appId": "shop"}).success
    assert rows(shop_url, "SELECT id FROM invoices") == [(7,)]


# ---------------------------------------------------------------------------- check --db


@pytest.mark.parametrize("param", [{"type": "param"}, {"type": "param", "optional": True}])
def test_check_db_checks_a_param_without_default_against_the_own_database(
    tmp_path: Path, billing_url: str, param: dict[str, Any]
) -> None:
    documents = _param_workflows()
    for document in documents.values():
        document["variables"] = {"appId": param}
    defs = write_defs(tmp_path / "defs", "shop", documents)
    execute(f"sqlite:///{tmp_path / 'shop.sqlite'}", "CREATE TABLE invoices (id INTEGER)")
    result = workflows("check", str(defs), "--db")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cannot check" not in result.stdout


def test_check_db_still_reports_a_missing_table_of_the_own_database(
    tmp_path: Path, billing_url: str
) -> None:
    # The table exists in the other app's database only: that one is not the one checked.
    execute(billing_url, "CREATE TABLE invoices (id INTEGER)")
    defs = write_defs(tmp_path / "defs", "shop", _param_workflows())
    result = workflows("check", str(defs), "--db")
    assert result.returncode == 1
    assert "apps/shop/workflows/write.json#/steps/1/persistToDatabase/tableName" in result.stdout
    assert "apps/shop/workflows/read.json#/steps/0/importFromDatabase/tableName" in result.stdout
    assert "cannot check" not in result.stdout


def test_check_db_refuses_a_param_default_the_app_may_not_reach(
    tmp_path: Path, billing_url: str
) -> None:
    execute(billing_url, "CREATE TABLE invoices (id INTEGER)")
    documents = _param_workflows()
    documents["read"]["variables"] = {"appId": {"type": "param", "default": "billing"}}
    defs = write_defs(tmp_path / "defs", "shop", {"read": documents["read"]})
    result = workflows("check", str(defs), "--db")
    assert result.returncode == 1
    pointer = "apps/shop/workflows/read.json#/steps/0/importFromDatabase/appId"
    assert pointer in result.stdout and "'billing'" in result.stdout
