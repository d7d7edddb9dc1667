"""P3's comparators: the same rows written into PostgreSQL without the product.

The rows are those of `bench.persist.source_sql` (8 columns, made by DuckDB as Arrow
batches of 10,000), and each comparator turns them into Python tuples as any client
must (the COPY comparator renders CSV instead); only the time of writing them
(conversion included) is measured:

- `copy`: psycopg 3 text `COPY facts (...) FROM STDIN (FORMAT csv)`, the CSV of each
  batch rendered by Arrow, into an empty table (COPY's own speed, no Python per row);
- `executemany`: psycopg 3 `executemany` of `INSERT ... ON CONFLICT (id) DO UPDATE`
  into a table that already holds every other key (the P3 upsert's starting point);
- `merge`: the floor of any staged upsert, no product code: Arrow-rendered CSV COPY
  into an UNLOGGED staging table, then one `INSERT ... SELECT ... ON CONFLICT (id) DO
  UPDATE` into the table that already holds every other key (what bounds P3: the
  server's own merge);
- `to_sql`: pandas `DataFrame.to_sql(method=None)` through SQLAlchemy into an empty
  table (P3 compares per row, on 100k rows).

The database is `$APP_DB_URL` (a fresh one per run, see `bench.persist.fresh_database`).
`python -m bench.p3_compare case --kind copy --rows N` prints one RESULT line.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa

from bench.common import emit_result, peak_rss_mb
from bench.persist import COLUMNS, TABLE, _conninfo, prepare_table, source_sql

BATCH_ROWS = 10_000
UPSERT_SQL = (
    f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "id")
)


def source_batches(rows: int) -> Iterator[pa.RecordBatch]:
    with duckdb.connect() as conn:
        reader = conn.sql(source_sql(rows)).to_arrow_reader(BATCH_ROWS)
        yield from reader


def _tuples(batch: pa.RecordBatch) -> list[tuple[Any, ...]]:
    columns = [batch.column(name).to_pylist() for name in COLUMNS]
    return list(zip(*columns, strict=True))


def write_copy(url: str, rows: int) -> int:
    """Text COPY at its best: CSV rendered by Arrow in C, no Python per row (a `write_row`
    per tuple would measure Python, not COPY, and flatter the upsert)."""
    import io

    import psycopg
    import pyarrow.csv as pa_csv

    written = 0
    statement = f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN (FORMAT csv)"
    options = pa_csv.WriteOptions(include_header=False)
    with psycopg.connect(_conninfo(url)) as conn, conn.cursor() as cur, cur.copy(statement) as copy:
        for batch in source_batches(rows):
            buffer = io.BytesIO()
            pa_csv.write_csv(batch, buffer, options)
            copy.write(buffer.getbuffer())
            written += batch.num_rows
    return written


def write_merge(url: str, rows: int) -> int:
    import io

    import psycopg
    import pyarrow.csv as pa_csv

    names = ", ".join(COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "id")
    options = pa_csv.WriteOptions(include_header=False)
    written = 0
    with psycopg.connect(_conninfo(url)) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE UNLOGGED TABLE stage_p3 (LIKE {TABLE})")
        with cur.copy(f"COPY stage_p3 ({names}) FROM STDIN (FORMAT csv)") as copy:
            for batch in source_batches(rows):
                buffer = io.BytesIO()
                pa_csv.write_csv(batch, buffer, options)
                copy.write(buffer.getbuffer())
                written += batch.num_rows
        cur.execute(
            f"INSERT INTO {TABLE} ({names}) SELECT {names} FROM stage_p3 "
            f"ON CONFLICT (id) DO UPDATE SET {updates}"
        )
        cur.execute("DROP TABLE stage_p3")
    return written


def write_executemany(url: str, rows: int) -> int:
    import psycopg

    written = 0
    with psycopg.connect(_conninfo(url)) as conn, conn.cursor() as cur:
        for batch in source_batches(rows):
            cur.executemany(UPSERT_SQL, _tuples(batch))
            written += batch.num_rows
    return written


def write_to_sql(url: str, rows: int) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    written = 0
    try:
        for batch in source_batches(rows):
            frame = batch.to_pandas()
            frame.to_sql(TABLE, engine, if_exists="append", index=False, method=None)
            written += batch.num_rows
    finally:
        engine.dispose()
    return written


WRITERS = {
    "copy": write_copy,
    "merge": write_merge,
    "executemany": write_executemany,
    "to_sql": write_to_sql,
}
MODES = {"copy": "append", "merge": "upsert", "executemany": "upsert", "to_sql": "append"}


def case(kind: str, rows: int) -> dict[str, Any]:
    url = os.environ["APP_DB_URL"]
    prepare_table(url, rows, MODES[kind])
    started = time.perf_counter()
    written = WRITERS[kind](url, rows)
    seconds = time.perf_counter() - started
    if written != rows:
        raise AssertionError(f"{kind}: wrote {written} rows, expected {rows}")
    return {
        "kind": kind,
        "mode": MODES[kind],
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds),
        "us_per_row": round(seconds * 1e6 / rows, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench.p3_compare case")
    parser.add_argument("--kind", choices=sorted(WRITERS), required=True)
    parser.add_argument("--rows", type=int, required=True)
    args = parser.parse_args(argv[1:] if argv[:1] == ["case"] else argv)
    emit_result(case(args.kind, args.rows))


if __name__ == "__main__":
    main()
