"""What a persist asks for and gets back, and the checks made before and while writing.

`check_target` refuses a target that cannot take the source (before any row is written);
`RowErrors` collects the rows the database or the writer refuses (SPEC 3.4 `onRowError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from resources.app_db_schema import AppDatabaseError, TableInfo, first_line
from resources.persist_markers import PersistCounts, refuse_reserved_target

__all__ = [
    "PersistCounts",
    "PersistRequest",
    "PersistResult",
    "RowErrors",
    "check_target",
]

Mode = Literal["upsert", "replaceAll", "append"]
OnRowError = Literal["fail", "skip"]

MAX_REPORTED_ERRORS = 10


@dataclass(frozen=True)
class PersistRequest:
    """What to write where. Batches carry the target's column names already."""

    table: str
    mode: Mode
    upsert_key: list[str] | None = None
    match_columns: list[str] | None = None
    on_row_error: OnRowError = "fail"

    def __post_init__(self) -> None:
        refuse_reserved_target(self.table)
        if self.mode not in ("upsert", "replaceAll", "append"):
            raise AppDatabaseError(f"unknown persist mode {self.mode!r}")
        if self.on_row_error not in ("fail", "skip"):
            raise AppDatabaseError(f"unknown onRowError {self.on_row_error!r}")
        if self.mode == "upsert" and not self.upsert_key:
            raise AppDatabaseError(f"persist to {self.table!r}: upsert needs an upsertKey")
        if self.mode == "replaceAll" and not self.match_columns:
            raise AppDatabaseError(f"persist to {self.table!r}: replaceAll needs matchColumns")


@dataclass(frozen=True)
class PersistResult:
    """The outcome of one persist call.

    `rows_written` is `rows_inserted + rows_updated`. `rows_deleted` are the rows replaceAll
    removed before inserting; an upsert whose only mapped columns are the key leaves an
    existing row alone (neither inserted nor updated). A key the source repeats counts once
    per row applied: SQLite applies each (the first inserts, the others update),
    PostgreSQL only the key's last row in each merge group.

    `already_done` means the marker existed: this call wrote nothing, so its own counts
    are all 0, and `recorded` holds what the call that wrote did (None for a marker
    written before counts were kept). After a write, `recorded` holds this call's counts.
    """

    rows_written: int
    rows_skipped: int = 0
    errors: list[str] = field(default_factory=list)
    already_done: bool = False
    duration_s: float = 0.0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_deleted: int = 0
    recorded: PersistCounts | None = None


def check_target(info: TableInfo, request: PersistRequest, columns: list[str]) -> None:
    """Raise when the target cannot take these columns in this mode (before any write)."""
    where = f"table {info.name!r} in {info.where}"
    info.require_columns(columns, "source columns")
    keys = [("upsertKey", request.upsert_key or []), ("matchColumns", request.match_columns or [])]
    for role, names in keys:
        info.require_columns(names, role)
        missing = [n for n in names if columns and n not in columns]
        if missing:
            raise AppDatabaseError(
                f"{role} column(s) {', '.join(missing)} of {where} are not among the source "
                f"columns {', '.join(columns)}"
            )
    key = request.upsert_key
    if request.mode == "upsert" and key and not info.has_unique_key(key):
        present = "; ".join("(" + ", ".join(sorted(k)) + ")" for k in info.unique_keys)
        raise AppDatabaseError(
            f"upsertKey ({', '.join(key)}) of {where} has no primary key or unique "
            f"constraint on exactly these columns (unique keys there: {present or 'none'})"
        )
    required = [c.name for c in info.columns.values() if not c.nullable and not c.has_default]
    unmapped = [name for name in required if columns and name not in columns]
    if unmapped:
        raise AppDatabaseError(
            f"{where}: NOT NULL column(s) without a default are not written: {', '.join(unmapped)}"
        )


class RowErrors:
    """Collects skipped rows, or under `fail` raises on the first one."""

    def __init__(self, skip: bool, table: str) -> None:
        self.skip = skip
        self.table = table
        self.count = 0
        self._first: list[tuple[int, str]] = []

    def add(self, row: int, error: BaseException | str) -> None:
        """Record row `row`'s error: a driver exception, or our own message."""
        cause = error if isinstance(error, BaseException) else None
        message = f"row {row}: {first_line(cause) if cause else error}"
        if not self.skip:
            raise AppDatabaseError(
                f"persist to {self.table!r} failed at source {message}; nothing was written "
                "(onRowError is fail)"
            ) from cause
        self.count += 1
        # Staging finds type errors before the apply step finds constraint errors: keep the
        # lowest row numbers, in order.
        self._first.append((row, message))
        self._first = sorted(self._first)[:MAX_REPORTED_ERRORS]

    @property
    def messages(self) -> list[str]:
        return [message for _row, message in self._first]
