"""The apply statements of a persist (SPEC 3.4), and what each did to the target.

`Apply` moves staged rows into the target in the request's mode (see
`resources.persist_sql` for the staging and the row-error bisection around it) and counts
the rows it inserted and updated, in the server, never by fetching rows:

- append and replaceAll insert every row they apply (the statement's row count);
  replaceAll's DELETE row count is its deleted rows.
- A PostgreSQL upsert runs inside a CTE, `RETURNING (xmax = 0)`, aggregated by the server:
  a row the statement inserted has no xmax, while the row version an `ON CONFLICT DO
  UPDATE` writes keeps the xmax of the row lock the conflict check took (also when an
  earlier merge group of the same transaction inserted the row).
- An SQLite upsert: RETURNING cannot feed an aggregate there, so the target's row count
  before and after the apply (a count(*) each, while the write lock keeps everyone else
  out) gives the inserted rows; the rest of the statements' row count (SQLite counts an
  updated row as changed) were updated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from resources.persist_request import PersistRequest, RowErrors

log = logging.getLogger("resources.persist_sql")


@dataclass(frozen=True)
class Tally:
    """Rows inserted into and updated in the target (or loaded into the stage)."""

    inserted: int = 0
    updated: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.inserted + other.inserted, self.updated + other.updated)

    @property
    def written(self) -> int:
        return self.inserted + self.updated


def tallied(load: Callable[[int, int], int]) -> Callable[[int, int], Tally]:
    """A loader's row count as rows inserted."""
    return lambda lo, hi: Tally(load(lo, hi))


class Apply:
    """The set-based statements from the stage into the target, in one request's mode."""

    def __init__(
        self,
        conn: Connection,
        request: PersistRequest,
        columns: list[str],
        names: tuple[str, str, str],
    ) -> None:
        self.conn = conn
        self.request = request
        self.columns = columns
        self.target, self.stage, self.row = names  # schema-qualified and quoted
        self.cols = ", ".join(q(conn, c) for c in columns)
        self.sqlite = conn.dialect.name == "sqlite"
        self.upsert = request.mode == "upsert"
        # The server counts inserted and updated rows per statement (see the module doc).
        self.returning = self.upsert and conn.dialect.name == "postgresql"
        # SQLite applies the rows in order, so a repeated key's last row wins by itself.
        self.deduplicate = False

    def counted(self, apply: Callable[[], Tally]) -> Tally:
        """Run `apply`; an upsert without RETURNING counts the target around it."""
        if not self.upsert or self.returning:
            return apply()
        count = f"SELECT count(*) FROM {self.target}"
        before = self.conn.exec_driver_sql(count).scalar_one()
        tally = apply()
        inserted = self.conn.exec_driver_sql(count).scalar_one() - before
        return Tally(inserted, tally.written - inserted)

    def drop_null_keys(self, errors: RowErrors) -> None:
        """A NULL key matches no row (NULLs are distinct), so the row would be inserted
        again on every run: it is a row error, found with one scan of the staging table."""
        key = self.request.upsert_key or []
        names = [q(self.conn, c) for c in key]
        condition = " OR ".join(f"{n} IS NULL" for n in names)
        found = self.conn.exec_driver_sql(
            f"SELECT {self.row}, {', '.join(names)} FROM {self.stage}"
            f" WHERE {condition} ORDER BY {self.row}"
        ).all()
        for row, *values in found:
            column = key[values.index(None)]
            errors.add(
                row,
                f"upsertKey column {column!r} is NULL (a NULL key matches no existing row, "
                "so the row would be inserted again on every run)",
            )
        if found:
            self.conn.exec_driver_sql(f"DELETE FROM {self.stage} WHERE {condition}")

    def delete_matches(self) -> int:
        """replaceAll: delete the target rows whose match values are staged; their count."""
        names = self.request.match_columns or []
        match = ", ".join(q(self.conn, c) for c in names)
        left = f"({match})" if len(names) > 1 else match
        deleted: int = self.conn.exec_driver_sql(
            f"DELETE FROM {self.target} WHERE {left} IN (SELECT {match} FROM {self.stage})"
        ).rowcount
        log.debug("replaceAll %s: deleted %d matching rows", self.request.table, deleted)
        return deleted

    def insert_range(self, lo: int, hi: int) -> Tally:
        """Apply staged rows lo..hi (source row numbers)."""
        if not self.upsert or self.deduplicate:
            return self._insert(lo, hi)
        # PostgreSQL refuses to update a row twice in one statement: only when the source
        # repeats a key is it worth the cost (a third of the merge) of keeping the last one.
        try:
            with self.conn.begin_nested():
                return self._insert(lo, hi)
        except sa.exc.ProgrammingError as exc:
            if not isinstance(exc.orig, psycopg.errors.CardinalityViolation):
                raise
        self.deduplicate = True
        return self._insert(lo, hi)

    def _insert(self, lo: int, hi: int) -> Tally:
        where = f"{self.row} BETWEEN :lo AND :hi"
        conflict = ""
        if self.upsert:
            key = ", ".join(q(self.conn, c) for c in self.request.upsert_key or [])
            if self.deduplicate:
                last = f"SELECT max({self.row}) FROM {self.stage} GROUP BY {key}"
                where += f" AND {self.row} IN ({last})"
            conflict = f" ON CONFLICT ({key}) {self._on_conflict_action()}"
        # SQLite needs the order (its last row of a key wins). On PostgreSQL a scan of the
        # stage returns the rows in the order COPY wrote them, so sorting them is wasted.
        order = f" ORDER BY {self.row}" if self.sqlite or self.deduplicate else ""
        sql = (
            f"INSERT INTO {self.target} ({self.cols}) SELECT {self.cols} FROM {self.stage}"
            f" WHERE {where}{order}{conflict}"
        )
        params = {"lo": lo, "hi": hi}
        if not self.returning:
            return Tally(self.conn.execute(sa.text(sql), params).rowcount)
        counting = (
            f"WITH applied AS ({sql} RETURNING (xmax = 0) AS inserted)"
            " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)"
            " FROM applied"
        )
        inserted, updated = self.conn.execute(sa.text(counting), params).one()
        return Tally(inserted, updated)

    def _on_conflict_action(self) -> str:
        key = set(self.request.upsert_key or [])
        updates = [
            f"{q(self.conn, c)} = excluded.{q(self.conn, c)}" for c in self.columns if c not in key
        ]
        return "DO UPDATE SET " + ", ".join(updates) if updates else "DO NOTHING"


def q(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)
