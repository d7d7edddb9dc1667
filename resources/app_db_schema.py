"""What an app database table looks like, and its values on the way out and in.

- Reflection (columns as DuckDB / Arrow types, nullability, unique keys) goes through
  SQLAlchemy's inspector, so SQLite and PostgreSQL answer the same questions the same way.
- Out: values the driver returns become Arrow arrays of the column's type (`to_arrow`).
- In: Arrow columns become what `executemany` takes (`python_values`) or what PostgreSQL's
  CSV `COPY` reads (`csv_ready`).

Shared by the reader (`resources.app_database`) and the writer (`resources.persist_sql`).
"""

from __future__ import annotations

import datetime as dt
import decimal
import difflib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection
    from sqlalchemy.types import TypeEngine

# pyarrow and SQLAlchemy are imported by the functions that use them, not here: loading
# the code location imports this module (through the resources) and must not pay
# ~0.6 s for libraries only a step that touches an app database needs (issue 8).


class AppDatabaseError(Exception):
    """A problem with an app database: bad app id, unknown table or column, failed write."""


@dataclass(frozen=True)
class ColumnInfo:
    """One column of a target table."""

    name: str
    duckdb_type: str
    nullable: bool
    has_default: bool


@dataclass(frozen=True)
class TableInfo:
    """A table's columns (in table order) and the column sets that are unique."""

    name: str
    where: str  # "app 'shop' (postgresql://u:***@host/db)", for messages
    columns: dict[str, ColumnInfo]
    unique_keys: tuple[frozenset[str], ...]

    def require_columns(self, names: Iterable[str], role: str) -> None:
        """Raise naming every one of `names` that is not a column of the table."""
        unknown = [n for n in names if n not in self.columns]
        if unknown:
            hints = "".join(did_you_mean(n, self.columns) for n in unknown)
            raise AppDatabaseError(
                f"{role}: table {self.name!r} in {self.where} has no column "
                f"{', '.join(map(repr, unknown))}{hints}; its columns are "
                f"{', '.join(self.columns)}"
            )

    def has_unique_key(self, names: Sequence[str]) -> bool:
        """True when a primary key, unique constraint or plain unique index is exactly `names`."""
        return frozenset(names) in self.unique_keys


