"""persistToDatabase throughput and memory: SQLite and PostgreSQL, append and upsert.

The translated job has two steps: an SQL step that makes N rows of 8 columns (text,
integers, a float, a boolean, a timestamp with time zone) into the table store, and a
persistToDatabase step that writes them into table `facts` (primary key `id`). The
figures are those of the persist step (its window in the Dagster event log), each run
in a fresh process with a fresh database:

- append: into an empty table;
- upsert on `id`: the table already holds every other key (N/2 rows), so half the rows
  update and half insert;
- one PostgreSQL append of 3M rows (a single run) to see whether the step's memory
  depends on N.

PostgreSQL is a throwaway server from `tests/support/postgres.py` (fsync off, as the
tests run it); SQLite is a file in the case's temporary folder (WAL, as the app
databases run).

`python -m bench.persist [--repeats 3] [--quick]` writes `bench/results/persist.json`.

P3's comparators, the same rows written without the product (`compare_*`, each into a
fresh database of the server, timing only the write, conversion from Arrow included):
`compare_copy_text` (text COPY, CSV written by Arrow, into an empty table),
`compare_executemany_upsert` (psycopg 3 `executemany` of `INSERT ... ON CONFLICT`, from
the upsert case's starting point) and `compare_to_sql` (pandas `to_sql`, method=None, into
an empty table). `python -m bench.persist compare [--rows N] [--repeats R]` runs the
upsert case and the three alternately and prints each rate and the upsert's ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import (
    RssSampler,
    Series,
    emit_result,
    log,
    machine_facts,
    peak_rss_mb,
    run_case,
    write_results,
)

MODULE = "bench.persist"
TABLE = "facts"
COLUMNS = ["id", "seq", "customer", "amount_cents", "price", "active", "created_at", "note"]
CREATE_TABLE = f"""
CREATE TABLE {TABLE} (
    id VARCHAR(20) PRIMARY KEY,
    seq BIGINT NOT NULL,
    customer TEXT,
    amount_cents BIGINT,
    price DOUBLE PRECISION,
    active BOOLEAN,
    created_at TIMESTAMP WITH TIME ZONE,
    note TEXT
)"""
# Every other key of the source, marked 'old' so the check can see they were updated.
PREFILL = {
    "postgresql": (
        f"INSERT INTO {TABLE} (id, seq, note) SELECT 'rec-' || lpad(g::text, 9, '0'), g, 'old'"
        " FROM generate_series(0, :rows - 1, 2) AS g"
    ),
    "sqlite": (
        "WITH RECURSIVE g(x) AS (SELECT 0 UNION ALL SELECT x + 2 FROM g WHERE x + 2 < :rows) "
        f"INSERT INTO {TABLE} (id, seq, note) SELECT printf('rec-%09d', x), x, 'old' FROM g"
    ),
}


def source_sql(rows: int) -> str:
    return (
        "SELECT 'rec-' || lpad(CAST(range AS VARCHAR), 9, '0') AS id, range AS seq, "
        "'customer-' || CAST(range % 10000 AS VARCHAR) AS customer, "
        "(range * 7919) % 1000000 AS amount_cents, (range % 50000) / 100.0 AS price, "
        "range % 3 = 0 AS active, "
        "TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(range) AS created_at, "
        f"'lorem ipsum dolor sit amet' AS note FROM range({rows})"
    )


def persist_workflow(rows: int, mode: str) -> dict[str, Any]:
    target: dict[str, Any] = {
        "appId": "bench",
        "tableName": TABLE,
        "sourceTable": "facts_source",
        "mode": mode,
        "fieldMapping": {column: column for column in COLUMNS},
    }
    if mode == "upsert":
        target["upsertKey"] = ["id"]
    return {
        "name": "persistToDatabase benchmark",
        "settings": {"maxParallelSteps": 1},
        "steps": [
            {"id": "make_rows", "sql": source_sql(rows), "outputTable": "facts_source"},
            {"id": "persist", "persistToDatabase": target},
        ],
    }


# --- the case (a fresh process) ---------------------------------------------------------


def prepare_table(url: str, rows: int, mode: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(CREATE_TABLE))
            if mode == "upsert":
                conn.execute(sa.text(PREFILL[engine.dialect.name]), {"rows": rows})
    finally:
        engine.dispose()


def check_table(url: str, rows: int) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            count, old = conn.execute(
                sa.text(f"SELECT count(*), count(*) FILTER (WHERE note = 'old') FROM {TABLE}")
            ).one()
    finally:
        engine.dispose()
    if (count, old) != (rows, 0):
        raise AssertionError(f"expected {rows} rows and none 'old', found {count} and {old}")


def case_persist(db: str, rows: int, mode: str) -> dict[str, Any]:
    from bench.jobs import run_workflow, step_summary, write_defs  # imports Dagster

    with tempfile.TemporaryDirectory(prefix="bench-persist-") as tmp:
        root = Path(tmp)
        os.environ["WORKFLOWS_DATA_DIR"] = str(root / "data")
        url = os.environ["APP_DB_URL"] if db == "postgres" else f"sqlite:///{root}/app.sqlite"
        os.environ["APP_DB_URL"] = url
        prepare_table(url, rows, mode)
        defs = write_defs(root / "defs", {}, {"wf": persist_workflow(rows, mode)})
        with RssSampler() as sampler:
            run = run_workflow(defs, "wf", root / "instance")
        check_table(url, rows)
        summary = step_summary(run, "persist", sampler)
        metadata = run.step("persist").metadata
    if metadata.get("rows written") != rows:
        raise AssertionError(f"expected {rows} rows written, got {metadata.get('rows written')}")
    return {
        "db": db,
        "mode": mode,
        "rows": rows,
        "rows_per_s": round(rows / summary["step_s"]),
        "persist_work_s": metadata.get("duration s"),
        "make_rows_s": round(run.step("make_rows").seconds, 3),
        **summary,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


# --- P3's comparators (in this process, each into a fresh database) ----------------------


def source_table(rows: int) -> Any:
    """The case's rows as an Arrow table (DuckDB runs `source_sql`)."""
    import duckdb

    with duckdb.connect() as conn:
        return conn.sql(source_sql(rows)).to_arrow_table()


