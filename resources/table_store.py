"""The table store: each step's output table as one Parquet file, scoped to its run.

Layout: `<root>/<run_id>/<step_name>.parquet`, the root a local folder or an
`s3://bucket/prefix` (`resources.object_store`). Ops hand each other small `TableHandle`s;
the rows stay in the store and are written and read in bounded batches. Casting to a
step's `outputSchema` lives in `resources.table_store_types`, the sandboxed DuckDB query
runner in `resources.table_store_sql`.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from resources.object_store import S3_SCHEME, Place, s3_root
from resources.paths import data_dir
from resources.table_store_sql import Params, SqlError, describe_query, sandboxed_query
from resources.table_store_types import (
    SUPPORTED_TYPES,
    CastError,
    ColumnCastError,
    arrow_type,
    cast_column,
    infer_type,
    normalize_type,
)

__all__ = [
    "SUPPORTED_TYPES",
    "CastError",
    "SqlError",
    "TableHandle",
    "TableStoreError",
    "TableStoreResource",
    "TableWriter",
    "describe_query",
    "normalize_type",
]

DEFAULT_BATCH_ROWS = 10_000
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class TableStoreError(RuntimeError):
    """A table that cannot be written as asked (not a single bad value: see CastError)."""


@dataclass(frozen=True)
class TableHandle:
    """A finished step table: what ops pass each other instead of rows.

    Attributes:
        name: the workflow's `outputTable` name (the name SQL uses).
        path: the Parquet file: a local path or `s3://bucket/key`.
        row_count: rows in the file.
        columns: column -> DuckDB type, in column order.
    """

    name: str
    path: str
    row_count: int
    columns: dict[str, str] = field(hash=False)


class TableWriter:
    """Streams one step's rows into a Parquet file; use it as a context manager.

    Rows go to a temporary file in the run folder, renamed into place only when the
    `with` block ends without an exception, so a failed step leaves no table behind. On
    object storage they stream to the final key (a multipart upload: S3 has no rename,
    and a copy is limited to 5 GB); a failed step's object is deleted, and a killed
    process never completes its upload, so no object appears.
    With a schema every value is cast to its column type; without one, the columns are
    inferred from the first batch of records (`infer_type`) or taken from the first
    Arrow reader, and a later record with an unknown field is an error, not dropped.
    """

    def __init__(
        self,
        path: Path | Place,
        step_name: str,
        table_name: str,
        schema: Mapping[str, str] | None,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> None:
        self.place = path if isinstance(path, Place) else Place.local(path)
        self.step_name, self.table_name = step_name, table_name
        self.handle: TableHandle | None = None
        self._declared = schema is not None
        self._types = {c: normalize_type(t) for c, t in schema.items()} if schema else None
        self._arrow: pa.Schema | None = _arrow_schema(self._types) if self._types else None
        if schema is not None and not schema:
            raise TableStoreError(f"step '{step_name}': an output schema needs a column")
        self._batch_rows = batch_rows
        self._records: list[Mapping[str, Any]] = []
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._rows = 0  # rows accepted before the current record buffer
        self._source: str | None = None  # "records" or "batches" when undeclared
        self._parquet: pq.ParquetWriter | None = None
        self._stream: pa.NativeFile | None = None
        stem = self.place.name.removesuffix(".parquet")
        remote = self.place.remote
        self._temp = self.place if remote else self.place.sibling(f".{stem}.{uuid.uuid4().hex}.tmp")

    def __enter__(self) -> TableWriter:
        if not self.place.remote:
            Path(self.place.path).parent.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        finished = False
        try:
            if exc_type is None:
                self._finish()
                finished = True
        finally:
            if not finished:
                self._abort()

    def write_records(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Add record dicts; call as often as needed. Fields not in the schema are dropped."""
        self._claim("records")
        source = iter(records)
        while True:
            room = self._batch_rows - len(self._records)
            self._records.extend(islice(source, room))
            if len(self._records) < self._batch_rows:
                return
            self._convert_records()
            self._write_pending(force=False)

    def write_batches(self, reader: pa.RecordBatchReader | Iterable[pa.RecordBatch]) -> None:
        """Add Arrow batches (a SQL result, an import). Cast when a schema was declared."""
        self._claim("batches")
        self._convert_records()
        if self._arrow is None:
            self._arrow = reader.schema if isinstance(reader, pa.RecordBatchReader) else None
        for batch in reader:
            if self._arrow is None:
                self._arrow = batch.schema
            table = self._conform(batch) if self._types else self._same_schema(batch)
            self._pending.append(table)
            self._pending_rows += table.num_rows
            self._rows += table.num_rows
            self._write_pending(force=False)

    def _claim(self, source: str) -> None:
        # Without a declared schema the first writer decides the columns; mixing records
        # and Arrow batches would need two inference rules to agree.
        if self._declared:
            return
        if self._source not in (None, source):
            raise TableStoreError(
                f"step '{self.step_name}': records and Arrow batches cannot be mixed without "
                "an output schema"
            )
        self._source = source

    def _same_schema(self, batch: pa.RecordBatch) -> pa.Table:
        if not batch.schema.equals(self._arrow):
            raise TableStoreError(
                f"step '{self.step_name}': batch schema {batch.schema} differs from the "
                f"first one {self._arrow}"
            )
        return pa.Table.from_batches([batch])

    def _conform(self, batch: pa.RecordBatch) -> pa.Table:
        assert self._types is not None and self._arrow is not None
        missing = [column for column in self._types if column not in batch.schema.names]
        if missing:
            # Unlike a record's missing field (NULL, SPEC 3), a batch has a schema of its
            # own: a declared column it lacks is a misspelling, not an absent value.
            raise TableStoreError(
                f"step '{self.step_name}': outputSchema column(s) {missing} are not in the "
                f"result; its columns are {batch.schema.names}"
            )
        arrays = [
            self._cast_arrow(batch.column(column), column, type_name)
            for column, type_name in self._types.items()
        ]
        return pa.Table.from_arrays(arrays, schema=self._arrow)

    def _cast_arrow(self, array: pa.Array, column: str, type_name: str) -> pa.Array:
        target = arrow_type(type_name)
        if array.type.equals(target):
            return array
        if _lossless_arrow_cast(array.type, target):
            try:
                return array.cast(target, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass  # the Python path below finds and names the bad value
        return self._cast_values(array.to_pylist(), column, type_name, self._rows)

    def _cast_values(self, values: list[Any], column: str, type_name: str, first: int) -> pa.Array:
        try:
            return cast_column(values, type_name)
        except ColumnCastError as exc:
            row = first + exc.index + 1
            # Not chained: the converter's own error quotes the raw value (CastError masks it).
            raise CastError(self.step_name, row, column, exc.value, type_name, exc.reason) from None

    def _convert_records(self) -> None:
        if not self._records:
            return
        records = self._records
        if self._types is None:
            self._infer(records)
        else:
            self._check_fields(records)
        assert self._types is not None and self._arrow is not None
        arrays = [
            self._cast_values([r.get(c) for r in records], c, t, self._rows)
            for c, t in self._types.items()
        ]
        self._pending.append(pa.Table.from_arrays(arrays, schema=self._arrow))
        self._pending_rows += len(records)
        self._rows += len(records)
        self._records = []

    def _infer(self, records: list[Mapping[str, Any]]) -> None:
        self._check_mappings(records)
        columns = dict.fromkeys(key for record in records for key in record)
        self._types = {c: infer_type([r.get(c) for r in records]) for c in columns}
        self._arrow = _arrow_schema(self._types)

    def _check_fields(self, records: list[Mapping[str, Any]]) -> None:
        self._check_mappings(records)
        if self._declared:
            return
        assert self._types is not None
        known = self._types.keys()
        for index, record in enumerate(records):
            if not known >= record.keys():
                unknown = sorted(set(record) - set(known))
                raise TableStoreError(
                    f"step '{self.step_name}': row {self._rows + index + 1} has field(s) "
                    f"{unknown} not among the columns inferred from the first rows "
                    f"{list(known)}; declare an outputSchema"
                )

    def _check_mappings(self, records: list[Mapping[str, Any]]) -> None:
        if all(type(record) is dict for record in records):
            return  # the common case, without an ABC check per record
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise TableStoreError(
                    f"step '{self.step_name}': row {self._rows + index + 1} is a "
                    f"{type(record).__name__}, not an object"
                )

    def _write_pending(self, *, force: bool) -> None:
        if not self._pending or (self._pending_rows < self._batch_rows and not force):
            return
        assert self._arrow is not None
        table = pa.concat_tables(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._writer().write_table(table, row_group_size=self._batch_rows)
        self._pending, self._pending_rows = [], 0

    def _writer(self) -> pq.ParquetWriter:
        if self._parquet is None:
            assert self._arrow is not None
            if self.place.remote:
                temp = self._temp
                self._stream = temp.filesystem.open_output_stream(temp.path)
                self._parquet = pq.ParquetWriter(self._stream, self._arrow)
            else:
                self._parquet = pq.ParquetWriter(self._temp.path, self._arrow)
        return self._parquet

    def _finish(self) -> None:
        self._convert_records()
        self._write_pending(force=True)
        if self._arrow is None:
            raise TableStoreError(
                f"step '{self.step_name}': no rows and no output schema, so the table has "
                "no columns; declare an outputSchema"
            )
        self._writer().close()
        if self._stream is not None:
            self._stream.close()  # completes the upload: the object appears now
        else:
            os.replace(self._temp.path, self.place.path)
        columns = self._types if self._types is not None else _describe_file(self.place)
        self.handle = TableHandle(self.table_name, self.place.uri, self._rows, dict(columns))

    def _abort(self) -> None:
        try:
            if self._parquet is not None:
                self._parquet.close()
            if self._stream is not None:
                self._stream.close()
        finally:
            if self._parquet is not None:
                self._temp.delete()


def _arrow_schema(types: Mapping[str, str]) -> pa.Schema:
    return pa.schema([pa.field(c, arrow_type(t)) for c, t in types.items()])


def _lossless_arrow_cast(source: pa.DataType, target: pa.DataType) -> bool:
    """Arrow casts that keep every value or fail (`safe=True`), and mean what ours mean."""
    if pa.types.is_integer(source) and pa.types.is_integer(target):
        return True  # overflow fails under safe=True; bool is not an Arrow integer
    if pa.types.is_timestamp(source) and pa.types.is_timestamp(target):
        return source.unit == target.unit and (source.tz is None) == (target.tz is None)
    if pa.types.is_decimal(source) and pa.types.is_decimal(target):
        return True  # a lost digit or an overflow fails under safe=True
    if source == pa.float32() and target == pa.float64():
        return True
    return pa.types.is_string(source) and pa.types.is_string(target)


def _describe_file(place: Place) -> dict[str, str]:
    con = duckdb.connect(":memory:")
    try:
        if place.remote:
            # Arrow's reading of the file, as a query sees it (same types as read_parquet).
            con.register("t", _dataset(place))
            rows = con.execute("DESCRIBE SELECT * FROM t").fetchall()
        else:
            rows = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [place.path]).fetchall()
    finally:
        con.close()
    return {str(row[0]): str(row[1]) for row in rows}


def _dataset(place: Place) -> Any:
    import pyarrow.dataset as ds  # only object storage needs it

    return ds.dataset(place.path, filesystem=place.filesystem, format="parquet")


class TableStoreResource(dg.ConfigurableResource):
    """Step tables as Parquet files under `<root>/<run_id>/<step_name>.parquet`."""

    root: str | None = Field(
        default=None,
        description="Folder or `s3://bucket/prefix` holding the tables; default "
        "`$TABLE_STORE_ROOT`, else `<data dir>/tables`.",
    )
    batch_rows: int = Field(
        default=DEFAULT_BATCH_ROWS,
        description="Rows per Parquet row group and per batch in memory while streaming.",
    )

    def place(self) -> Place:
        """The root: a local folder, or a bucket prefix for `s3://bucket/prefix`."""
        configured = self.root or os.environ.get("TABLE_STORE_ROOT")
        if not configured:
            return Place.local(data_dir() / "tables")
        if configured.startswith("file://"):
            configured = configured[len("file://") :]
        if configured.startswith(S3_SCHEME):
            return s3_root(configured)
        if "://" in configured:
            raise TableStoreError(
                f"table store root {configured!r}: expected a local folder or "
                "s3://bucket/prefix"
            )
        return Place.local(Path(configured).expanduser().resolve())

    def is_local(self) -> bool:
        configured = self.root or os.environ.get("TABLE_STORE_ROOT") or ""
        return not configured.startswith(S3_SCHEME)

    def root_path(self) -> Path:
        """The root folder of a local store (object storage has none: see `place`)."""
        place = self.place()
        if place.remote:
            raise TableStoreError(f"table store root {place.uri!r} is object storage, not a folder")
        return Path(place.path)

    def table_place(self, run_id: str, step_name: str) -> Place:
        for label, value in (("run id", run_id), ("step name", step_name)):
            if not _SAFE_NAME.match(value):
                raise TableStoreError(f"{label} {value!r} is not a safe file name")
        return self.place().child(run_id, f"{step_name}.parquet")

    def table_path(self, run_id: str, step_name: str) -> Path:
        """The file of a step's table in a local store."""
        place = self.table_place(run_id, step_name)
        if place.remote:
            raise TableStoreError(f"table {place.uri!r} is in object storage, not a file")
        return Path(place.path)

    def handle_place(self, handle: TableHandle) -> Place:
        """Where a table of this store (or one written under the same settings) is."""
        if handle.path.startswith(S3_SCHEME):
            return s3_root(handle.path)
        return Place.local(handle.path)

    def open_writer(
        self,
        run_id: str,
        step_name: str,
        table_name: str,
        schema: Mapping[str, str] | None = None,
    ) -> TableWriter:
        """A writer for one step's table; `with store.open_writer(...) as w: ...; w.handle`."""
        place = self.table_place(run_id, step_name)
        return TableWriter(place, step_name, table_name, schema, self.batch_rows)

    @contextmanager
    def query(
        self, sql: str, params: Params, inputs: Mapping[str, TableHandle]
    ) -> Iterator[pa.RecordBatchReader]:
        """Run a step's SELECT over its input tables in a sandboxed DuckDB; stream the result.

        Each key of `inputs` becomes a view of that name; nothing else is readable.
        """
        root = self.place()
        # DuckDB spills to a local folder, also when the tables are in a bucket.
        spill_root = (data_dir() if root.remote else Path(root.path)) / ".spill"
        spill_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=spill_root, prefix="query-") as spill:
            views = {name: self._view(handle) for name, handle in inputs.items()}
            with sandboxed_query(
                sql, params, views, temp_dir=spill, batch_rows=self.batch_rows
            ) as reader:
                yield reader

    def _view(self, handle: TableHandle) -> Any:
        # A bucket's file is read by Arrow and handed to DuckDB as a dataset: DuckDB's
        # own S3 reader is the httpfs extension, a download the sandbox forbids.
        place = self.handle_place(handle)
        return _dataset(place) if place.remote else place.path

    def describe(
        self,
        sql: str,
        input_schemas: Mapping[str, Mapping[str, str]],
        params: Params = None,
    ) -> dict[str, str]:
        """Result columns and types of `sql` over empty tables (see `describe_query`)."""
        return describe_query(sql, input_schemas, params)

    def read_batches(
        self, handle: TableHandle, columns: list[str] | None = None
    ) -> Iterator[pa.RecordBatch]:
        """The table's rows as record batches of at most `batch_rows` rows."""
        # pre_buffer=False: by default pyarrow buffers every row group iter_batches will
        # read, which holds the whole table in memory.
        place = self.handle_place(handle)
        source = place.filesystem.open_input_file(place.path) if place.remote else place.path
        parquet = pq.ParquetFile(source, pre_buffer=False)
        try:
            yield from parquet.iter_batches(batch_size=self.batch_rows, columns=columns)
        finally:
            parquet.close()
            if not isinstance(source, str):
                source.close()

    def iter_rows(self, handle: TableHandle) -> Iterator[dict[str, Any]]:
        """The table's rows as dicts, streamed (Python values: Decimal, datetime, UUID)."""
        for batch in self.read_batches(handle):
            yield from batch.to_pylist()
