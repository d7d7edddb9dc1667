"""Two small tables of ours in the Dagster instance's run-storage database (SQLite or
PostgreSQL): who runs each run (`workflow_run_workers`) and who holds each idempotency
key (`workflow_idempotency_claims`). They live next to Dagster's `runs` table so that a
claim is as durable and as shared as the runs themselves, whichever process launches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

METADATA = sa.MetaData()

WORKERS = sa.Table(
    "workflow_run_workers",
    METADATA,
    sa.Column("run_id", sa.String(255), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    # "<boot id>:<start in clock ticks since boot>" from /proc: a reused pid differs.
    sa.Column("process_start", sa.String(255), nullable=False),
    sa.Column("heartbeat", sa.Float, nullable=False),
)

CLAIMS = sa.Table(
    "workflow_idempotency_claims",
    METADATA,
    # The key is the primary key: two launches cannot both INSERT it.
    sa.Column("key", sa.String(512), primary_key=True),
    sa.Column("run_id", sa.String(255), nullable=False),
    sa.Column("claimed_at", sa.Float, nullable=False),
)

_created: set[int] = set()


@contextmanager
def connect(instance: dg.DagsterInstance) -> Iterator[Connection]:
    """A connection to the run-storage database, our tables created on first use.

    Dagster's own `connect()` commits on exit (SQLite: one transaction; PostgreSQL:
    autocommit), so each statement below is atomic on its own.
    """
    storage = instance.run_storage
    if not hasattr(storage, "connect"):
        raise RuntimeError(
            f"idempotency keys and worker checks need SQL run storage; "
            f"this instance uses {type(storage).__name__}"
        )
    if id(storage) not in _created:
        _create_tables(storage)
        _created.add(id(storage))
    with storage.connect() as conn:
        yield conn


def _create_tables(storage: object) -> None:
    for attempt in range(3):
        try:
            with storage.connect() as conn:  # type: ignore[attr-defined]
                METADATA.create_all(conn, checkfirst=True)
            return
        except sa.exc.DatabaseError:
            # Another process created them between the check and the CREATE.
            if attempt == 2:
                raise