def _timed(kind: str, rows: int, seconds: float) -> dict[str, Any]:
    return {
        "kind": kind,
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds),
    }


def compare_copy_text(server_url: str, rows: int) -> dict[str, Any]:
    """Text COPY (CSV written by Arrow, 10k rows a COPY) into an empty table: rows/s."""
    import io

    import psycopg
    import pyarrow.csv as pa_csv

    table = source_table(rows)
    statement = f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN (FORMAT csv)"
    options = pa_csv.WriteOptions(include_header=False)
    with fresh_database(server_url) as url:
        prepare_table(url, rows, "append")
        with psycopg.connect(_conninfo(url)) as conn:
            started = time.perf_counter()
            for batch in table.to_batches(max_chunksize=10_000):
                buffer = io.BytesIO()
                pa_csv.write_csv(batch, buffer, options)
                with conn.cursor() as cur, cur.copy(statement) as copy:
                    copy.write(buffer.getbuffer())
            conn.commit()
            seconds = time.perf_counter() - started
        check_table(url, rows)
    return _timed("copy_text", rows, seconds)


def compare_executemany_upsert(server_url: str, rows: int) -> dict[str, Any]:
    """psycopg 3 `executemany` of INSERT ... ON CONFLICT (id) DO UPDATE, 10k rows a call,
    into the upsert case's starting point (every other key present): rows/s."""
    import psycopg

    table = source_table(rows)
    marks = ", ".join(["%s"] * len(COLUMNS))
    updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "id")
    sql = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({marks}) "
    sql += f"ON CONFLICT (id) DO UPDATE SET {updates}"
    with fresh_database(server_url) as url:
        prepare_table(url, rows, "upsert")
        with psycopg.connect(_conninfo(url)) as conn:
            started = time.perf_counter()
            with conn.cursor() as cur:
                for batch in table.to_batches(max_chunksize=10_000):
                    values = [batch.column(c).to_pylist() for c in COLUMNS]
                    cur.executemany(sql, list(zip(*values, strict=True)))
            conn.commit()
            seconds = time.perf_counter() - started
        check_table(url, rows)
    return _timed("executemany_upsert", rows, seconds)


def compare_to_sql(server_url: str, rows: int = 100_000) -> dict[str, Any]:
    """pandas `DataFrame.to_sql(method=None)` through SQLAlchemy (psycopg 3) into an empty
    table: rows/s (P3 compares per row; it is measured on 100k rows)."""
    frame = source_table(rows).to_pandas()
    with fresh_database(server_url) as url:
        prepare_table(url, rows, "append")
        engine = sa.create_engine(url)
        try:
            started = time.perf_counter()
            frame.to_sql(TABLE, engine, if_exists="append", index=False, method=None)
            seconds = time.perf_counter() - started
        finally:
            engine.dispose()
        check_table(url, rows)
    return _timed("to_sql", rows, seconds)


