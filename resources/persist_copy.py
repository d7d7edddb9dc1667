"""COPY of source rows into PostgreSQL (psycopg 3) for the persist write path.

`CopyInto` loads a chunk, or any range of it (the row-error bisection retries halves), in
binary COPY format when every column has an encoder (`resources.pg_binary_copy`) and
the values fit, else as CSV written by Arrow, which the server parses itself.

`Prefetch` runs the reading side (Parquet, field mapping, binary encoding) on a thread,
a few chunks ahead: that work releases the GIL in Arrow and numpy, so it runs on the
other core while the server copies and merges the chunks before it.
"""

from __future__ import annotations

import contextlib
import io
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from resources.app_db_schema import csv_ready
from resources.pg_binary_copy import SIGNATURE, TRAILER, Encoder, encode, encoder_for

T = TypeVar("T")


@dataclass
class Chunk:
    """Source rows `first`.. of one COPY, with their binary form when it was made ahead."""

    batch: pa.RecordBatch
    first: int
    binary: pa.Buffer | None = None


class CopyInto:
    """COPY into `table` (columns `cols`, plus the row numbers as `row_col` when given)."""

    def __init__(self, raw: psycopg.Connection[Any], table: str, cols: str, row_col: str | None):
        self.raw = raw
        names = f"{cols}, {row_col}" if row_col else cols
        self.sql = f"COPY {table} ({names}) FROM STDIN (FORMAT {{}})"
        self.with_rows = row_col is not None
        self.encoders: list[Encoder] | None = None
        self.schema: pa.Schema | None = None
        self.prepared = False
        self.binary_rows = 0

    def prepare(self, schema: pa.Schema, oids: Sequence[int]) -> None:
        """Encode in binary when every column of `schema` (and the row number) has an encoder
        into the table's column type `oids` (in column order); else CSV stays. Once."""
        if self.prepared:
            return
        self.prepared = True
        types = [*schema.types, pa.int64()] if self.with_rows else list(schema.types)
        found = [encoder_for(t, oid) for t, oid in zip(types, oids, strict=True)]
        encoders = [e for e in found if e is not None]
        self.encoders = encoders if len(encoders) == len(found) else None
        self.schema = schema

    def encode(self, chunk: Chunk, lo: int, hi: int) -> pa.Buffer | None:
        """Rows lo..hi of the chunk in binary, or None (no encoders, a value does not fit)."""
        if self.encoders is None or chunk.batch.schema != self.schema:
            return None  # a batch of other types than the first: CSV, as the server reads it
        start, count = lo - chunk.first, hi - lo + 1
        return encode([c.slice(start, count) for c in self._columns(chunk)], self.encoders)

    def encode_all(self, chunk: Chunk) -> Chunk:
        """The chunk with its binary form, made ahead (see Prefetch)."""
        chunk.binary = self.encode(chunk, chunk.first, chunk.first + chunk.batch.num_rows - 1)
        return chunk

    def loader(self, chunk: Chunk) -> Callable[[int, int], int]:
        """Load rows lo..hi of the chunk (source row numbers); returns the count."""
        last = chunk.first + chunk.batch.num_rows - 1

        def load(lo: int, hi: int) -> int:
            whole = lo == chunk.first and hi == last
            data = chunk.binary if whole else None
            data = self.encode(chunk, lo, hi) if data is None else data
            if data is not None:
                with self.raw.cursor() as cur, cur.copy(self.sql.format("binary")) as copy:
                    copy.write(SIGNATURE)
                    copy.write(data)
                    copy.write(TRAILER)
                self.binary_rows += hi - lo + 1
                return hi - lo + 1
            self._load_csv(chunk, lo, hi)
            return hi - lo + 1

        return load

    def _load_csv(self, chunk: Chunk, lo: int, hi: int) -> None:
        table = csv_ready(chunk.batch.slice(lo - chunk.first, hi - lo + 1))
        if self.with_rows:
            table = table.append_column("_wf_row", pa.array(range(lo, hi + 1), type=pa.int64()))
        buffer = io.BytesIO()
        pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(include_header=False))
        with self.raw.cursor() as cur, cur.copy(self.sql.format("csv")) as copy:
            copy.write(buffer.getbuffer())

    def _columns(self, chunk: Chunk) -> list[pa.Array]:
        columns = list(chunk.batch.columns)
        if self.with_rows:
            numbers = range(chunk.first, chunk.first + chunk.batch.num_rows)
            columns.append(pa.array(numbers, type=pa.int64()))
        return columns


def column_type_oids(conn: Connection, table: str) -> list[int]:
    """The type OIDs of `table`'s columns in column order (a domain has its own OID, so its
    columns go through CSV, where the domain's checks apply as they always did)."""
    oids = conn.execute(
        sa.text(
            "SELECT atttypid::int FROM pg_catalog.pg_attribute WHERE attrelid ="
            " CAST(:table AS regclass) AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        ),
        {"table": table},
    ).scalars()
    return list(oids)


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


class Prefetch(Generic[T]):
    """`items` produced on a worker thread, at most `depth` ahead of the consumer.

    An exception of the producer is raised in the consumer; `close()` (always call it)
    stops the worker and closes `items` on the worker's own thread.
    """

    def __init__(self, items: Iterator[T], depth: int = 3) -> None:
        self._items = items
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="persist-prefetch", daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):  # unblock a worker waiting for room
                self._queue.get(timeout=0.05)
        self._thread.join()

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    break
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_Failed(exc))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()
        self._put(_DONE)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False
