"""Shared test setup: every test gets its own data folder, Dagster home and env."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from translators.sql_analysis import SqlBinder

# Fixtures that live in tests/support, shared by several test files.
pytest_plugins = ["tests.support.fixtures_db", "tests.support.s3"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the developer's `.data/`, `.dagster_home/` or app DBs."""
    monkeypatch.setenv("WORKFLOWS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("DAGSTER_DISABLE_TELEMETRY", "1")
    for name in ("APP_DB_URL", "TABLE_STORE_ROOT", "WORKFLOW_DEFS_DIR"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")


@pytest.fixture
def binds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every query DuckDB binds while loading (a spy; the real binder still runs)."""
    seen: list[str] = []
    real = SqlBinder.bind

    def counting(self: SqlBinder, sql: str, *args: Any, **kwargs: Any) -> dict[str, str]:
        seen.append(sql)
        return real(self, sql, *args, **kwargs)

    monkeypatch.setattr(SqlBinder, "bind", counting)
    return seen