def did_you_mean(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def first_line(exc: BaseException) -> str:
    """The driver's own message, without SQLAlchemy's SQL/parameter echo.

    From PostgreSQL it adds the key of a unique violation and the column a COPY value was
    meant for (but not "Failing row contains (...)", which would echo the whole row).
    """
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    line = text.splitlines()[0] if text else type(orig).__name__
    diag = getattr(orig, "diag", None)
    if diag is not None:
        detail = diag.message_detail or ""
        if detail.startswith("Key ("):
            line += f" ({detail.rstrip('.')})"
        copied = re.search(r", column (\w+): ", diag.context or "")
        if copied:
            line += f" (column {copied.group(1)})"
    return line


def inspect_table(conn: Connection, table: str, where: str) -> TableInfo:
    """Reflect `table`, or raise a clear error (with the tables that do exist)."""
    import sqlalchemy as sa  # lazy: see the module imports

    inspector = sa.inspect(conn)
    if not inspector.has_table(table):
        names = [n for n in inspector.get_table_names() if not n.startswith("_workflow_")]
        listing = ", ".join(sorted(names)) or "none"
        raise AppDatabaseError(
            f"table {table!r} does not exist in {where}{did_you_mean(table, names)}; "
            f"tables: {listing}"
        )
    dialect = conn.dialect.name
    columns = {}
    for col in inspector.get_columns(table):
        has_default = bool(
            col.get("default") is not None or col.get("identity") or col.get("autoincrement")
        )
        columns[col["name"]] = ColumnInfo(
            name=col["name"],
            duckdb_type=duckdb_type(col["type"], dialect),
            nullable=bool(col.get("nullable", True)),
            has_default=has_default,
        )
    keys = _unique_keys(inspector, table)
    if dialect == "sqlite":
        keys = tuple(dict.fromkeys(keys + _sqlite_unique_indexes(conn, table)))
    return TableInfo(table, where, columns, keys)


def _sqlite_unique_indexes(conn: Connection, table: str) -> tuple[frozenset[str], ...]:
    """SQLite's own list of unique indexes, autoindexes of inline `UNIQUE` included.

    SQLAlchemy finds unique constraints by parsing the CREATE TABLE text and misses some
    inline forms (`sku VARCHAR(20) UNIQUE NOT NULL`, quoted column names).
    """
    keys = []
    indexes = conn.exec_driver_sql(
        'SELECT name, "unique", partial FROM pragma_index_list(?)', (table,)
    )
    for name, unique, partial in indexes.fetchall():
        if not unique or partial:
            continue
        info = conn.exec_driver_sql("SELECT name FROM pragma_index_info(?)", (name,)).fetchall()
        columns = [row[0] for row in info]
        if columns and None not in columns:  # None: an expression index
            keys.append(frozenset(columns))
    return tuple(keys)


def _unique_keys(inspector: sa.Inspector, table: str) -> tuple[frozenset[str], ...]:
    keys: list[frozenset[str]] = []
    pk = inspector.get_pk_constraint(table).get("constrained_columns") or []
    if pk:
        keys.append(frozenset(pk))
    for uc in inspector.get_unique_constraints(table):
        keys.append(frozenset(uc["column_names"]))
    for ix in inspector.get_indexes(table):
        # ON CONFLICT (cols) cannot use a partial or an expression index.
        partial = any(k.endswith("_where") for k in ix.get("dialect_options", {}))
        names = ix["column_names"]
        if ix["unique"] and not partial and not ix.get("expressions") and None not in names:
            keys.append(frozenset(n for n in names if n is not None))
    return tuple(keys)


def duckdb_type(sa_type: TypeEngine, dialect: str) -> str:
    """The DuckDB type a reflected column reads as. Unknown types read as VARCHAR."""
    import sqlalchemy as sa  # lazy: see the module imports

    t = sa_type
    if isinstance(t, sa.Boolean):
        return "BOOLEAN"
    if isinstance(t, sa.Integer):
        if dialect == "sqlite":  # every SQLite integer is 64-bit
            return "BIGINT"
        return "BIGINT" if isinstance(t, sa.BigInteger) else "INTEGER"
    if isinstance(t, sa.Float):  # before Numeric: Float is a Numeric
        return "DOUBLE"
    if isinstance(t, sa.Numeric):
        precision, scale = t.precision, t.scale or 0
        if precision is None or precision > 38:
            return "DOUBLE"
        return f"DECIMAL({precision},{scale})"
    if isinstance(t, sa.DateTime):
        return "TIMESTAMPTZ" if t.timezone else "TIMESTAMP"
    for sa_class, name in _simple_types():
        if isinstance(t, sa_class):
            return name
    return "VARCHAR"


@cache
def _simple_types() -> tuple[tuple[type, str], ...]:
    import sqlalchemy as sa  # lazy: see the module imports

    return (
        (sa.Date, "DATE"),
        (sa.Time, "TIME"),
        (sa.Interval, "INTERVAL"),
        (sa.JSON, "JSON"),
        (sa.LargeBinary, "BLOB"),
    )


def arrow_type(duckdb_name: str) -> pa.DataType:
    """The Arrow type of a column of `duckdb_name` (as produced by `duckdb_type`)."""
    import pyarrow as pa  # lazy: see the module imports

    if duckdb_name.startswith("DECIMAL("):
        precision, scale = (int(x) for x in duckdb_name[8:-1].split(","))
        return pa.decimal128(precision, scale)
    return _arrow_types().get(duckdb_name, pa.string())


@cache
def _arrow_types() -> dict[str, pa.DataType]:
    import pyarrow as pa  # lazy: see the module imports

    return {
        "BOOLEAN": pa.bool_(),
        "INTEGER": pa.int32(),
        "BIGINT": pa.int64(),
        "DOUBLE": pa.float64(),
        "TIMESTAMP": pa.timestamp("us"),
        "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
        "DATE": pa.date32(),
        "TIME": pa.time64("us"),
        "INTERVAL": pa.duration("us"),
        "BLOB": pa.binary(),
    }


def to_arrow(values: list[Any], duckdb_name: str) -> pa.Array:
    """Values read from the database as an Arrow array of the column's type.

    The driver's own values are tried first; values stored loosely (SQLite keeps dates as
    text, integers in a TEXT column, 0/1 for booleans) are converted one by one. A value that
    cannot be converted raises `ValueError` naming it; it never becomes NULL.
    """
    import pyarrow as pa  # lazy: see the module imports

    target = arrow_type(duckdb_name)
    try:
        return pa.array(values, type=target)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass
    convert = _converter(duckdb_name)
    out = []
    for value in values:
        try:
            out.append(None if value is None else convert(value))
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise ValueError(f"value {value!r} is not a {duckdb_name}: {exc}") from None
    return pa.array(out, type=target)


def _to_int(v: Any) -> int:
    if isinstance(v, (float, decimal.Decimal)) and v != int(v):
        raise ValueError("has a fraction")
    return int(v)


def _to_bool(v: Any) -> bool:
    if isinstance(v, str):
        word = v.strip().lower()
        if word in ("t", "true", "y", "yes", "1", "on"):
            return True
        if word in ("f", "false", "n", "no", "0", "off"):
            return False
        raise ValueError("not a boolean word")
    if v in (0, 1):
        return bool(v)
    raise ValueError("not 0 or 1")


def _to_timestamp(v: Any, aware: bool) -> dt.datetime:
    if isinstance(v, str):
        v = dt.datetime.fromisoformat(v.strip())
    elif isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        v = dt.datetime(v.year, v.month, v.day)
    if not isinstance(v, dt.datetime):
        raise TypeError(type(v).__name__)
    if aware:
        return v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v
    return v if v.tzinfo is None else v.astimezone(dt.UTC).replace(tzinfo=None)


def _to_date(v: Any) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, str):
        text = v.strip()
        return dt.date.fromisoformat(text) if len(text) == 10 else _to_timestamp(text, False).date()
    if not isinstance(v, dt.date):
        raise TypeError(type(v).__name__)
    return v


