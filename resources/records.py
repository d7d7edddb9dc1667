"""Record shaping: find the records in a response and turn each into a row (no I/O).

- `get_path` reads a dot path (`data.orders`, `items.0.id`: a number indexes an array).
- `records_at` finds the records at a `dataPath`.
- `RecordShaper` / `shape_record` build a row from a record with a `fieldMapping`.

Column matching without a mapping (SPEC 5.3): a column takes the record field of the same
name; failing that, the field whose name is equal after dropping `_` and `-` and ignoring
case, so `order_id` <- `orderId`, `user_id` <- `userID`, `orderId` <- `order_id`. When
several fields fold to the same name, the first in the record wins, unless one of them is
the column's plain camelCase form (`order_id` -> `orderId`), which is preferred.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import string
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = [
    "MISSING",
    "DataPathError",
    "RecordShaper",
    "generate_value",
    "get_path",
    "new_cuid",
    "records_at",
    "shape_record",
]


class _Missing:
    """The value of a path that leads nowhere (distinct from a JSON null)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

MappingValue = str | Mapping[str, Any]
_ITEM_REF = re.compile(r"^\{\{\s*item\.([^{}]+?)\s*\}\}$")


class DataPathError(LookupError):
    """No records at a `dataPath`; names the path and what was there instead."""


def _split(dot_path: str) -> list[str]:
    return [part for part in dot_path.split(".") if part] if dot_path else []


def _step(current: Any, part: str) -> Any:
    if isinstance(current, Mapping):
        return current.get(part, MISSING)
    if isinstance(current, list) and part.lstrip("-").isdigit():
        index = int(part)
        return current[index] if -len(current) <= index < len(current) else MISSING
    return MISSING


def get_path(obj: Any, dot_path: str) -> Any:
    """The value at `dot_path` in `obj`, or `MISSING` when any part of it is absent.

    An empty path is `obj` itself. Parts that are integers index arrays (`items.0`).
    """
    current = obj
    for part in _split(dot_path):
        current = _step(current, part)
        if current is MISSING:
            return MISSING
    return current


def records_at(response: Any, data_path: str | None) -> list[dict[str, Any]]:
    """The records at `data_path` (the whole response when it is empty or None).

    An array gives its elements, an object gives itself, a JSON null gives no records. An
    array of objects is returned as it is, not copied: the records belong to the caller's
    freshly parsed body.
    Array elements that are not objects become `{"value": element}` (an API returning a
    list of ids gives rows with one column `value`).

    Raises:
        DataPathError: nothing at the path (naming the keys present at the deepest level
            reached), or a scalar where records were expected.
    """
    path = data_path or ""
    current = response
    reached: list[str] = []
    for part in _split(path):
        following = _step(current, part)
        if following is MISSING:
            raise DataPathError(_missing_message(path, reached, part, current))
        current = following
        reached.append(part)
    if current is None:
        return []
    if isinstance(current, Mapping):
        return [dict(current)]
    if isinstance(current, list):
        if all(type(e) is dict for e in current):
            return current  # a parsed body's own list: no copy per record
        return [dict(e) if isinstance(e, Mapping) else {"value": e} for e in current]
    raise DataPathError(
        f"dataPath {path!r}: expected an array or an object of records, found {_describe(current)}"
    )


def _missing_message(path: str, reached: list[str], part: str, current: Any) -> str:
    where = ".".join(reached) or "the top level"
    if isinstance(current, Mapping):
        keys = ", ".join(repr(str(k)) for k in list(current)[:30]) or "none"
        found = f"keys present at {where}: {keys}"
    else:
        found = f"{where} is {_describe(current)}"
    return f"dataPath {path!r}: no {part!r} at {where}; {found}"


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return f"an array of {len(value)} element(s)"
    if value is None:
        return "null"
    text = repr(value)
    return f"a {type(value).__name__} ({text[:40]}{'...' if len(text) > 40 else ''})"


