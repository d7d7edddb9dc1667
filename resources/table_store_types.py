"""Column types of step tables: DuckDB type names, their Arrow types, and value casting.

Casting rule: a cast either keeps the value exactly or fails. `1.0 -> INTEGER` gives 1,
`1.5 -> INTEGER` fails, `"1.005" -> DECIMAL(10,2)` fails, a timestamp with a time of day
into a DATE fails. Nothing becomes NULL except a missing value or `None`.

Per type, what a value may be (None is always NULL):
- VARCHAR: str; int/float/Decimal as text; bool as `true`/`false`; dict/list as JSON text;
  date/time/datetime as ISO-8601; UUID as its canonical text.
- JSON: dict/list/number/bool are serialised; a str must already be valid JSON text
  (DuckDB's own VARCHAR -> JSON rule), so JSON from a database column is not encoded twice.
- integer types: int (not bool), an integral float, a decimal-digits string; range-checked.
- FLOAT/DOUBLE: int/float/Decimal (not bool) or a numeric string (`nan`/`inf` allowed).
- BOOLEAN: bool, the ints 0/1, the strings true/false/t/f/yes/no/1/0 (any case).
- DATE: date, 'YYYY-MM-DD', or a timestamp whose time is midnight (the date as written).
- TIMESTAMP: ISO-8601 string or datetime; an offset (`Z`, `+02:00`) is converted to UTC.
- TIMESTAMP WITH TIME ZONE: the same; a value without offset is taken as UTC.
- TIME: `HH:MM[:SS[.ffffff]]` or time. DECIMAL(p,s): int/float/Decimal/str, lossless.
- UUID: UUID or its text forms. BLOB: bytes, or str as UTF-8.
Epoch numbers are not timestamps here (seconds or milliseconds would be a guess).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
import uuid
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import orjson
import pyarrow as pa

from resources.secrets import redact
from resources.table_store_fast import fast_column

Converter = Callable[[Any], Any]

_INT_RANGES = {
    "TINYINT": (pa.int8(), -(2**7), 2**7 - 1),
    "SMALLINT": (pa.int16(), -(2**15), 2**15 - 1),
    "INTEGER": (pa.int32(), -(2**31), 2**31 - 1),
    "BIGINT": (pa.int64(), -(2**63), 2**63 - 1),
    "UTINYINT": (pa.uint8(), 0, 2**8 - 1),
    "USMALLINT": (pa.uint16(), 0, 2**16 - 1),
    "UINTEGER": (pa.uint32(), 0, 2**32 - 1),
    "UBIGINT": (pa.uint64(), 0, 2**64 - 1),
}
_SIMPLE_ARROW = {
    "VARCHAR": pa.string(),
    "JSON": pa.json_(),
    "UUID": pa.uuid(),
    "BLOB": pa.binary(),
    "DOUBLE": pa.float64(),
    "FLOAT": pa.float32(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "TIME": pa.time64("us"),
    "TIMESTAMP": pa.timestamp("us"),
    "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", tz="UTC"),
}
TIMESTAMPTZ = "TIMESTAMP WITH TIME ZONE"

#: Canonical type names (as DuckDB prints them; DECIMAL stands for every DECIMAL(p,s)).
SUPPORTED_TYPES: frozenset[str] = frozenset({*_INT_RANGES, *_SIMPLE_ARROW, "DECIMAL"})

_ALIASES = {
    "TEXT": "VARCHAR", "STRING": "VARCHAR", "CHAR": "VARCHAR", "BPCHAR": "VARCHAR",
    "NVARCHAR": "VARCHAR", "INT": "INTEGER", "INT4": "INTEGER", "INT32": "INTEGER",
    "SIGNED": "INTEGER", "INT8": "BIGINT", "INT64": "BIGINT", "LONG": "BIGINT",
    "INT2": "SMALLINT", "INT16": "SMALLINT", "SHORT": "SMALLINT", "INT1": "TINYINT",
    "FLOAT8": "DOUBLE", "DOUBLE PRECISION": "DOUBLE", "FLOAT4": "FLOAT", "REAL": "FLOAT",
    "BOOL": "BOOLEAN", "LOGICAL": "BOOLEAN", "DATETIME": "TIMESTAMP",
    "TIMESTAMP WITHOUT TIME ZONE": "TIMESTAMP", "TIMESTAMPTZ": TIMESTAMPTZ,
    "BYTEA": "BLOB", "BINARY": "BLOB", "VARBINARY": "BLOB", "NUMERIC": "DECIMAL",
}  # fmt: skip
_TYPE_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 ]*?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")
_DECIMAL_RE = re.compile(r"^DECIMAL\((\d+),(\d+)\)$")
_INT_TEXT = re.compile(r"^\s*[+-]?\d+\s*$")


class CastFailure(ValueError):
    """One value that cannot be cast; the caller adds where it was."""


@lru_cache(maxsize=512)
def normalize_type(type_str: str) -> str:
    """The canonical DuckDB spelling of a supported column type.

    `int` -> `INTEGER`, `timestamptz` -> `TIMESTAMP WITH TIME ZONE`, `numeric(10, 2)` ->
    `DECIMAL(10,2)`, `DECIMAL` -> `DECIMAL(18,3)` (DuckDB's default), `VARCHAR(20)` ->
    `VARCHAR` (DuckDB ignores the length too).

    Raises:
        ValueError: the type is unknown, nested, or a DECIMAL with impossible bounds.
    """
    match = _TYPE_RE.match(type_str) if isinstance(type_str, str) else None
    if not match:
        raise ValueError(f"unsupported column type {type_str!r}; {_supported_hint()}")
    name = " ".join(match.group(1).upper().split())
    name = _ALIASES.get(name, name)
    size, scale = match.group(2), match.group(3)
    if name == "DECIMAL":
        precision = int(size) if size else 18
        scale_n = int(scale) if scale else (0 if size else 3)
        if not 1 <= precision <= 38 or scale_n > precision:
            raise ValueError(
                f"unsupported column type {type_str!r}: DECIMAL(p,s) needs 1 <= p <= 38 "
                "and 0 <= s <= p"
            )
        return f"DECIMAL({precision},{scale_n})"
    if name not in SUPPORTED_TYPES or (size and name != "VARCHAR"):
        raise ValueError(f"unsupported column type {type_str!r}; {_supported_hint()}")
    return name


def _supported_hint() -> str:
    return "expected one of " + ", ".join(sorted(SUPPORTED_TYPES - {"DECIMAL"})) + ", DECIMAL(p,s)"


def decimal_bounds(type_name: str) -> tuple[int, int] | None:
    """(precision, scale) of a canonical DECIMAL type, else None."""
    match = _DECIMAL_RE.match(type_name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def arrow_type(type_name: str) -> pa.DataType:
    """The Arrow type that a canonical type is stored as (DuckDB reads it back the same)."""
    bounds = decimal_bounds(type_name)
    if bounds:
        return pa.decimal128(*bounds)
    if type_name in _INT_RANGES:
        return _INT_RANGES[type_name][0]
    return _SIMPLE_ARROW[type_name]


def cast_column(values: list[Any], type_name: str) -> pa.Array:
    """Cast Python values to one Arrow column.

    Raises:
        ColumnCastError: with the index of the first value that cannot be cast.
    """
    fast = fast_column(values, type_name, arrow_type(type_name))
    if fast is not None:
        return fast
    convert = converter(type_name)
    try:
        converted = [None if v is None else convert(v) for v in values]
    except (CastFailure, TypeError, ValueError, ArithmeticError):
        for index, value in enumerate(values):
            try:
                None if value is None else convert(value)
            except (CastFailure, TypeError, ValueError, ArithmeticError) as exc:
                raise ColumnCastError(index, value, _reason(exc)) from exc
        raise  # pragma: no cover - a converter that fails only in bulk
    return pa.array(converted, type=arrow_type(type_name))


class ColumnCastError(ValueError):
    """The first value of a column that cannot be cast, by its index in the column."""

    def __init__(self, index: int, value: Any, reason: str) -> None:
        super().__init__(reason)
        self.index, self.value, self.reason = index, value, reason


def _reason(exc: BaseException) -> str:
    if isinstance(exc, CastFailure):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@lru_cache(maxsize=256)
def converter(type_name: str) -> Converter:
    """The function turning one non-None value into what `arrow_type` accepts."""
    if type_name in _INT_RANGES:
        _, low, high = _INT_RANGES[type_name]
        return _int_converter(low, high)
    bounds = decimal_bounds(type_name)
    if bounds:
        return _decimal_converter(*bounds)
    return _CONVERTERS[type_name]


def _not_bool(value: Any, target: str) -> None:
    if isinstance(value, bool):
        raise CastFailure(f"a boolean is not {target}")


def _int_converter(low: int, high: int) -> Converter:
    def convert(value: Any) -> int:
        if type(value) is int:
            result = value
        elif isinstance(value, str) and _INT_TEXT.match(value):
            result = int(value)
        elif isinstance(value, float | decimal.Decimal) and math.isfinite(value):
            if value != int(value):
                raise CastFailure("has a fractional part")
            result = int(value)
        else:
            _not_bool(value, "an integer")
            raise CastFailure("not an integer")
        if not low <= result <= high:
            raise CastFailure(f"out of range [{low}, {high}]")
        return result

    return convert


def _to_float(value: Any) -> float:
    if type(value) is float:
        return value
    _not_bool(value, "a number")
    if isinstance(value, int | decimal.Decimal):
        return float(value)
    if isinstance(value, str) and "_" not in value:
        return float(value)
    raise CastFailure("not a number")


def _to_float32(value: Any) -> float:
    result = _to_float(value)
    if math.isfinite(result) and abs(result) > 3.4028234663852886e38:
        raise CastFailure("out of FLOAT range")
    return result


def _decimal_converter(precision: int, scale: int) -> Converter:
    quantum = decimal.Decimal(1).scaleb(-scale)
    limit = decimal.Decimal(10) ** (precision - scale)
    context = decimal.Context(prec=80)

    def convert(value: Any) -> decimal.Decimal:
        _not_bool(value, "a number")
        if isinstance(value, decimal.Decimal | int):
            number = decimal.Decimal(value)
        elif isinstance(value, float):
            number = decimal.Decimal(repr(value))
        elif isinstance(value, str) and "_" not in value:
            number = decimal.Decimal(value.strip())
        else:
            raise CastFailure("not a number")
        if not number.is_finite():
            raise CastFailure("not a finite number")
        result = number.quantize(quantum, context=context)
        if result != number:
            raise CastFailure(f"has more than {scale} decimal places")
        if abs(result) >= limit:
            raise CastFailure(f"more than {precision - scale} digits before the point")
        return result

    return convert


_TRUE = frozenset({"true", "t", "yes", "1"})
_FALSE = frozenset({"false", "f", "no", "0"})


def _to_bool(value: Any) -> bool:
    if type(value) is bool:
        return value
    if type(value) is int and value in (0, 1):
        return value == 1
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
    raise CastFailure("not a boolean (true/false, t/f, yes/no, 1/0)")


def _to_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value.strip())
    raise CastFailure("not an ISO-8601 timestamp")


def _to_timestamp(value: Any) -> dt.datetime:
    result = _to_datetime(value)
    if result.tzinfo is not None:
        result = result.astimezone(dt.UTC).replace(tzinfo=None)
    return result


def _to_timestamptz(value: Any) -> dt.datetime:
    result = _to_datetime(value)
    if result.tzinfo is None:
        return result.replace(tzinfo=dt.UTC)
    return result.astimezone(dt.UTC)


def _to_date(value: Any) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    result = _to_datetime(value)
    if result.time() != dt.time(0):
        raise CastFailure("has a time of day (declare TIMESTAMP, or cast in SQL)")
    return result.date()


def _to_time(value: Any) -> dt.time:
    if isinstance(value, dt.time):
        if value.tzinfo is not None:
            raise CastFailure("a time with a time zone is not TIME")
        return value
    if isinstance(value, str):
        return dt.time.fromisoformat(value.strip())
    raise CastFailure("not an ISO-8601 time")


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _json_text(value: Any) -> str:
    return orjson.dumps(value, default=_json_default).decode()


def _to_varchar(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, dict | list | tuple | bool):
        return _json_text(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, int | float | decimal.Decimal | uuid.UUID):
        return str(value)
    raise CastFailure(f"a {type(value).__name__} is not text")


def _to_json(value: Any) -> str:
    if isinstance(value, str):
        orjson.loads(value)  # DuckDB's VARCHAR -> JSON cast also demands valid JSON text
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise CastFailure("NaN and Infinity are not JSON")
    return _json_text(value)


def _to_uuid(value: Any) -> bytes:
    if isinstance(value, uuid.UUID):
        return value.bytes
    if isinstance(value, str):
        return uuid.UUID(value.strip()).bytes
    if isinstance(value, bytes) and len(value) == 16:
        return value
    raise CastFailure("not a UUID")


def _to_blob(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise CastFailure("not bytes")


_CONVERTERS: dict[str, Converter] = {
    "VARCHAR": _to_varchar,
    "JSON": _to_json,
    "UUID": _to_uuid,
    "BLOB": _to_blob,
    "DOUBLE": _to_float,
    "FLOAT": _to_float32,
    "BOOLEAN": _to_bool,
    "DATE": _to_date,
    "TIME": _to_time,
    "TIMESTAMP": _to_timestamp,
    TIMESTAMPTZ: _to_timestamptz,
}


def infer_type(values: list[Any]) -> str:
    """The column type for values without a declared schema.

    All bool -> BOOLEAN; all int -> BIGINT; int and float -> DOUBLE; all str -> VARCHAR
    (strings are never parsed into dates or numbers); all dict/list -> JSON; datetime ->
    TIMESTAMP WITH TIME ZONE when it has an offset, else TIMESTAMP; date -> DATE;
    time -> TIME; Decimal -> DECIMAL(38, largest scale seen); UUID -> UUID; bytes ->
    BLOB. A mix of anything else, or only NULLs -> VARCHAR (objects as JSON text).
    """
    kinds = {_kind(v) for v in values if v is not None}
    if len(kinds) == 1:
        kind = kinds.pop()
        if kind == "DECIMAL":
            scale = max(_decimal_scale(v) for v in values if v is not None)
            return f"DECIMAL(38,{min(scale, 37)})"
        return kind
    if kinds == {"BIGINT", "DOUBLE"}:
        return "DOUBLE"
    return "VARCHAR"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, dt.datetime):
        return TIMESTAMPTZ if value.tzinfo is not None else "TIMESTAMP"
    for types, kind in _KINDS:
        if isinstance(value, types):
            return kind
    return "OTHER"


_KINDS: list[tuple[type | tuple[type, ...], str]] = [
    (int, "BIGINT"), (float, "DOUBLE"), (str, "VARCHAR"), ((dict, list), "JSON"),
    (dt.date, "DATE"), (dt.time, "TIME"), (decimal.Decimal, "DECIMAL"), (uuid.UUID, "UUID"),
    (bytes, "BLOB"),
]  # fmt: skip


def _decimal_scale(value: decimal.Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


class CastError(ValueError):
    """A value that cannot be stored in its column; names step, row, column and value."""

    def __init__(
        self, step: str, row: int, column: str, value: Any, type_name: str, reason: str
    ) -> None:
        # The reason may quote the value again (Python's int() does), uncut: redact it all.
        super().__init__(
            redact(
                f"step '{step}': row {row}, column '{column}': cannot cast {preview(value)} "
                f"to {type_name}: {reason}"
            )
        )
        self.step, self.row, self.column = step, row, column
        self.value, self.type_name, self.reason = value, type_name, reason


def preview(value: Any, limit: int = 80) -> str:
    """A value for an error message, secrets masked, cut to `limit` characters.

    Masked before it is cut: the cut could leave a secret's head, which `redact` no
    longer recognises.
    """
    try:
        text = _json_text(value) if isinstance(value, dict | list) else repr(value)
    except TypeError:
        text = repr(value)
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
