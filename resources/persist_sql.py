"""Writing Arrow batches into an app database table: the persist modes of SPEC 3.4.

A write is one transaction on one connection:

1. Claim the marker `(lineage, step)` in `_workflow_persist_markers` (insert, do nothing on
   conflict). When it already exists the step was written before: nothing is written. A
   concurrent writer of the same marker waits on the row lock and then sees it.
2. Check the target before writing: the table, the source columns, the upsert key (it needs
   a primary key, unique constraint or plain unique index on exactly those columns), the
   match columns, and the NOT NULL columns without a default that the source lacks.
3. Stage: the source rows go into a TEMP table with the target's column types but none of
   its constraints, plus `_wf_row` (the 1-based source row number). Its name is unique per
   lineage and step (`_wf_stage_<hash>`), and every statement names both tables with their
   schema (`temp.` / `pg_temp.` for the stage, `main.` / the target's schema for the
   target), so a user table called `_wf_stage` is written like any other. On PostgreSQL with
   psycopg 3 this is a COPY per chunk of 10,000 rows (`resources.persist_copy`): binary,
   built by Arrow and numpy, when every column has an encoder and the values fit (the
   server reads it about twice as fast), else CSV written by Arrow, which the server
   parses into the column types; elsewhere `executemany`. A bad value is found here.
4. For upsert, staged rows with a NULL in a key column are row errors (a NULL key matches
   no row, so every run would insert them again); under skip they leave the stage.
   Apply with one set-based statement from the staging table, in source order:
   `INSERT ... SELECT` for append, the same with `ON CONFLICT (key) DO UPDATE` for upsert
   (the last source row of a repeated key wins: SQLite applies rows in order, PostgreSQL
   retries with only each key's last row when it refuses to touch a row twice), and for
   replaceAll a `DELETE ... WHERE (match) IN (SELECT ... FROM staging)` first. A NULL
   match value matches nothing, as in SQL.
   A PostgreSQL upsert does steps 3 and 4 per group of MERGE_ROWS source rows, emptying
   the stage between groups (it stays in the session's temp buffers), while a thread reads
   and encodes the next chunks; groups apply in source order, so the last row of a key
   repeated across groups still wins. Its merge is not sorted: a scan of the stage returns
   the rows in the order COPY wrote them.
5. Record what the write did (rows inserted, updated, deleted, skipped; counted by
   `resources.persist_apply`) on the marker, run the caller's `before_commit` check (the app
   database checks that its SQLite file was not deleted meanwhile) and commit.

An append under `fail` on PostgreSQL skips steps 3 and 4: its chunks are COPied straight
into the target (inside the same transaction), which nearly doubles its speed.

Row errors (a value the column type rejects, a NOT NULL / unique / check / foreign-key
violation) are found without giving up the set-based path: each staging chunk and the
apply statement run inside a SAVEPOINT, and a range that fails is halved until the bad
rows stand alone, so k bad rows among n cost about 2k*log2(n) small statements and clean
data runs at full speed. Under `fail` the first bad row is raised (with its row number) and
the whole transaction rolls back; under `skip` it is counted, the first ten are reported,
and every other row is written.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator

import psycopg
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from resources.app_db_schema import (
    AppDatabaseError,
    TableInfo,
    first_line,
    inspect_table,
    python_values,
)
from resources.persist_apply import Apply, Tally, q, tallied
from resources.persist_copy import Chunk, CopyInto, Prefetch, column_type_oids
from resources.persist_markers import (
    PersistCounts,
    claim_marker,
    ensure_marker_table,
    record_marker,
    recorded_counts,
    stage_table_name,
)
from resources.persist_request import PersistRequest, PersistResult, RowErrors, check_target

__all__ = ["PersistRequest", "PersistResult", "persist_batches"]

log = logging.getLogger(__name__)

ROW_COLUMN = "_wf_row"
CHUNK_ROWS = 10_000
# A PostgreSQL upsert merges the stage every MERGE_ROWS rows and empties it: the stage stays
# in the session's temp buffers instead of being written out and read back.
MERGE_ROWS = 50_000

ROW_ERRORS = (sa.exc.DataError, sa.exc.IntegrityError, psycopg.DataError, psycopg.IntegrityError)


def persist_batches(
    conn: Connection,
    where: str,
    request: PersistRequest,
    batches: Iterable[pa.RecordBatch],
    *,
    lineage: str,
    step: str,
    before_commit: Callable[[], None] | None = None,
) -> PersistResult:
    """Write `batches` exactly once per `(lineage, step)`; `conn` must have no transaction.

    `before_commit` runs last inside the transaction: raising there rolls the write back.
    """
    started = time.monotonic()
    ensure_marker_table(conn)
    try:
        with conn.begin():
            if not claim_marker(conn, lineage, step):
                log.info("persist %s/%s: already written, skipping", lineage, step)
                recorded = recorded_counts(conn, lineage, step)
                return PersistResult(
                    0, already_done=True, duration_s=_since(started), recorded=recorded
                )
            info = inspect_table(conn, request.table, where)
            first, batches = _peek(batches)
            columns = first.schema.names if first is not None else []
            check_target(info, request, columns)
            writer = _Writer(conn, info, request, columns, stage_table_name(lineage, step))
            counts = writer.write(batches) if first is not None else PersistCounts()
            record_marker(conn, lineage, step, counts)
            if before_commit is not None:
                before_commit()
    except (sa.exc.OperationalError, psycopg.OperationalError):
        raise  # transient (lock, lost connection, deadlock): the step retries the whole write
    except (sa.exc.DBAPIError, psycopg.Error) as exc:
        raise AppDatabaseError(
            f"persist to {request.table!r} in {where} failed, nothing was written: "
            f"{first_line(exc)}"
        ) from exc
    return PersistResult(
        rows_written=counts.inserted + counts.updated,
        rows_skipped=counts.skipped,
        errors=writer.errors.messages,
        duration_s=_since(started),
        rows_inserted=counts.inserted,
        rows_updated=counts.updated,
        rows_deleted=counts.deleted,
        recorded=counts,
    )


class _Writer:
    """Stages the source rows and applies them to the target in the request's mode."""

    def __init__(
        self,
        conn: Connection,
        info: TableInfo,
        request: PersistRequest,
        columns: list[str],
        stage: str,
    ) -> None:
        self.conn = conn
        self.request = request
        self.columns = columns
        self.errors = RowErrors(request.on_row_error == "skip", info.name)
        self.sqlite = conn.dialect.name == "sqlite"
        self.copy = conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"
        # Both names carry their schema: unqualified, a temporary table shadows a user
        # table of the same name on SQLite and PostgreSQL alike.
        self.target = _target_name(conn, info.name)
        self.temp_schema = "temp" if self.sqlite else "pg_temp"
        self.stage_name = stage
        self.stage = f"{self.temp_schema}.{q(conn, stage)}"
        self.row = q(conn, ROW_COLUMN)
        self.cols = ", ".join(q(conn, c) for c in columns)
        self.staged = 0
        self.stage_types: list[int] = []
        self.into_stage: CopyInto | None = None
        self.into_target: CopyInto | None = None
        if self.copy:
            raw = conn.connection.driver_connection
            assert raw is not None
            self.into_stage = CopyInto(raw, self.stage, self.cols, self.row)
            self.into_target = CopyInto(raw, self.target, self.cols, None)
        self.apply = Apply(conn, request, columns, (self.target, self.stage, self.row))
        self.indexed = False
        self.null_keys = False  # a staged chunk had a NULL in an upsert key column
        # Nothing to merge, match or skip: the rows can go straight into the target.
        self.direct = self.copy and request.mode == "append" and request.on_row_error == "fail"

    def write(self, batches: Iterable[pa.RecordBatch]) -> PersistCounts:
        """Write the rows; what that did to the target (inserted, updated, ...)."""
        deleted = 0
        if self.direct:
            tally = self._copy_direct(batches)
        elif self.copy and self.request.mode == "upsert":
            self._create_stage()
            tally = self._upsert_in_groups(batches)
            self._log_staged()
        else:
            self._create_stage()
            for batch in self._chunks(batches):
                self._stage_chunk(self._encoded(Chunk(batch, self.staged + 1), encode=False))
            self._log_staged()
            if self.copy:
                self.conn.exec_driver_sql(f"ANALYZE {self.stage}")
            if self.request.mode == "upsert":
                self.apply.drop_null_keys(self.errors)
            if self.request.mode == "replaceAll":
                deleted = self.apply.delete_matches()
            tally = self.apply.counted(self._apply_all) if self.staged else Tally()
            if self.sqlite:  # PostgreSQL drops it at commit
                self.conn.exec_driver_sql(f"DROP TABLE {self.stage}")
        return PersistCounts(tally.inserted, tally.updated, deleted, self.errors.count)

    def _apply_all(self) -> Tally:
        return self._bisect(1, self.staged, self.apply.insert_range)

    def _log_staged(self) -> None:
        how = "executemany"
        if self.copy:
            binary = self.into_stage.binary_rows if self.into_stage else 0
            how = f"COPY ({binary} binary, {self.staged - binary} csv)"
        log.debug("staged %d rows for %s via %s", self.staged, self.request.table, how)

    def _chunks(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.schema.names != self.columns:
                raise AppDatabaseError(
                    f"persist to {self.request.table!r}: batch columns {batch.schema.names} "
                    f"differ from the first batch's {self.columns}"
                )
            for offset in range(0, batch.num_rows, CHUNK_ROWS):
                yield batch.slice(offset, CHUNK_ROWS)

    def _copy_direct(self, batches: Iterable[pa.RecordBatch]) -> Tally:
        """Append under `fail` on PostgreSQL: COPY straight into the target (no staging
        table, no second pass); a chunk that fails is halved to name its first bad row."""
        written = Tally()
        for chunk in self._chunks(batches):
            first = self.staged + 1
            self.staged += chunk.num_rows
            assert self.into_target is not None
            load = self.into_target.loader(Chunk(chunk, first))
            written += self._bisect(first, self.staged, tallied(load))
        return written

    def _upsert_in_groups(self, batches: Iterable[pa.RecordBatch]) -> Tally:
        """PostgreSQL upsert: stage MERGE_ROWS rows, merge them, empty the stage, go on.

        Statements run in source order, so a key repeated in a later group is updated
        again by it: the last row still wins.
        """
        written, merged = Tally(), 0
        chunks = Prefetch(self._read_ahead(batches))
        try:
            for chunk in chunks:
                self._stage_chunk(chunk)
                if self.staged - merged >= MERGE_ROWS:
                    written += self._merge_group(merged + 1)
                    merged = self.staged
        finally:
            chunks.close()
        if self.staged > merged:
            written += self._merge_group(merged + 1)
        return written

    def _read_ahead(self, batches: Iterable[pa.RecordBatch]) -> Iterator[Chunk]:
        """The chunks with their binary form (runs on the Prefetch thread)."""
        first = 1
        for batch in self._chunks(batches):
            yield self._encoded(Chunk(batch, first), encode=True)
            first += batch.num_rows

    def _encoded(self, chunk: Chunk, *, encode: bool) -> Chunk:
        if self.into_stage is not None:
            self.into_stage.prepare(chunk.batch.schema, self.stage_types)
            chunk = self.into_stage.encode_all(chunk) if encode else chunk
        return chunk

    def _merge_group(self, first: int) -> Tally:
        if self.null_keys:
            self.apply.drop_null_keys(self.errors)
            self.null_keys = False
        written = self._bisect(first, self.staged, self.apply.insert_range)
        self.conn.exec_driver_sql(f"TRUNCATE {self.stage}")
        return written

    def _create_stage(self) -> None:
        on_commit = "" if self.sqlite else " ON COMMIT DROP"
        self.conn.exec_driver_sql(
            f"CREATE TEMP TABLE {self.stage}{on_commit} AS SELECT {self.cols}, "
            f"CAST(NULL AS BIGINT) AS {self.row} FROM {self.target} LIMIT 0"
        )
        if self.into_stage is not None:
            self.stage_types = column_type_oids(self.conn, self.stage)

    def _stage_chunk(self, chunk: Chunk) -> None:
        first, batch = chunk.first, chunk.batch
        self.staged += batch.num_rows
        key = self.request.upsert_key or []
        self.null_keys = self.null_keys or any(batch.column(c).null_count for c in key)
        if self.into_stage is not None:
            load = self.into_stage.loader(chunk)
        else:
            load = self._insert_loader(batch, first)
        self._bisect(first, self.staged, tallied(load))

    def _insert_loader(self, chunk: pa.RecordBatch, first: int) -> Callable[[int, int], int]:
        """Rows lo..hi of the chunk through `executemany` (SQLite, other drivers)."""
        values = [python_values(chunk.column(i), self.sqlite) for i in range(chunk.num_columns)]
        rows = list(zip(*values, range(first, first + chunk.num_rows), strict=True))
        mark = "?" if self.conn.dialect.paramstyle == "qmark" else "%s"
        marks = ", ".join([mark] * (len(self.columns) + 1))
        names = f"{self.stage} ({self.cols}, {self.row})"
        sql = f"INSERT INTO {names if mark == '?' else names.replace('%', '%%')} VALUES ({marks})"

        def load(lo: int, hi: int) -> int:
            self.conn.exec_driver_sql(sql, rows[lo - first : hi - first + 1])
            return hi - lo + 1

        return load

    def _bisect(self, lo: int, hi: int, attempt: Callable[[int, int], Tally]) -> Tally:
        """Run rows lo..hi in a savepoint; on a row error halve the range (see module doc)."""
        try:
            with self.conn.begin_nested():
                return attempt(lo, hi)
        except ROW_ERRORS as exc:
            if lo == hi:
                self.errors.add(lo, exc)
                return Tally()
        if not self.indexed and not self.direct:  # staging ranges are selected from now on
            index = q(self.conn, f"{self.stage_name}_row")
            # SQLite names the index's schema, PostgreSQL the table's.
            if self.sqlite:
                on = f"{self.temp_schema}.{index} ON {q(self.conn, self.stage_name)}"
            else:
                on = f"{index} ON {self.stage}"
            self.conn.exec_driver_sql(f"CREATE INDEX {on} ({self.row})")
            self.indexed = True
        mid = (lo + hi) // 2
        return self._bisect(lo, mid, attempt) + self._bisect(mid + 1, hi, attempt)


def _peek(
    batches: Iterable[pa.RecordBatch],
) -> tuple[pa.RecordBatch | None, Iterator[pa.RecordBatch]]:
    iterator = iter(batches)
    first = next(iterator, None)
    if first is None:
        return None, iterator
    return first, itertools.chain([first], iterator)


def _target_name(conn: Connection, table: str) -> str:
    """The target with the schema its unqualified name resolves to (before any staging)."""
    if conn.dialect.name == "sqlite":
        return f"main.{q(conn, table)}"
    if conn.dialect.name != "postgresql":
        return q(conn, table)
    schema = conn.execute(
        sa.text(
            "SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
            " ON n.oid = c.relnamespace WHERE c.oid = to_regclass(:name)"
        ),
        {"name": q(conn, table)},
    ).scalar()
    return f"{q(conn, schema)}.{q(conn, table)}" if schema else q(conn, table)


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
