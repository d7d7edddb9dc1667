"""Issue 8 (P4, P6): a process imports only what it needs, and a run or a step process
reads its own workflow file only, not the other workflows of the folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import translators.definitions as definitions
from tests.support.jobs import PROJECT_ROOT, write_defs
from translators.loader import load_definitions, load_one_workflow

TWO_SQL = {
    "steps": [
        {"sql": "SELECT 1 AS id, 'a' AS name", "outputTable": "first"},
        {"sql": "SELECT id, upper(name) AS name FROM first", "outputTable": "second"},
    ]
}
SCHEDULES = {
    "schedules": [
        {"name": "a-nightly", "cron": "0 2 * * *", "workflow": "./workflows/a.json"},
        {
            "name": "b-nightly",
            "cron": "0 3 * * *",
            "workflow": "./workflows/b.json",
            "backfillStart": "2026-11-01",
        },
        {"name": "c-hourly", "cron": "0 * * * *", "workflow": "./workflows/c.json"},
    ]
}
# Libraries only a step that uses them needs; none of them is needed to load definitions.
HEAVY = ("pandas", "croniter", "psycopg", "sqlalchemy", "aiohttp", "httpx")


def _defs(tmp_path: Path) -> Path:
    defs = write_defs(tmp_path / "defs", "shop", {"a": TWO_SQL, "b": TWO_SQL, "c": TWO_SQL})
    write_defs(defs, "other", {"d": TWO_SQL})
    (defs / "apps/shop/schedules.json").write_text(json.dumps(SCHEDULES))
    return defs


def test_loading_the_code_location_imports_no_step_only_library(tmp_path: Path) -> None:
    defs = write_defs(tmp_path / "defs", "shop", {"a": TWO_SQL})
    code = (
        "import sys\n"
        "import translators.definitions as d\n"
        "assert d.defs().get_job('shop__a').name == 'shop__a'\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "WORKFLOW_DEFS_DIR": str(defs), "WORKFLOWS_DATA_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == []


def test_a_job_checks_only_its_own_file(
    tmp_path: Path, binds: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKFLOWS_PLAN_CACHE", "off")
    monkeypatch.setenv("WORKFLOW_DEFS_DIR", str(_defs(tmp_path)))
    job = definitions.job_by_name("shop__b")
    assert job.name == "shop__b"
    assert len(binds) == 2, "the two queries of b.json, not those of a, c or d"
    # b's schedule has a backfillStart: its job is partitioned as in the full load.
    assert job.partitions_def is not None


def test_a_job_reads_only_its_own_cache_entry(tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("WORKFLOWS_PLAN_CACHE_DIR", str(cache))
    monkeypatch.setenv("WORKFLOW_DEFS_DIR", str(_defs(tmp_path)))
    definitions.job_by_name("shop__c")
    assert len(list(cache.glob("*.pickle"))) == 1, "one file checked, one entry written"


def test_one_file_gives_the_plan_and_schedules_of_the_full_load(tmp_path: Path) -> None:
    defs = _defs(tmp_path)
    full = load_definitions(defs)
    one = load_one_workflow(defs, "shop", "b")
    assert one is not None
    assert one.workflows == [w for w in full.workflows if w.stem == "b"]
    assert one.schedules == [s for s in full.schedules if s.workflow == "shop__b"]
    assert one.services == full.services


def test_a_broken_file_alone_gives_its_problems(tmp_path: Path) -> None:
    defs = _defs(tmp_path)
    (defs / "apps/shop/workflows/b.json").write_text('{"steps": [{"sql": "SELEC 1"}]}')
    full = load_definitions(defs)
    one = load_one_workflow(defs, "shop", "b")
    assert one is not None and one.workflows == []
    assert one.broken == [b for b in full.broken if b.stem == "b"]


def test_clashing_job_names_fall_back_to_the_full_load(tmp_path: Path, monkeypatch) -> None:
    defs = write_defs(tmp_path / "defs", "shop", {"a-b": TWO_SQL, "a_b": TWO_SQL})
    monkeypatch.setenv("WORKFLOW_DEFS_DIR", str(defs))
    assert load_one_workflow(defs, "shop", "a_b") is None
    full = load_definitions(defs)
    renamed = {b.job_name for b in full.broken}
    assert renamed == {"shop__a_b_2"}
    assert definitions.job_by_name("shop__a_b_2").name == "shop__a_b_2"
    assert definitions.job_by_name("shop__a_b").name == "shop__a_b"


def test_an_unknown_workflow_still_lists_the_known_ones(tmp_path: Path) -> None:
    defs = _defs(tmp_path)
    env = {**os.environ, "WORKFLOW_DEFS_DIR": str(defs), "WORKFLOWS_DATA_DIR": str(tmp_path)}
    env["DAGSTER_HOME"] = str(tmp_path / "home")
    out = subprocess.run(
        [sys.executable, "-m", "translators", "run", "shop/nope"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    assert "shop/a" in out.stdout + out.stderr


def test_writing_step_tables_does_not_import_pandas(tmp_path: Path) -> None:
    """pyarrow imports pandas on its first array from a list (0.45 s, 50 MB); a step that
    writes records (a serviceCall's) must not pay for it, and pandas still works when
    really asked for."""
    code = (
        "import sys\n"
        "from resources.table_store import TableStoreResource\n"
        "store = TableStoreResource(root=sys.argv[1])\n"
        "schema = {'id': 'BIGINT', 'name': 'VARCHAR', 'at': 'TIMESTAMPTZ', 'n': 'DECIMAL(9,2)'}\n"
        "rows = [{'id': 1, 'name': 'a', 'at': '2026-11-30T10:00:00Z', 'n': '1.50'}]\n"
        "with store.open_writer('run', 'fetch', 'fetch', schema) as writer:\n"
        "    writer.write_records(rows)\n"
        "print('pandas' in sys.modules)\n"
        "import pyarrow as pa\n"
        "print(pa.table({'x': [1, 2]}).to_pandas()['x'].sum())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "3"]


def test_the_cli_exits_quickly_but_runs_exit_handlers_and_flushes(tmp_path: Path) -> None:
    """`entry_point` skips the interpreter's teardown (0.8 s after a run, issue 8 P6), but
    not what exit handlers do, nor output still buffered, nor the exit code."""
    defs = write_defs(tmp_path / "defs", "shop", {"a": TWO_SQL})
    code = (
        "import atexit, sys\n"
        "import translators.cli as cli\n"
        "atexit.register(lambda: sys.stdout.write('exit handler ran\\n'))\n"
        "sys.stdout.write('buffered, no newline')\n"
        "sys.argv = ['workflows', 'explain', 'shop/nope']\n"
        "cli.entry_point()\n"
    )
    env = {**os.environ, "WORKFLOW_DEFS_DIR": str(defs)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 1, out.stderr  # explain's own code for an unknown workflow
    assert "shop/a" in out.stdout + out.stderr
    assert out.stdout.startswith("buffered, no newline")
    assert out.stdout.rstrip().endswith("exit handler ran")
