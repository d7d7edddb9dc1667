"""The exactly-once markers of persist steps, and the table names the write path reserves.

`_workflow_persist_markers` holds one row per `(run lineage, step)` whose write committed;
the row commits in the same transaction as the rows it stands for (SPEC 3.4), with what
the write did (rows inserted, updated, deleted, skipped). The table is created in the app
database on first use, so it is no target a workflow may write to; a table made before the
counts were kept gains their columns (NULL on its old rows) on the next persist.

Staging tables are temporary and named per run lineage and step (`stage_table_name`), and
every statement names them with the temporary schema, so a user table of any other name,
`_wf_stage` included, is never mistaken for one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from resources.app_db_schema import AppDatabaseError, first_line

MARKER_TABLE = "_workflow_persist_markers"
STAGE_PREFIX = "_wf_stage_"


@dataclass(frozen=True)
class PersistCounts:
    """What one committed persist did to its target (kept on its exactly-once marker)."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: int = 0


_MARKERS = sa.Table(
    MARKER_TABLE,
    sa.MetaData(),
    sa.Column("lineage", sa.Text, primary_key=True),
    sa.Column("step", sa.Text, primary_key=True),
    sa.Column("rows_written", sa.BigInteger, nullable=False),
    sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
    # Nullable: added to marker tables made before them (see _add_count_columns).
    sa.Column("rows_inserted", sa.BigInteger),
    sa.Column("rows_updated", sa.BigInteger),
    sa.Column("rows_deleted", sa.BigInteger),
    sa.Column("rows_skipped", sa.BigInteger),
)
COUNT_COLUMNS = ("rows_inserted", "rows_updated", "rows_deleted", "rows_skipped")


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
    with conn.begin():
        _add_count_columns(conn)


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


def record_marker(conn: Connection, lineage: str, step: str, counts: PersistCounts) -> None:
    """Store what the write did on its marker (same transaction as the write)."""
    values = {f"rows_{name}": getattr(counts, name) for name in _COUNT_FIELDS}
    values["rows_written"] = counts.inserted + counts.updated
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    conn.execute(
        sa.text(
            f"UPDATE {_q(conn, MARKER_TABLE)} SET {assignments},"
            " committed_at = CURRENT_TIMESTAMP WHERE lineage = :lineage AND step = :step"
        ),
        {**values, "lineage": lineage, "step": step},
    )


def recorded_counts(conn: Connection, lineage: str, step: str) -> PersistCounts | None:
    """The counts on an existing marker; None for one written before counts were kept."""
    found = conn.execute(
        sa.text(
            f"SELECT {', '.join(COUNT_COLUMNS)} FROM {_q(conn, MARKER_TABLE)}"
            " WHERE lineage = :lineage AND step = :step"
        ),
        {"lineage": lineage, "step": step},
    ).first()
    if found is None or any(value is None for value in found):
        return None
    return PersistCounts(*(int(value) for value in found))


_COUNT_FIELDS = ("inserted", "updated", "deleted", "skipped")


def _add_count_columns(conn: Connection) -> None:
    """Add the count columns to a marker table made before they existed.

    Writers of one SQLite file hold its write lock here (BEGIN IMMEDIATE), and PostgreSQL's
    `IF NOT EXISTS` lets two first writers add the same column.
    """
    present = conn.exec_driver_sql(f"SELECT * FROM {_q(conn, MARKER_TABLE)} WHERE 1 = 0").keys()
    guard = "IF NOT EXISTS " if conn.dialect.name == "postgresql" else ""
    for name in COUNT_COLUMNS:
        if name in present:
            continue
        alter = f"ALTER TABLE {_q(conn, MARKER_TABLE)} ADD COLUMN {guard}{name} BIGINT"
        try:
            conn.exec_driver_sql(alter)
        except sa.exc.ProgrammingError as exc:  # e.g. the table belongs to another role
            raise AppDatabaseError(
                f"cannot add the column {name} (the counts of a persist) to the marker table "
                f"{MARKER_TABLE}: {first_line(exc)}; run `{alter}` as the table's owner "
                "(and the other count columns: rows_inserted, rows_updated, rows_deleted, "
                "rows_skipped)"
            ) from None


def _q(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)
