"""The app databases (SPEC 8): where each app's database is, streamed reads, persists.

`AppDatabaseResource` is the Dagster resource the import and persist steps use. An app's
URL comes from `APP_DB_URL__<APP_ID>` (the app id upper-cased, `-` as `_`), else
`APP_DB_URL` (`{app_id}` in it is replaced), else an SQLite file
`<data_dir>/apps/<app_id>.sqlite`. `postgresql://` URLs use psycopg 3, SQLAlchemy 2.1's
default driver. URLs in messages and logs never show the password.

Each call opens its own engine without a pool (NullPool) and disposes of it afterwards: a
step makes one or two calls, the connect costs milliseconds, and nothing is shared across
the run worker's threads or forked processes. SQLite connections run in WAL mode (a
streamed import does not block a persist to the same file), with SQLAlchemy emitting
BEGIN itself so that savepoints and DDL are transactional; writers take the write lock up
front (BEGIN IMMEDIATE).

An SQLite file is opened read-write but never created (`mode=rw`): a missing file is an
error, not a new empty database. A persist notes the file's identity (device, inode) when
it connects and checks it before and after the commit, because a deleted or replaced file
does not stop SQLite: the write would go on into the old, unlinked file and be lost.

The write path (persist modes, exactly-once marker, COPY) lives in `resources.persist_sql`;
table reflection and type mapping in `resources.app_db_schema`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from resources import paths
from resources.app_db_schema import (
    AppDatabaseError,
    ColumnInfo,
    TableInfo,
    arrow_type,
    first_line,
    inspect_table,
    to_arrow,
)
from resources.env_names import app_db_url_variable
from resources.secrets import mask_db_url

if TYPE_CHECKING:
    import pyarrow as pa
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection

    from resources.persist_request import PersistCounts, PersistRequest, PersistResult

# SQLAlchemy, pyarrow and the writer (persist_sql: psycopg, pandas) are imported where
# they are used: the code location and every run process import this module for the
# resource class alone and must not pay ~1 s for libraries only a database step needs.
# PersistRequest / PersistResult / PersistCounts (persist_request imports SQLAlchemy) are
# re-exported through `__getattr__` below for the same reason.


def __getattr__(name: str) -> Any:
    if name in ("PersistCounts", "PersistRequest", "PersistResult"):
        from resources import persist_request

        return getattr(persist_request, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AppDatabaseError",
    "AppDatabaseResource",
    "ColumnInfo",
    "PersistCounts",
    "PersistRequest",
    "PersistResult",
    "TableInfo",
    "mask_url",
    "validate_app_id",
]

APP_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
SQLITE_BUSY_TIMEOUT_S = 30


def validate_app_id(app_id: str) -> str:
    """Return `app_id`, or raise when it does not match `[A-Za-z0-9][A-Za-z0-9_-]*`."""
    if not isinstance(app_id, str) or not APP_ID_PATTERN.fullmatch(app_id):
        raise AppDatabaseError(
            f"invalid appId {app_id!r}: expected letters, digits, '_' and '-', "
            "starting with a letter or digit"
        )
    return app_id


def mask_url(url: str) -> str:
    """The URL with every credential form masked (safe for messages and logs)."""
    return mask_db_url(url)


class AppDatabaseResource(dg.ConfigurableResource):
    """The app databases: SQLite (embedded default) or PostgreSQL, one per app id."""

    data_dir: str | None = Field(
        default=None,
        description="Folder holding apps/<app_id>.sqlite when no APP_DB_URL is set; "
        "default: the project's data folder ($WORKFLOWS_DATA_DIR or ./.data).",
    )

    def url_for(self, app_id: str) -> str:
        """The SQLAlchemy URL of an app's database (it may hold a password: do not log it)."""
        validate_app_id(app_id)
        specific = os.environ.get(app_db_url_variable(app_id))
        template = specific or os.environ.get("APP_DB_URL")
        if template:
            url = template.replace("{app_id}", app_id)
            # `postgres://` (Heroku, libpq) is not a dialect name in SQLAlchemy.
            return re.sub(r"^postgres://", "postgresql://", url)
        folder = Path(self.data_dir) if self.data_dir else paths.data_dir()
        folder = folder / "apps"
        folder.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{folder / app_id}.sqlite"

    def describe(self, app_id: str) -> str:
        """`app 'shop' (postgresql://user:***@host/db)`, for messages."""
        return f"app {app_id!r} ({mask_url(self.url_for(app_id))})"

    @contextmanager
    def connect(self, app_id: str, *, write: bool = False) -> Iterator[Connection]:
        """A connection to the app's database, closed (and its engine disposed) on exit.

        Operational errors (cannot connect, database locked, connection lost) propagate as
        SQLAlchemy / psycopg `OperationalError`s, which the steps turn into retries; every
        other problem is an `AppDatabaseError`.
        """
        import sqlalchemy as sa  # lazy: see the module imports

        url = self.url_for(app_id)
        path = sqlite_file(url)
        if path is not None and not path.exists():
            raise AppDatabaseError(
                f"{self.describe(app_id)}: the database file does not exist; create it and "
                "its tables first (a missing file is not created, so that a deleted database "
                "is never silently replaced by an empty one)"
            )
        engine = _create_engine(url, write=write)
        try:
            try:
                conn = engine.connect()
            except sa.exc.OperationalError as exc:
                # Kept as it is, so that the step retries it (a server restarting, a locked
                # file); the note names the database without its password.
                exc.add_note(f"while connecting to {self.describe(app_id)}")
                raise
            except sa.exc.DBAPIError as exc:
                raise AppDatabaseError(
                    f"cannot connect to {self.describe(app_id)}: {first_line(exc)}"
                ) from None
            try:
                yield conn
            finally:
                conn.close()
        finally:
            engine.dispose()

    def table_info(self, app_id: str, table: str) -> TableInfo:
        """The table's columns (with DuckDB types, nullability, defaults) and unique keys."""
        with self.connect(app_id) as conn:
            return inspect_table(conn, table, self.describe(app_id))

    def table_columns(self, app_id: str, table: str) -> dict[str, str]:
        """Column name -> DuckDB type name, in table order (for schema inference)."""
        info = self.table_info(app_id, table)
        return {name: col.duckdb_type for name, col in info.columns.items()}

    def table_summary(self, app_id: str, table: str) -> tuple[dict[str, str], int]:
        """The table's columns (DuckDB types) and its rows now, over one connection
        (shown on the table's asset, issue 9)."""
        import sqlalchemy as sa  # lazy: see the module imports

        with self.connect(app_id) as conn:
            info = inspect_table(conn, table, self.describe(app_id))
            quoted = conn.dialect.identifier_preparer.quote_identifier(table)
            count = int(conn.execute(sa.text(f"SELECT count(*) FROM {quoted}")).scalar_one())
        return {name: col.duckdb_type for name, col in info.columns.items()}, count

    def read_batches(
        self,
        app_id: str,
        table: str,
        columns: Sequence[str] | None = None,
        where_column: str | None = None,
        where_value: Any = None,
        batch_size: int = 10_000,
    ) -> Iterator[pa.RecordBatch]:
        """Stream `table` (optionally some columns, optionally `where_column = where_value`).

        Rows come from a server-side cursor on PostgreSQL and `fetchmany` on SQLite, at most
        `batch_size` at a time; every batch has the same schema (the Arrow form of
        `table_columns`), and an empty result yields one empty batch with that schema. The
        connection stays open until the iterator is exhausted or closed. A `None`
        `where_value` selects the rows where the column IS NULL.
        """
        import pyarrow as pa  # lazy: see the module imports

        if batch_size < 1:
            raise AppDatabaseError(f"batch_size must be at least 1, got {batch_size}")
        where = self.describe(app_id)
        with self.connect(app_id) as conn:
            info = inspect_table(conn, table, where)
            names = list(columns) if columns else list(info.columns)
            info.require_columns(names, "columns")
            if where_column is not None:
                info.require_columns([where_column], "whereColumn")
            types = [info.columns[n].duckdb_type for n in names]
            schema = pa.schema([(n, arrow_type(t)) for n, t in zip(names, types, strict=True)])
            result = _execute_select(conn, info, names, (where_column, where_value), batch_size)
            empty = True
            for rows in result.partitions(batch_size):
                empty = False
                yield _to_batch(rows, schema, types, table)
            if empty:
                yield _empty_batch(schema)

    def persist(
        self,
        app_id: str,
        request: PersistRequest,
        batches: Iterable[pa.RecordBatch],
        *,
        lineage: str,
        step: str,
    ) -> PersistResult:
        """Write `batches` (already in target column names) in `request.mode`, exactly once.

        The result counts the rows inserted, updated, deleted and skipped (see
        `PersistResult`); a call that finds its marker reports the earlier call's counts as
        `recorded`.

        See `resources.persist_sql` for the transaction, the staging table, the COPY fast path
        on PostgreSQL and how `onRowError` finds the bad rows.
        """
        from resources.persist_sql import persist_batches  # lazy: see the module imports

        where = self.describe(app_id)
        path = sqlite_file(self.url_for(app_id))
        with self.connect(app_id, write=True) as conn:
            same_file = _file_watch(path, f"persist to {request.table!r} in {where}")
            result = persist_batches(
                conn, where, request, batches, lineage=lineage, step=step, before_commit=same_file
            )
            if not result.already_done:  # deleted between the check above and the commit
                same_file(f"its {result.rows_written} row(s) were committed into the old file")
        return result


