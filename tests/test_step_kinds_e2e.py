"""One workflow per step kind, run through Dagster against the demo HTTP services and a
real app database (SQLite and PostgreSQL); the rows are checked in the database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.server import (
    demo_secrets_env,
    make_customers,
    running_demo_server,
    service_base_url_env,
)
from tests.support.app_tables import execute, rows
from tests.support.jobs import load, run_job, write_defs

APP = "kinds"


@pytest.fixture(params=["sqlite", "postgres"])
def app_db_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    url = request.getfixturevalue("sqlite_app_url" if request.param == "sqlite" else "pg_app_url")
    monkeypatch.setenv("APP_DB_URL", url)
    return url


@pytest.fixture
def demo_services(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with running_demo_server() as base_url:
        for name, value in {**service_base_url_env(base_url), **demo_secrets_env()}.items():
            monkeypatch.setenv(name, value)
        yield base_url


def persist(source: str, table: str, mapping: dict, mode: str = "append", **extra) -> dict:
    return {
        "persistToDatabase": {
            "appId": "{{var.appId}}",
            "tableName": table,
            "sourceTable": source,
            "mode": mode,
            "fieldMapping": mapping,
            **extra,
        }
    }


APP_ID_VAR = {"appId": {"type": "param", "default": APP}}

WORKFLOWS = {
    "serviceCall": {
        "variables": APP_ID_VAR,
        "steps": [
            {
                "service": "crm",
                "operation": "listCustomers",
                "params": {"per_page": 7},
                "paginate": {"type": "pageNumber", "pageParam": "page"},
                "dataPath": "customers",
                "outputTable": "customers",
                "fieldMapping": {"customer_id": "id", "name": "name", "tier": "tier"},
                "outputSchema": {"customer_id": "VARCHAR", "name": "VARCHAR", "tier": "VARCHAR"},
            },
            persist(
                "customers",
                "crm_customers",
                {"id": "customer_id", "name": "name", "tier": "tier"},
                mode="upsert",
                upsertKey=["id"],
            ),
        ],
    },
    "sql": {
        "variables": {**APP_ID_VAR, "factor": {"type": "param", "default": 10}},
        "steps": [
            {
                "sql": "SELECT range AS n, range * {{var.factor}} AS scaled FROM range(5)",
                "outputTable": "numbers",
            },
            persist("numbers", "numbers", {"n": "n", "scaled": "scaled"}),
        ],
    },
    "importFromDatabase": {
        "variables": {**APP_ID_VAR, "minScore": {"type": "param", "default": 50}},
        "steps": [
            {
                "importFromDatabase": {
                    "appId": "{{var.appId}}",
                    "tableName": "scores",
                    "columns": ["player", "score"],
                },
                "outputTable": "all_scores",
                "outputSchema": {"player": "VARCHAR", "score": "INTEGER"},
            },
            {
                "sql": "SELECT player, score FROM all_scores WHERE score >= {{var.minScore}}",
                "outputTable": "good_scores",
            },
            persist("good_scores", "good_scores", {"player": "player", "score": "score"}),
        ],
    },
    "branch": {
        "variables": {**APP_ID_VAR, "flag": {"type": "param"}},
        "steps": [
            {"sql": "SELECT 1 AS id, 'ran' AS note", "outputTable": "marker"},
            {"id": "enabled", "branch": {"condition": "{{var.flag}}"}},
            {
                "id": "write_marker",
                "dependsOn": ["enabled"],
                **persist("marker", "branch_marker", {"id": "id", "note": "note"}),
            },
            {
                "sql": "SELECT id FROM marker",
                "outputTable": "after_skip",
                "dependsOn": ["write_marker"],
            },
        ],
    },
    "waitFor": {
        "variables": APP_ID_VAR,
        "steps": [
            {"sql": "SELECT 1 AS id, now() AS at", "outputTable": "before"},
            {"wait": {"duration": "1s"}},
            {"sql": "SELECT 2 AS id, now() AS at", "outputTable": "after"},
            persist("before", "waited", {"id": "id", "at": "at"}),
            persist("after", "waited", {"id": "id", "at": "at"}),
        ],
    },
    "waitAfterBranch": {
        "variables": APP_ID_VAR,
        "steps": [
            {"sql": "SELECT 1 AS id, now() AS at", "outputTable": "first"},
            {"id": "never", "branch": {"condition": False}},
            {"id": "skipped", "dependsOn": ["never"], **persist("first", "waited", {"id": "id"})},
            {"wait": {"duration": "1s"}},
            persist("first", "waited", {"id": "id", "at": "at"}),
        ],
    },
}

TABLES = [
    "CREATE TABLE crm_customers (id VARCHAR(20) PRIMARY KEY, name TEXT, tier TEXT)",
    "CREATE TABLE numbers (n INTEGER, scaled INTEGER)",
    "CREATE TABLE scores (player VARCHAR(20) PRIMARY KEY, score INTEGER)",
    "CREATE TABLE good_scores (player VARCHAR(20), score INTEGER)",
    "CREATE TABLE branch_marker (id INTEGER, note TEXT)",
    "CREATE TABLE waited (id INTEGER, at TIMESTAMP)",
    "INSERT INTO scores VALUES ('ann', 70), ('bob', 20), ('cy', 50)",
]


@pytest.fixture
def kinds(tmp_path: Path, app_db_url: str, demo_services: str):
    execute(app_db_url, *TABLES)
    defs_dir = write_defs(tmp_path / "defs", APP, WORKFLOWS, services=("crm",))
    return load(defs_dir)[1]


def test_service_call_pages_land_in_the_database(kinds, app_db_url: str) -> None:
    result = run_job(kinds, f"{APP}__serviceCall")
    assert result.success
    expected = sorted((c["id"], c["name"], c["tier"]) for c in make_customers())
    assert rows(app_db_url, "SELECT id, name, tier FROM crm_customers ORDER BY id") == expected
    fetched = result.output_for_node("customers")
    assert fetched.row_count == len(expected) == 40


def test_sql_binds_variables(kinds, app_db_url: str) -> None:
    assert run_job(kinds, f"{APP}__sql", {"factor": 3}).success
    assert rows(app_db_url, "SELECT n, scaled FROM numbers ORDER BY n") == [
        (n, n * 3) for n in range(5)
    ]


def test_import_filters_and_persists(kinds, app_db_url: str) -> None:
    assert run_job(kinds, f"{APP}__importFromDatabase").success
    assert rows(app_db_url, "SELECT player, score FROM good_scores ORDER BY player") == [
        ("ann", 70),
        ("cy", 50),
    ]


def test_true_branch_runs_dependents(kinds, app_db_url: str) -> None:
    result = run_job(kinds, f"{APP}__branch", {"flag": True})
    assert result.success
    assert rows(app_db_url, "SELECT id, note FROM branch_marker") == [(1, "ran")]
    assert result.output_for_node("after_skip").row_count == 1


@pytest.mark.parametrize("flag", [False, 0, "", None])
def test_false_branch_skips_dependents_transitively(kinds, app_db_url: str, flag) -> None:
    result = run_job(kinds, f"{APP}__branch", {"flag": flag})
    assert result.success
    assert rows(app_db_url, "SELECT count(*) FROM branch_marker") == [(0,)]
    skipped = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED"}
    assert skipped == {"write_marker", "after_skip"}


def test_wait_sleeps_between_steps(kinds, app_db_url: str) -> None:
    started = time.monotonic()
    assert run_job(kinds, f"{APP}__waitFor").success
    assert time.monotonic() - started >= 1.0
    assert rows(app_db_url, "SELECT id FROM waited ORDER BY id") == [(1,), (2,)]


def test_a_wait_after_a_false_branch_still_runs_what_follows(kinds, app_db_url: str) -> None:
    result = run_job(kinds, f"{APP}__waitAfterBranch")
    assert result.success
    skipped = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED"}
    assert skipped == {"skipped"}
    assert rows(app_db_url, "SELECT id FROM waited") == [(1,)]
