"""Database fixtures: one throwaway PostgreSQL per test session, a fresh database per test.

- `postgres_server_url` (session): the server's URL (`$TEST_POSTGRES_URL` when set), as a
  superuser on its `postgres` database; started on first use only, so SQLite-only runs
  never start it.
- `pg_app_url`: a `CREATE DATABASE` of its own for the test, dropped afterwards.
- `sqlite_app_url`: an SQLite file under the test's `tmp_path`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.postgres import start_postgres


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    server = start_postgres()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def pg_app_url(postgres_server_url: str) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:16]}"
    _admin(postgres_server_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_app_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'app.sqlite'}"


def _admin(server_url: str, statement: str) -> None:
    """Run CREATE/DROP DATABASE (they refuse to run inside a transaction)."""
    conninfo = (
        make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(statement.encode())