def sqlite_file(url: str) -> Path | None:
    """The file of a plain SQLite file URL (absolute), else None (server, memory, URI)."""
    import sqlalchemy as sa  # lazy: see the module imports

    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:") or parsed.query.get("uri"):
        return None  # an SQLite URI: its own options (mode, cache) are the user's choice
    return Path(os.path.abspath(database))


def _file_watch(path: Path | None, what: str) -> Callable[..., None]:
    """A check that `path` is still the file it is now; a no-op without a file."""
    if path is None:
        return lambda *_: None
    identity = _identity(path)

    def check(consequence: str = "nothing was written") -> None:
        now = _identity(path)
        if identity is None or now != identity:
            raise AppDatabaseError(
                f"{what}: the database file {path.name} was deleted or replaced during the "
                f"write; {consequence}"
            )

    return check


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


def _create_engine(url: str, *, write: bool) -> sa.Engine:
    import sqlalchemy as sa  # lazy: see the module imports
    from sqlalchemy.pool import NullPool  # lazy: see the module imports

    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise AppDatabaseError(f"not a database URL: {mask_url(url)}") from None
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, poolclass=NullPool, hide_parameters=True)
    path = sqlite_file(url)
    if path is not None:  # read-write, never create (see the module docstring)
        uri = "file:" + urllib.parse.quote(str(path))
        parsed = parsed.set(database=uri, query={**parsed.query, "mode": "rw", "uri": "true"})
    engine = sa.create_engine(
        parsed,
        poolclass=NullPool,
        hide_parameters=True,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S},
    )
    begin = "BEGIN IMMEDIATE" if write else "BEGIN"

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN (below), not sqlite3
        _use_wal(dbapi_conn)

    def on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    sa.event.listen(engine, "connect", on_connect)
    sa.event.listen(engine, "begin", on_begin)
    return engine


