"""One bad file stays a problem of that file: deep nesting, odd JSON, a failing check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

import translators.definitions as definitions
import translators.loader as loader
from tests.definition_files import PARAMS_WORKFLOW, schedule, sql_step, workflow, write_defs
from tests.support.cli import workflows
from translators.definitions import build_definitions
from translators.loader import MAX_NESTING_DEPTH, LoadResult, WorkflowPlan, load_definitions
from translators.naming import job_name

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEEP_FILES = {
    "apps/shop/workflows/deep.json": 1_000,
    "apps/shop/workflows/deeper.json": 100_000,
    "services/deep.json": 1_000,
    "apps/other/schedules.json": 1_000,
}


def nested(depth: int) -> str:
    """A workflow-shaped document whose `steps` holds `depth` nested arrays."""
    return '{"steps": ' + "[" * depth + "]" * depth + "}"


@pytest.fixture(scope="module")
def deep_defs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    files: dict[str, Any] = {path: nested(depth) for path, depth in DEEP_FILES.items()}
    files["apps/other/workflows/fine.json"] = PARAMS_WORKFLOW
    return write_defs(tmp_path_factory.mktemp("deep"), files)


def nesting_problem(text: str, file: str) -> bool:
    return any(
        line.startswith(f"{file}#: ") and f"deeper than {MAX_NESTING_DEPTH} levels" in line
        for line in text.splitlines()
    )


def test_check_names_each_deep_file_and_the_limit(deep_defs: Path) -> None:
    result = workflows("check", str(deep_defs))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    for file in DEEP_FILES:
        assert nesting_problem(result.stdout, file), (file, result.stdout)
    assert "4 problem(s) found." in result.stderr


def test_list_still_lists_every_app(deep_defs: Path) -> None:
    result = workflows("list", str(deep_defs))
    assert result.returncode == 0, result.stderr
    assert f"workflow fine{' ' * 29}job {job_name('other', 'fine')}" in result.stdout
    assert "job shop__base" in result.stdout
    assert "deeper" in result.stdout and "BROKEN (1 problems)" in result.stdout


def test_the_other_jobs_still_load_into_definitions(deep_defs: Path) -> None:
    loaded = load_definitions(deep_defs)
    defs = build_definitions(loaded)
    dg.Definitions.validate_loadable(defs)
    jobs = {job.name for job in defs.resolve_all_job_defs()}
    assert {job_name("other", "fine"), "shop__base", "shop__deep", "shop__deeper"} <= jobs
    assert "shop" in loaded.services


def test_the_code_location_loads(deep_defs: Path) -> None:
    """What a code server does with workspace.yaml: the location loads, the other
    workflows' jobs with it; Dagster's validation (a check, like `workflows check`) fails
    and names each file's problem."""
    env = {**os.environ, "WORKFLOW_DEFS_DIR": str(deep_defs)}
    load = "import translators.definitions as m; print(sorted(m.defs().job_names))"
    loaded = subprocess.run(
        [sys.executable, "-c", load],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert job_name("other", "fine") in loaded.stdout
    validate = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    output = validate.stdout + validate.stderr
    assert validate.returncode != 0
    assert "apps/shop/workflows/deep.json#: nested deeper than 64 levels" in output
    assert "RecursionError" not in output + loaded.stderr


def load_one(tmp_path: Path, path: str, text: str) -> LoadResult:
    return load_definitions(write_defs(tmp_path, {path: text}))


def only_problem(loaded: LoadResult, file: str) -> str:
    [problem] = [p for p in loaded.problems if p.file == file]
    assert any(w.job_name == "shop__base" for w in loaded.workflows)
    return str(problem)


def test_a_number_python_refuses_is_a_problem_of_its_file(tmp_path: Path) -> None:
    file = "apps/shop/workflows/w.json"
    loaded = load_one(tmp_path, file, '{"steps": [], "x": ' + "7" * 5000 + "}")
    assert "a number with 5000 digits" in only_problem(loaded, file)


def test_a_lone_surrogate_is_a_problem_of_its_file(tmp_path: Path) -> None:
    """DuckDB refuses such text with a TypeError, which once stopped the whole load."""
    file = "apps/shop/workflows/w.json"
    text = '{"steps": [{"sql": "SELECT \'\\ud800\' AS x", "outputTable": "t"}]}'
    loaded = load_one(tmp_path, file, text)
    assert "lone UTF-16 surrogate" in only_problem(loaded, file)


def test_sql_too_deep_for_the_table_finder_is_a_problem_of_its_step(tmp_path: Path) -> None:
    file = "apps/shop/workflows/w.json"
    sql = "SELECT " + "(" * 900 + "1" + ")" * 900 + " AS x"
    loaded = load_definitions(write_defs(tmp_path, {file: workflow(sql_step(sql, "t"))}))
    problem = only_problem(loaded, file)
    assert problem.startswith(f"{file}#/steps/0/sql: ") and "nested too deeply" in problem


@pytest.mark.parametrize("target", ["check_workflow", "check_schedules", "_load_service"])
def test_an_unexpected_error_in_one_check_is_a_problem_of_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    """A fake check of our own that fails for one file; the rest still loads."""
    real = getattr(loader, target)
    failing = {
        "check_workflow": "apps/shop/workflows/w.json",
        "check_schedules": "apps/shop/schedules.json",
        "_load_service": "services/crm.json",
    }[target]

    def fake(*args: Any, **kwargs: Any) -> Any:
        if failing in repr(args[:2]):
            raise KeyError("password=abc123")
        return real(*args, **kwargs)

    monkeypatch.setattr(loader, target, fake)
    files = {
        "apps/shop/workflows/w.json": PARAMS_WORKFLOW,
        "apps/shop/schedules.json": {"schedules": [schedule()]},
    }
    loaded = load_definitions(write_defs(tmp_path, files))
    assert len(loaded.problems) == 1, [str(p) for p in loaded.problems]
    [problem] = loaded.problems
    assert problem.file == failing and problem.pointer == ""
    assert "could not be checked (KeyError" in problem.message and "abc123" not in str(problem)
    assert any(w.job_name == "shop__base" for w in loaded.workflows)


def test_a_job_dagster_refuses_becomes_a_failing_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fake builder of our own that fails for one workflow; the others still build."""
    real = definitions.build_job

    def fake(workflow: WorkflowPlan, *args: Any, **kwargs: Any) -> dg.JobDefinition:
        if workflow.stem == "w":
            raise dg.DagsterInvalidDefinitionError("refused")
        return real(workflow, *args, **kwargs)

    monkeypatch.setattr(definitions, "build_job", fake)
    files = {"apps/shop/workflows/w.json": PARAMS_WORKFLOW}
    defs = build_definitions(load_definitions(write_defs(tmp_path, files)))
    assert "workflow/broken" not in defs.resolve_job_def("shop__base").tags
    failing = defs.resolve_job_def("shop__w")
    assert failing.tags["workflow/broken"] == "true"
    assert "- apps/shop/workflows/w.json#: the file could not be checked (Dagster" in (
        failing.description or ""
    )
