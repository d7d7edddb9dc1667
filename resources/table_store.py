"""The table store: each step's output table as one Parquet file, scoped to its run.

Layout: `<root>/<run_id>/<step_name>.parquet`, the root a local folder or an
`s3://bucket/prefix` (`resources.object_store`). Ops hand each other small `TableHandle`s;
the rows stay in the store and are written and read in bounded batches. Writing a table
lives in `resources.table_writer`, casting to a step's `outputSchema` in
`resources.table_store_types`, the sandboxed DuckDB query runner in
`resources.table_store_sql`.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from resources.object_store import S3_SCHEME, Place, s3_root
from resources.paths import data_dir
from resources.table_store_sql import Params, SqlError, describe_query, sandboxed_query
from resources.table_store_types import SUPPORTED_TYPES, CastError, normalize_type
from resources.table_writer import (
    DEFAULT_BATCH_ROWS,
    TableHandle,
    TableStoreError,
    TableWriter,
    dataset,
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

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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
                f"table store root {configured!r}: expected a local folder or s3://bucket/prefix"
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
        return dataset(place) if place.remote else place.path

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

    def head(self, handle: TableHandle, rows: int = 5) -> list[dict[str, Any]]:
        """The first `rows` rows (a preview in the UI: one small batch is read)."""
        place = self.handle_place(handle)
        source = place.filesystem.open_input_file(place.path) if place.remote else place.path
        parquet = pq.ParquetFile(source, pre_buffer=False)
        try:
            first = next(parquet.iter_batches(batch_size=rows), None)
        finally:
            parquet.close()
            if not isinstance(source, str):
                source.close()
        return first.to_pylist() if first is not None else []

    def iter_rows(self, handle: TableHandle) -> Iterator[dict[str, Any]]:
        """The table's rows as dicts, streamed (Python values: Decimal, datetime, UUID)."""
        for batch in self.read_batches(handle):
            yield from batch.to_pylist()