def _to_text(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).decode("utf-8")
    return str(v)


def _to_decimal(scale: int) -> Callable[[Any], decimal.Decimal]:
    quantum = decimal.Decimal(1).scaleb(-scale)
    return lambda v: decimal.Decimal(str(v).strip()).quantize(quantum)


def _converter(duckdb_name: str) -> Callable[[Any], Any]:
    if duckdb_name.startswith("DECIMAL("):
        return _to_decimal(int(duckdb_name[8:-1].split(",")[1]))
    converters: dict[str, Callable[[Any], Any]] = {
        "BOOLEAN": _to_bool,
        "INTEGER": _to_int,
        "BIGINT": _to_int,
        "DOUBLE": float,
        "TIMESTAMP": lambda v: _to_timestamp(v, False),
        "TIMESTAMPTZ": lambda v: _to_timestamp(v, True),
        "DATE": _to_date,
        "TIME": lambda v: dt.time.fromisoformat(v) if isinstance(v, str) else v,
        "BLOB": lambda v: v.encode() if isinstance(v, str) else bytes(v),
    }
    return converters.get(duckdb_name, _to_text)


# --- values on their way in: Arrow -> what the driver or COPY takes ----------------------


def csv_ready(batch: pa.RecordBatch) -> pa.Table:
    """The batch with every column in a form Arrow writes as CSV that PostgreSQL reads back.

    Arrow quotes every string and writes NULL as an empty unquoted field, which is exactly
    PostgreSQL's CSV convention. Nested values become JSON text, binary becomes bytea hex,
    durations become `<n> microseconds`, dictionaries are decoded.
    """
    import pyarrow as pa  # lazy: see the module imports

    arrays = []
    for array in batch.columns:
        kind = array.type
        if pa.types.is_dictionary(kind):
            array = array.dictionary_decode()
            kind = array.type
        if pa.types.is_timestamp(kind) and kind.unit == "ns":
            array = array.cast(pa.timestamp("us", kind.tz), safe=False)
        elif pa.types.is_nested(kind):
            array = pa.array(python_values(array, False), type=pa.string())
        elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            array = pa.array([None if v is None else "\\x" + v.hex() for v in array.to_pylist()])
        elif pa.types.is_duration(kind):
            micros = array.cast(pa.duration("us")).cast(pa.int64()).to_pylist()
            array = pa.array([None if v is None else f"{v} microseconds" for v in micros])
        arrays.append(array)
    return pa.Table.from_arrays(arrays, names=batch.schema.names)


def python_values(array: pa.Array, sqlite: bool) -> list[Any]:
    """An Arrow column as values the driver takes (nested values become JSON text)."""
    import pyarrow as pa  # lazy: see the module imports

    kind = array.type
    if pa.types.is_timestamp(kind) and kind.unit == "ns":
        array = array.cast(pa.timestamp("us", kind.tz), safe=False)
    values = array.to_pylist()
    convert = _value_converter(kind, sqlite)
    if convert is None:
        return values
    return [None if v is None else convert(v) for v in values]


def _value_converter(kind: pa.DataType, sqlite: bool) -> Callable[[Any], Any] | None:
    import pyarrow as pa  # lazy: see the module imports

    if pa.types.is_nested(kind):
        return lambda v: json.dumps(v, default=str)
    if not sqlite:
        return None
    if pa.types.is_timestamp(kind):
        return lambda v: v.isoformat(sep=" ")
    if pa.types.is_decimal(kind) or pa.types.is_duration(kind):
        return str
    if pa.types.is_date(kind) or pa.types.is_time(kind):
        return _isoformat
    return None


def _isoformat(value: dt.date | dt.time) -> str:
    return value.isoformat()
