"""Checking a query binds it and evaluates nothing: constants cost nothing at load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from translators.sql_analysis import bind_query

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = {"t": {"a": "INTEGER", "s": "VARCHAR", "d": "DATE"}}
MEASURE = """
import resource, sys, time
from translators.sql_analysis import bind_query
bind_query("SELECT 1 AS warm", [], {})
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
before, start = rss(), time.perf_counter()
bind_query(sys.argv[1], [], {})
print(time.perf_counter() - start, (rss() - before) / 1024)
"""


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM range(length(repeat('x', 200000000)))",
        "SELECT length(repeat('x', 200000000)) AS n",
        "SELECT length(range(200000000)) AS n",
    ],
)
def test_an_expensive_constant_checks_fast_and_small(sql: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, sql],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    seconds, megabytes = map(float, result.stdout.split())
    assert seconds < 0.5 and megabytes < 50, (seconds, megabytes)


def test_a_query_that_would_fail_when_run_binds() -> None:
    sql = "SELECT * FROM range(CAST(error('only at run time') AS BIGINT))"
    assert bind_query(sql, [], {}) == {"range": "BIGINT"}


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT length('a' || 'b'), a + 1, upper(s || 'x') AS u FROM t",
        "SELECT [1, 2][1] AS one, {'k': 1}.k AS k, d - INTERVAL 1 DAY AS prev FROM t",
        "SELECT * FROM generate_series(DATE '2024-01-01', current_date, INTERVAL 1 DAY)",
        "SELECT a FROM t WHERE s LIKE 'x' || '%' AND d > DATE '2024-01-01' + 1 ORDER BY 1",
        "SELECT strftime(d, '%Y' || '-%m') AS month, count(*) AS n FROM t GROUP BY 1",
    ],
)
def test_results_are_what_duckdb_binds_for_the_query_itself(sql: str) -> None:
    with duckdb.connect(":memory:") as con:
        for table, schema in SCHEMAS.items():
            columns = ", ".join(f"{c} {t}" for c, t in schema.items())
            con.execute(f"CREATE TABLE {table} ({columns})")
        relation = con.sql(sql)
        expected = dict(zip(relation.columns, map(str, relation.types), strict=True))
    assert bind_query(sql, [], SCHEMAS) == expected