def _fold(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


_CUID_LETTERS = string.ascii_lowercase
_CUID_ALPHABET = string.digits + string.ascii_lowercase
_CUID_BODY = 23


def new_cuid() -> str:
    """A cuid2-like id: 24 lowercase base-36 characters starting with a letter.

    The body is 119 random bits from `secrets` (cuid2 hashes entropy, a time and a
    counter; with this many random bits the collision odds are the same in practice).
    """
    number = int.from_bytes(secrets.token_bytes(15)) % (36**_CUID_BODY)
    body = []
    for _ in range(_CUID_BODY):
        number, digit = divmod(number, 36)
        body.append(_CUID_ALPHABET[digit])
    return _CUID_LETTERS[secrets.randbelow(26)] + "".join(body)


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


GENERATORS: dict[str, Callable[[], str]] = {
    "cuid": new_cuid,
    "uuid": lambda: str(uuid.uuid4()),
    "now": _utc_now,
}


def generate_value(kind: str) -> str:
    """A new value of a fieldMapping generator: `cuid`, `uuid` or `now`."""
    try:
        return GENERATORS[kind]()
    except KeyError:
        raise ValueError(
            f"unknown generator {kind!r}; expected one of {sorted(GENERATORS)}"
        ) from None


Getter = Callable[[Mapping[str, Any], Mapping[str, Any] | None], Any]


class RecordShaper:
    """Builds rows from records for a fixed column list and mapping; build once per step.

    Mapping values: a dot path into the record (`customer.id`; a field whose own name
    contains dots is found first), `"{{item.X}}"` (column X of the current forEach item),
    or `{"generate": "cuid" | "uuid" | "now"}` (a new value per row). Columns without a
    mapping match record fields by name (module docstring). A path or field that is not
    there gives None, which the table store writes as NULL.
    """

    def __init__(
        self, columns: list[str], field_mapping: Mapping[str, MappingValue] | None = None
    ) -> None:
        mapping = field_mapping or {}
        self.columns = list(columns)
        self._getters: list[tuple[str, Getter]] = [
            (c, _compile(c, mapping[c]) if c in mapping else _ByName(c)) for c in self.columns
        ]
        # A column found by name takes a field that depends only on the record's keys
        # (and the previous record's): records of one response share them, so the choice
        # is made once per key list (`_plan`), not once per record and column.
        self._plan_keys: list[str] | None = None
        self._plan: list[tuple[str, Any, Getter | None]] = []

    def shape(
        self, record: Mapping[str, Any], item: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        if type(record) is not dict:
            return {column: get(record, item) for column, get in self._getters}
        keys = list(record)
        if keys != self._plan_keys:
            self._plan_keys = keys
            self._plan = [
                (c, get.key_for(record), None) if isinstance(get, _ByName) else (c, None, get)
                for c, get in self._getters
            ]
        return {
            column: record.get(key) if get is None else get(record, item)
            for column, key, get in self._plan
        }


def shape_record(
    record: Mapping[str, Any],
    columns: list[str],
    field_mapping: Mapping[str, MappingValue] | None = None,
    item: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One row from one record (see `RecordShaper`).

    Called once per record, so the compiled shaper is reused while the same `columns` and
    `field_mapping` objects come back; they must not be mutated in between.
    """
    return _shaper_for(columns, field_mapping).shape(record, item)


_SHAPERS: dict[tuple[int, int], tuple[object, object, RecordShaper]] = {}
_MAX_SHAPERS = 64


def _shaper_for(
    columns: list[str], field_mapping: Mapping[str, MappingValue] | None
) -> RecordShaper:
    # Keyed by identity: hashing the mapping per record would cost as much as compiling.
    # The entry holds both objects, so their ids cannot be reused while it exists.
    key = (id(columns), id(field_mapping))
    cached = _SHAPERS.get(key)
    if cached is not None and cached[0] is columns and cached[1] is field_mapping:
        return cached[2]
    shaper = RecordShaper(columns, field_mapping)
    if len(_SHAPERS) >= _MAX_SHAPERS:
        _SHAPERS.pop(next(iter(_SHAPERS)))
    _SHAPERS[key] = (columns, field_mapping, shaper)
    return shaper


def _compile(column: str, spec: MappingValue) -> Getter:
    if isinstance(spec, Mapping):
        return _generator(column, spec)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(
            f"fieldMapping {column!r}: expected a dot path, '{{{{item.X}}}}' or "
            f"{{'generate': ...}}, found {spec!r}"
        )
    item_ref = _ITEM_REF.match(spec)
    if item_ref:
        return _item_getter(column, item_ref.group(1))
    if "{{" in spec:
        raise ValueError(
            f"fieldMapping {column!r}: {spec!r} is neither a dot path nor exactly one "
            "'{{item.X}}' reference"
        )
    return _path_getter(spec)


def _generator(column: str, spec: Mapping[str, Any]) -> Getter:
    name = spec.get("generate")
    if set(spec) != {"generate"} or name not in GENERATORS:
        raise ValueError(
            f"fieldMapping {column!r}: expected {{'generate': one of {sorted(GENERATORS)}}}, "
            f"found {dict(spec)!r}"
        )
    make = GENERATORS[str(name)]
    return lambda record, item: make()


def _item_getter(column: str, key: str) -> Getter:
    def get(record: Mapping[str, Any], item: Mapping[str, Any] | None) -> Any:
        if item is None:
            raise ValueError(f"fieldMapping {column!r}: '{{{{item.{key}}}}}' outside forEach")
        if key in item:
            return item[key]
        value = get_path(item, key)
        return None if value is MISSING else value

    return get


def _path_getter(path: str) -> Getter:
    parts = _split(path)

    def get(record: Mapping[str, Any], item: Mapping[str, Any] | None) -> Any:
        if path in record:
            return record[path]
        current: Any = record
        for part in parts:
            current = _step(current, part)
            if current is MISSING:
                return None
        return current

    return get


class _ByName:
    """The getter of a column without a mapping: the field of its name (module docstring)."""

    def __init__(self, column: str) -> None:
        self.column, self.folded, self.camel = column, _fold(column), _camel(column)
        # Records of one response share their keys, so remember which key matched last time.
        self.last = self.camel

    def key_for(self, record: Mapping[str, Any]) -> Any:
        """The key of the field this column takes, or `_NO_FIELD` (the column is None)."""
        if self.column in record:
            return self.column
        if self.camel in record:
            return self.camel
        if self.last in record:
            return self.last
        for key in record:
            if isinstance(key, str) and _fold(key) == self.folded:
                self.last = key
                return key
        return _NO_FIELD

    def __call__(self, record: Mapping[str, Any], item: Mapping[str, Any] | None) -> Any:
        key = self.key_for(record)
        return None if key is _NO_FIELD else record[key]


_NO_FIELD = object()  # a key no record has: `record.get(_NO_FIELD)` is None
