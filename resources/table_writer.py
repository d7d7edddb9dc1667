"""Writing one step table: `TableWriter` streams rows into a Parquet file of the table store.

A `TableHandle` is what ops pass each other for a finished table. The file is a local path
or an object (`s3://bucket/key`) of `resources.object_store`; the store resource that
names the files is `resources.table_store.TableStoreResource`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from resources.object_store import Place
from resources.table_store_types import (
    CastError,
    ColumnCastError,
    arrow_type,
    cast_column,
    infer_type,
    normalize_type,
)

DEFAULT_BATCH_ROWS = 10_000


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
        self._types: dict[str, str] | None = None
        self._arrow: pa.Schema | None = None
        if schema:
            self._types, self._arrow = declared_types(schema)
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
        return _cast_values(array.to_pylist(), column, type_name, self.step_name, self._rows)

    def _convert_records(self) -> None:
        if not self._records:
            return
        records = self._records
        if self._types is None:
            self._infer(records)
        else:
            self._check_fields(records)
        assert self._types is not None and self._arrow is not None
        table = cast_records(records, self._types, self._arrow, self.step_name, self._rows)
        self._pending.append(table)
        self._pending_rows += len(records)
        self._rows += len(records)
        self._records = []

    def _infer(self, records: list[Mapping[str, Any]]) -> None:
        self._check_mappings(records)
        columns = dict.fromkeys(key for record in records for key in record)
        self._types = {c: infer_type([r.get(c) for r in records]) for c in columns}
        self._arrow = arrow_schema(self._types)

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


def cast_records(
    records: list[Mapping[str, Any]],
    types: Mapping[str, str],
    schema: pa.Schema,
    step_name: str,
    first_row: int,
) -> pa.Table:
    """Records as an Arrow table of `schema`, each value cast to its column's type (a
    missing field is NULL); a value that does not cast is a CastError naming its row,
    counted from `first_row` + 1."""
    arrays = [
        _cast_values([r.get(c) for r in records], c, t, step_name, first_row)
        for c, t in types.items()
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _cast_values(
    values: list[Any], column: str, type_name: str, step_name: str, first: int
) -> pa.Array:
    try:
        return cast_column(values, type_name)
    except ColumnCastError as exc:
        row = first + exc.index + 1
        # Not chained: the converter's own error quotes the raw value (CastError masks it).
        raise CastError(step_name, row, column, exc.value, type_name, exc.reason) from None


def declared_types(schema: Mapping[str, str]) -> tuple[dict[str, str], pa.Schema]:
    """A declared schema's columns with their normalised types, and its Arrow schema."""
    types = {c: normalize_type(t) for c, t in schema.items()}
    return types, arrow_schema(types)


def arrow_schema(types: Mapping[str, str]) -> pa.Schema:
    """The Arrow schema of a table whose columns have these (normalised) types."""
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
            con.register("t", dataset(place))
            rows = con.execute("DESCRIBE SELECT * FROM t").fetchall()
        else:
            rows = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [place.path]).fetchall()
    finally:
        con.close()
    return {str(row[0]): str(row[1]) for row in rows}


def dataset(place: Place) -> Any:
    import pyarrow.dataset as ds  # only object storage needs it

    return ds.dataset(place.path, filesystem=place.filesystem, format="parquet")
