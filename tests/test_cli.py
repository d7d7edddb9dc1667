"""The `workflows` command line, run as a real subprocess."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from demo.app_schema import ensure_demo_schema
from demo.server import demo_secrets_env, running_demo_server, service_base_url_env
from tests.support.app_tables import execute, rows
from tests.support.cli import workflows
from tests.support.jobs import REAL_DEFS, load, write_defs
from translators.run_coordinator import IDEMPOTENCY_TAG, claim_key


@pytest.fixture
def demo_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    monkeypatch.setenv("APP_DB_URL__DEMO_SHOP", url)
    ensure_demo_schema(url)
    with running_demo_server() as base_url:
        for name, value in {**service_base_url_env(base_url), **demo_secrets_env()}.items():
            monkeypatch.setenv(name, value)
        yield url


def test_help_lists_the_commands() -> None:
    out = workflows("--help").stdout
    for command in ("check", "list", "run", "explain"):
        assert command in out


def test_check_passes_on_the_shipped_definitions() -> None:
    result = workflows("check", str(REAL_DEFS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: 4 workflow(s), 2 schedule(s), 5 service(s)" in result.stdout
    assert "enriched_orders(" in result.stdout, "inferred schemas are printed"


def test_check_reports_every_problem_with_file_and_pointer(tmp_path: Path) -> None:
    defs = write_defs(
        tmp_path / "defs",
        "app",
        {
            "good": {"steps": [{"sql": "SELECT 1 AS x", "outputTable": "t"}]},
            "bad": {
                "steps": [
                    {"sql": "DELETE FROM t", "outputTable": "t"},
                    {"sql": "SELECT nope FROM missing", "outputTable": "u"},
                ]
            },
            "typo": {"steps": [{"sql": "SELECT 1 AS x", "outputTable": "t", "colour": 1}]},
        },
    )
    (defs / "apps" / "app" / "workflows" / "broken.json").write_text("{not json")
    result = workflows("check", str(defs))
    assert result.returncode == 1
    out = result.stdout
    assert "apps/app/workflows/typo.json#/steps/0/colour" in out
    assert "apps/app/workflows/bad.json#/steps/0/sql" in out
    assert "apps/app/workflows/bad.json#/steps/1" in out
    assert "apps/app/workflows/broken.json#" in out
    assert "good.json" not in out


def test_list_shows_jobs_and_schedules() -> None:
    out = workflows("list", str(REAL_DEFS)).stdout
    assert "job demo_shop__syncEnrichedOrders" in out
    assert "schedule daily-order-sync" in out
    assert "0 8 * * 1 Europe/Berlin" in out


def test_explain_shows_edges_and_skip_rules() -> None:
    result = workflows("explain", "demo-shop/syncEnrichedOrders", "--defs", str(REAL_DEFS))
    assert result.returncode == 0, result.stderr
    assert "fetch_orders -> enriched_orders" in result.stdout
    assert "has_new_orders -> persist_orders_enriched" in result.stdout
    assert "skipped when false: has_new_orders" in result.stdout


def test_run_executes_the_job_in_the_instance(demo_env: str, tmp_path: Path) -> None:
    result = workflows(
        "run", "demo-shop/syncEnrichedOrders", "--param", "appId=demo-shop", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fetch_orders" in result.stdout and "succeeded" in result.stdout
    assert "summary:" in result.stdout and "SUCCESS" in result.stdout
    assert rows(demo_env, "SELECT count(*) FROM orders_enriched")[0][0] > 0
    instance = dg.DagsterInstance.get()
    runs = instance.get_run_records(filters=dg.RunsFilter(job_name="demo_shop__syncEnrichedOrders"))
    assert [r.dagster_run.status for r in runs] == [dg.DagsterRunStatus.SUCCESS]


def test_run_failure_exits_1_with_the_failed_step(tmp_path: Path) -> None:
    defs = write_defs(
        tmp_path / "defs",
        "app",
        {
            "fails": {
                "settings": {"maxParallelSteps": 1},
                "steps": [
                    {
                        "sql": "SELECT 'x' AS v",
                        "outputTable": "t",
                        "outputSchema": {"v": "INTEGER"},
                    },
                ],
            }
        },
    )
    result = workflows("run", "app/fails", "--defs", str(defs), cwd=tmp_path)
    assert result.returncode == 1
    assert "FAILED" in result.stdout and "FAILURE" in result.stdout


def test_run_refuses_an_active_idempotency_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs = write_defs(
        tmp_path / "defs",
        "app",
        {
            "one": {
                "settings": {"maxParallelSteps": 1},
                "steps": [{"sql": "SELECT 1 AS v", "outputTable": "t"}],
            }
        },
    )
    monkeypatch.setenv("WORKFLOW_DEFS_DIR", str(defs))
    _, definitions = load(defs)
    instance = dg.DagsterInstance.get()
    active = instance.create_run_for_job(
        definitions.resolve_job_def("app__one"), tags={IDEMPOTENCY_TAG: "k1"}
    )
    assert claim_key(instance, "k1", active.run_id) is None  # as the run queue claims it
    refused = workflows("run", "app/one", "--defs", str(defs), "--idempotency-key", "k1")
    assert refused.returncode == 1
    assert "idempotency key 'k1'" in refused.stderr
    other = workflows("run", "app/one", "--defs", str(defs), "--idempotency-key", "k2")
    assert other.returncode == 0, other.stdout + other.stderr


def test_run_of_an_unknown_workflow_names_the_known_ones() -> None:
    result = workflows("run", "demo-shop/nope", "--defs", str(REAL_DEFS))
    assert result.returncode == 1
    assert "demo-shop/syncEnrichedOrders" in result.stderr


def test_param_values_parse_as_json() -> None:
    from translators.cli_run import parse_params

    assert parse_params(["n=3", "flag=true", "name=ops", "list=[1,2]"]) == {
        "n": 3,
        "flag": True,
        "name": "ops",
        "list": [1, 2],
    }
    assert json.dumps(parse_params(["empty="])) == '{"empty": ""}'


def test_check_db_passes_when_the_app_tables_match(tmp_path: Path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'ok.sqlite'}"
    monkeypatch.setenv("APP_DB_URL__DEMO_SHOP", url)
    ensure_demo_schema(url)
    result = workflows("check", str(REAL_DEFS), "--db")
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_db_reports_missing_tables_and_keys(tmp_path: Path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'bad.sqlite'}"
    monkeypatch.setenv("APP_DB_URL__DEMO_SHOP", url)
    execute(
        url,
        "CREATE TABLE revenue_by_tier (tier TEXT, period_start DATE, "
        "order_count INTEGER, revenue_cents INTEGER, updated_at TEXT, note TEXT NOT NULL)",
    )
    result = workflows("check", str(REAL_DEFS), "--db")
    assert result.returncode == 1
    out = result.stdout
    sync = "apps/demo-shop/workflows/syncEnrichedOrders.json"
    assert f"{sync}#/steps/4/persistToDatabase/tableName" in out and "orders_enriched" in out
    assert f"{sync}#/steps/6/persistToDatabase/fieldMapping" in out and "'note'" in out
    notify = "apps/demo-shop/workflows/notifyTopCustomers.json"
    assert f"{notify}#/steps/0/importFromDatabase/tableName" in out


def test_check_db_reports_import_schema_columns_the_table_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'app.sqlite'}"
    monkeypatch.setenv("APP_DB_URL", url)
    execute(url, "CREATE TABLE targets (tier TEXT, monthly_target_cents INTEGER)")
    defs = write_defs(
        tmp_path / "defs",
        "app",
        {
            "imp": {
                "steps": [
                    {
                        "importFromDatabase": {"appId": "app", "tableName": "targets"},
                        "outputTable": "t",
                        "outputSchema": {"tier": "VARCHAR", "monthly_targt_cents": "BIGINT"},
                    }
                ]
            }
        },
    )
    result = workflows("check", str(defs), "--db")
    assert result.returncode == 1
    assert "apps/app/workflows/imp.json#/steps/0/importFromDatabase/columns" in result.stdout
    assert "monthly_targt_cents" in result.stdout


def test_run_with_missing_or_unknown_params_says_so_without_a_traceback(tmp_path: Path) -> None:
    defs = write_defs(
        tmp_path / "defs",
        "app",
        {
            "p": {
                "variables": {"org": {"type": "param"}},
                "steps": [{"sql": "SELECT '{{var.org}}' AS org", "outputTable": "t"}],
            }
        },
    )
    missing = workflows("run", "app/p", "--defs", str(defs))
    assert missing.returncode == 1
    assert "param 'org' is required" in missing.stderr and "Traceback" not in missing.stderr
    unknown = workflows("run", "app/p", "--defs", str(defs), "--param", "org=1", "--param", "x=2")
    assert unknown.returncode == 1 and "unknown params ['x']" in unknown.stderr