def _use_wal(dbapi_conn: Any) -> None:
    """Switch a SQLite file to WAL (persistent: done once per file, then a no-op).

    Changing the journal mode needs the file to itself, and SQLite answers "database is
    locked" at once (without its busy handler) while another connection is switching it
    too: connections opened together on a new file race here, so retry until the
    busy timeout.
    """
    import sqlite3
    import time

    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            mode = dbapi_conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                dbapi_conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _execute_select(
    conn: Connection,
    info: TableInfo,
    names: list[str],
    where: tuple[str | None, Any],
    batch_size: int,
) -> sa.CursorResult[Any]:
    import sqlalchemy as sa  # lazy: see the module imports

    where_column, where_value = where
    quote = conn.dialect.identifier_preparer.quote_identifier
    sql = f"SELECT {', '.join(quote(n) for n in names)} FROM {quote(info.name)}"
    params: dict[str, Any] = {}
    if where_column is not None and where_value is None:
        sql += f" WHERE {quote(where_column)} IS NULL"
    elif where_column is not None:
        sql += f" WHERE {quote(where_column)} = :where_value"
        params["where_value"] = _bind_value(where_value, conn.dialect.name)
    streaming = conn.execution_options(stream_results=True, yield_per=batch_size)
    try:
        return streaming.execute(sa.text(sql), params)
    except sa.exc.DataError as exc:
        raise AppDatabaseError(
            f"whereValue {where_value!r} does not fit column {where_column!r} of table "
            f"{info.name!r} in {info.where}: {first_line(exc)}"
        ) from exc


def _bind_value(value: Any, dialect: str) -> Any:
    """A where value as a parameter the column's type accepts.

    PostgreSQL gets text, which psycopg sends untyped, so the server reads it as the
    column's type (an integer parameter against a TEXT column would be an operator error).
    SQLite compares with the column's affinity, so numbers stay numbers there.
    """
    if dialect == "sqlite":
        if isinstance(value, dt.datetime):
            return value.isoformat(sep=" ")
        if isinstance(value, (dt.date, dt.time)):
            return value.isoformat()
        return str(value) if isinstance(value, decimal.Decimal) else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.date, dt.time)):  # datetime too
        return value.isoformat()
    return value if isinstance(value, str) else str(value)


def _to_batch(
    rows: Sequence[Sequence[Any]], schema: pa.Schema, types: list[str], table: str
) -> pa.RecordBatch:
    import pyarrow as pa  # lazy: see the module imports

    columns = list(zip(*rows, strict=True)) if rows else [() for _ in types]
    arrays = []
    for name, duckdb_type, values in zip(schema.names, types, columns, strict=True):
        try:
            arrays.append(to_arrow(list(values), duckdb_type))
        except ValueError as exc:
            raise AppDatabaseError(f"table {table!r}, column {name!r}: {exc}") from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    import pyarrow as pa  # lazy: see the module imports

    return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)