def compare(rows: int, repeats: int, to_sql_rows: int = 100_000) -> dict[str, Any]:
    """The upsert case (a fresh process) and the comparators, alternately; medians."""
    import statistics

    runs: dict[str, list[float]] = {"upsert": [], "copy_text": [], "executemany": [], "to_sql": []}
    with postgres_server() as server_url:
        for attempt in range(repeats):
            log(f"compare run {attempt + 1}/{repeats}")
            upsert = _series("postgres", "upsert", rows, 1, server_url).runs[0]
            runs["upsert"].append(upsert["rows_per_s"])
            runs["copy_text"].append(compare_copy_text(server_url, rows)["rows_per_s"])
            runs["executemany"].append(compare_executemany_upsert(server_url, rows)["rows_per_s"])
            runs["to_sql"].append(compare_to_sql(server_url, to_sql_rows)["rows_per_s"])
    medians = {k: statistics.median(v) for k, v in runs.items()}
    ratios = {
        f"upsert/{k}": round(medians["upsert"] / medians[k], 2) for k in runs if k != "upsert"
    }
    return {"rows": rows, "runs": runs, "medians": medians, "ratios": ratios}


# --- the driver -------------------------------------------------------------------------

FULL_ROWS = (100_000, 1_000_000)
QUICK_ROWS = (1_000, 5_000)
# One bigger run, only to see whether the persist step's memory depends on the row count.
MEMORY_CHECK = ("postgres", "append", 3_000_000)


@contextmanager
def postgres_server() -> Iterator[str]:
    """The tests' throwaway PostgreSQL (or `$TEST_POSTGRES_URL`), stopped afterwards."""
    from tests.support.postgres import start_postgres

    server = start_postgres()
    try:
        yield server.url
    finally:
        server.stop()


def _conninfo(server_url: str) -> str:
    """The server's SQLAlchemy URL as a libpq one (for psycopg directly)."""
    url = sa.engine.make_url(server_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A database of its own for one run, dropped afterwards."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:12]}"
    conninfo = _conninfo(server_url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        url = sa.engine.make_url(server_url).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def server_version(server_url: str) -> str:
    import psycopg

    with psycopg.connect(_conninfo(server_url)) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"


def _series(
    db: str, mode: str, rows: int, repeats: int, server_url: str, memory_check: bool = False
) -> Series:
    name = f"{db}_{mode}_{rows}"
    series = Series(name, {"db": db, "mode": mode, "rows": rows, "memory_check": memory_check})
    args = ["--db", db, "--mode", mode, "--rows", str(rows)]
    for attempt in range(repeats):
        log(f"{name} run {attempt + 1}/{repeats}")
        label = f"persist-{name}-{attempt + 1}"
        if db == "postgres":
            with fresh_database(server_url) as url:
                result = run_case(MODULE, args, label, env={"APP_DB_URL": url})
        else:
            result = run_case(MODULE, args, label)
        series.runs.append(result)
    return series


def run_suite(repeats: int = 3, quick: bool = False) -> dict[str, Any]:
    machine = machine_facts()  # before the load of the runs
    series: list[Series] = []
    with postgres_server() as server_url:
        version = server_version(server_url)
        for db in ("sqlite", "postgres"):
            for mode in ("append", "upsert"):
                for rows in QUICK_ROWS if quick else FULL_ROWS:
                    series.append(_series(db, mode, rows, repeats, server_url))
        if not quick:
            db, mode, rows = MEMORY_CHECK
            series.append(_series(db, mode, rows, 1, server_url, memory_check=True))
    return {
        "suite": "persist",
        "machine": machine,
        "postgres": version,
        "series": [s.as_json() for s in series],
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["case"]:
        parser = argparse.ArgumentParser(prog=f"python -m {MODULE} case")
        parser.add_argument("--db", choices=["sqlite", "postgres"], required=True)
        parser.add_argument("--mode", choices=["append", "upsert"], required=True)
        parser.add_argument("--rows", type=int, required=True)
        args = parser.parse_args(argv[1:])
        emit_result(case_persist(args.db, args.rows, args.mode))
        return
    if argv[:1] == ["compare"]:
        parser = argparse.ArgumentParser(prog=f"python -m {MODULE} compare")
        parser.add_argument("--rows", type=int, default=1_000_000)
        parser.add_argument("--repeats", type=int, default=3)
        args = parser.parse_args(argv[1:])
        print(json.dumps(compare(args.rows, args.repeats), indent=2))
        return
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    args = parser.parse_args(argv)
    path = write_results("persist", run_suite(args.repeats, args.quick), args.quick)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
