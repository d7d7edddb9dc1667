"""The exactly-once markers of persist steps, and the table names the write path reserves.

`_workflow_persist_markers` holds one row per `(run lineage, step)` whose write committed;
the row commits in the same transaction as the rows it stands for (SPEC 3.4). The table is
created in the app database on first use, so it is no target a workflow may write to.

Staging tables are temporary and named per run lineage and step (`stage_table_name`), and
every statement names them with the temporary schema, so a user table of any other name,
`_wf_stage` included, is never mistaken for one.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from resources.app_db_schema import AppDatabaseError

MARKER_TABLE = "_workflow_persist_markers"
STAGE_PREFIX = "_wf_stage_"

_MARKERS = sa.Table(
    MARKER_TABLE,
    sa.MetaData(),
    sa.Column("lineage", sa.Text, primary_key=True),
    sa.Column("step", sa.Text, primary_key=True),
    sa.Column("rows_written", sa.BigInteger, nullable=False),
    sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
)


def refuse_reserved_target(table: str) -> None:
    """Raise when `table` is the marker table (any letter case: SQLite ignores case)."""
    if table.casefold() == MARKER_TABLE:
        raise AppDatabaseError(
            f"persist to {table!r}: that table name is reserved for the exactly-once markers "
            "of persist steps; write to a table of another name"
        )


def stage_table_name(lineage: str, step: str) -> str:
    """The temporary staging table of one run lineage and step: `_wf_stage_<16 hex>`."""
    digest = hashlib.sha256(f"{lineage}\0{step}".encode()).hexdigest()[:16]
    return STAGE_PREFIX + digest


def ensure_marker_table(conn: Connection) -> None:
    """Create the bookkeeping table once (its own transaction; a concurrent create is fine)."""
    try:
        with conn.begin():
            _MARKERS.create(conn, checkfirst=True)
    except sa.exc.DBAPIError:
        exists = sa.inspect(conn).has_table(MARKER_TABLE)
        conn.rollback()
        if not exists:
            raise


def claim_marker(conn: Connection, lineage: str, step: str) -> bool:
    """Insert the marker; False when it exists (this step of this lineage was written)."""
    result = conn.execute(
        sa.text(
            f"INSERT INTO {_q(conn, MARKER_TABLE)} (lineage, step, rows_written, committed_at)"
            " VALUES (:lineage, :step, 0, CURRENT_TIMESTAMP)"
            " ON CONFLICT (lineage, step) DO NOTHING"
        ),
        {"lineage": lineage, "step": step},
    )
    return result.rowcount == 1


def record_marker(conn: Connection, lineage: str, step: str, rows: int) -> None:
    conn.execute(
        sa.text(
            f"UPDATE {_q(conn, MARKER_TABLE)} SET rows_written = :rows,"
            " committed_at = CURRENT_TIMESTAMP WHERE lineage = :lineage AND step = :step"
        ),
        {"rows": rows, "lineage": lineage, "step": step},
    )


def _q(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)
