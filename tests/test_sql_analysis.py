"""sql_analysis: one SELECT, the tables a query reads, and binding against empty tables."""

from __future__ import annotations

import time

import pytest

from translators.sql_analysis import (
    SqlBinder,
    SqlBindError,
    bind_query,
    referenced_tables,
    statement_kind_problem,
)

ORDERS = {"orders": {"id": "VARCHAR", "total": "BIGINT", "created_at": "TIMESTAMPTZ"}}


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "WITH a AS (SELECT 1 AS x) SELECT * FROM a",
        "FROM orders",
        "SELECT * FROM orders WHERE id = $id;",
        "(SELECT 1) UNION ALL (SELECT 2)",
    ],
)
def test_one_select_is_accepted(sql: str) -> None:
    assert statement_kind_problem(sql) is None


@pytest.mark.parametrize(
    ("sql", "found"),
    [
        ("DELETE FROM orders", "DELETE"),
        ("INSERT INTO orders VALUES (1)", "INSERT"),
        ("UPDATE orders SET id = 1", "UPDATE"),
        ("COPY orders TO 'x.csv'", "COPY"),
        ("ATTACH 'x.db'", "ATTACH"),
        ("PRAGMA version", "PRAGMA"),
        ("SET threads = 1", "SET"),
        ("WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a", "INSERT"),
        ("SELECT 1; SELECT 2", "2 statements (SELECT, SELECT)"),
        ("SELECT 1; DROP TABLE orders", "DROP"),
        ("SELEC 1", "does not parse"),
        ("  ;  ", "no statement"),
    ],
)
def test_anything_else_is_rejected_naming_what_was_found(sql: str, found: str) -> None:
    problem = statement_kind_problem(sql)
    assert problem is not None and found in problem


@pytest.mark.parametrize(
    ("sql", "tables"),
    [
        ("SELECT * FROM orders o JOIN customers c ON o.id = c.id", {"orders", "customers"}),
        ("WITH recent AS (SELECT * FROM raw) SELECT * FROM recent JOIN c USING (id)", {"raw", "c"}),
        ("SELECT * FROM (SELECT * FROM a) t WHERE EXISTS (SELECT 1 FROM b)", {"a", "b"}),
        ("SELECT * FROM read_csv('/etc/passwd')", set()),
        ("SELECT * FROM range(10)", set()),
        ("SELECT * FROM main.orders", {"orders"}),
        ("SELECT * FROM other.orders", {"other.orders"}),
        ('SELECT * FROM "Orders" WHERE x = $p', {"Orders"}),
        ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r", set()),
    ],
)
def test_referenced_tables(sql: str, tables: set[str]) -> None:
    assert referenced_tables(sql) == tables


def test_referenced_tables_reports_unparseable_sql() -> None:
    with pytest.raises(ValueError, match="cannot read the query"):
        referenced_tables("SELECT * FROM (((")


def test_bind_returns_result_columns_and_types() -> None:
    sql = "SELECT id, total * 2 AS double_total, CAST(created_at AS DATE) AS day FROM orders"
    assert bind_query(sql, [], ORDERS) == {
        "id": "VARCHAR",
        "double_total": "BIGINT",
        "day": "DATE",
    }


def test_bind_binds_params_as_null() -> None:
    sql = "SELECT id FROM orders WHERE created_at >= CAST($since AS DATE) LIMIT $n"
    assert bind_query(sql, ["since", "n"], ORDERS) == {"id": "VARCHAR"}


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT totl FROM orders", 'column "totl" not found'),
        ("SELECT * FROM nope", "nope does not exist"),
        ("SELECT * FROM read_csv('/etc/passwd')", "disabled by configuration"),
        ("SELECT * FROM read_parquet('s3://bucket/x.parquet')", "disabled by configuration"),
        ("SELECT id, total AS ID FROM orders", "returns column 'ID' more than once"),
        ("SELECT $1", "parameters"),
    ],
)
def test_bind_errors_name_what_is_wrong(sql: str, message: str) -> None:
    with pytest.raises(SqlBindError, match=message) as info:
        bind_query(sql, [], ORDERS)
    assert "LINE 1" not in str(info.value)


def test_one_binder_keeps_queries_apart_and_is_fast() -> None:
    with SqlBinder() as binder:
        assert binder.bind("SELECT * FROM orders", [], ORDERS) == {
            "id": "VARCHAR",
            "total": "BIGINT",
            "created_at": "TIMESTAMP WITH TIME ZONE",
        }
        with pytest.raises(SqlBindError, match="orders does not exist"):
            binder.bind("SELECT * FROM orders", [], {})
        started = time.perf_counter()
        for _ in range(50):
            binder.bind("SELECT count(*) AS n FROM range(1000000000000)", [], ORDERS)
        assert time.perf_counter() - started < 2.0  # binds, never executes
