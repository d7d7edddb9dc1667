"""Columns that Arrow can build in C, with the same result as the per-value converters.

`resources.table_store_types.cast_column` converts each value in Python (about 1-5 us a
value). A column whose values all have the type the column is stored as (ints for an
integer column, str for VARCHAR, float for DOUBLE, bool for BOOLEAN) or, for TIMESTAMP
WITH TIME ZONE, ISO-8601 texts with a zone, is built by Arrow directly; any doubt (a
mixed column, an overflow, a bad date) returns None and the converters decide, so errors
are still named by their row and value.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from resources.arrow_setup import keep_pandas_lazy

# Every Arrow column of a step table is built through here (or after it is imported).
keep_pandas_lazy()

# Stored as the Python type itself: the converter returns such a value unchanged.
_EXACT = {
    "VARCHAR": str,
    "DOUBLE": float,
    "BOOLEAN": bool,
    **dict.fromkeys(
        ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"),
        int,
    ),
    "UBIGINT": int,
}
_NONE = type(None)
_TIMESTAMPTZ = "TIMESTAMP WITH TIME ZONE"
# What both `datetime.fromisoformat` and Arrow's parser read alike: a full date and time,
# at most microseconds, and a zone (Z or +hh:mm).
_ISO_ZONED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)")


def fast_column(values: list[Any], type_name: str, arrow: pa.DataType) -> pa.Array | None:
    """The column built by Arrow, or None when the per-value converters must do it."""
    kind = _EXACT.get(type_name)
    try:
        if kind is not None:
            # The types of a column's values, gathered in C: half the cost of a generator.
            if set(map(type, values)) <= {kind, _NONE}:
                return pa.array(values, type=arrow)
        elif type_name == _TIMESTAMPTZ:
            match = _ISO_ZONED.fullmatch
            if all(v is None or (type(v) is str and match(v)) for v in values):
                return pa.array(values, type=pa.string()).cast(arrow)
    except (pa.ArrowException, OverflowError, ValueError, TypeError):
        pass  # the converters find the value and name it
    return None
