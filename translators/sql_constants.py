"""Constant subexpressions -> typed NULLs, so that binding a query evaluates nothing.

DuckDB's binder evaluates a constant argument of a function or table function (it folds
`length(repeat('x', 200000000))` and calls `range(...)`'s arguments), which can cost
seconds and gigabytes at every load. Here each constant expression that is an argument
of another expression becomes `CAST(NULL AS <its type>)`, innermost first; its type comes
from binding it alone with literal (or already NULL) arguments, which DuckDB does
without evaluating. Result columns keep the names DuckDB gives the original expressions.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

TypeOf = Callable[[str], str]

# Nodes that make an expression depend on rows, parameters or a query: never constant.
_VARYING = (
    exp.Column,
    exp.Placeholder,
    exp.Parameter,
    exp.Star,
    exp.Query,
    exp.AggFunc,
    exp.Window,
    exp.Lambda,
    exp.Table,
)
# Cheap leaves: literals and casts of literals (`DATE '2024-01-01'`, `INTERVAL 1 DAY`).
_PLAIN = (exp.Literal, exp.Null, exp.Boolean, exp.DataType, exp.Var, exp.Identifier)
# Where a constant stays: a result column, a table function itself (its arguments do not).
_KEEP_PARENTS = (exp.Select, exp.Alias, exp.From, exp.Join, exp.Table)
# Expressions that compute a value (functions, operators, CASE, indexing).
_VALUES = (exp.Func, exp.Binary, exp.Unary, exp.Bracket, exp.Between, exp.In)
# Syntax, not values: `k := 1` in a struct, a named argument.
_SYNTAX = (exp.Column, exp.Identifier, exp.DataType, exp.PropertyEQ, exp.Kwarg, exp.Slice)


def _is_plain(node: exp.Expr) -> bool:
    if isinstance(node, _PLAIN):
        return True
    if isinstance(node, exp.Cast | exp.Neg | exp.Paren | exp.Interval):
        return all(_is_plain(child) for child in node.iter_expressions())
    return False


def _is_constant(node: exp.Expr) -> bool:
    return not any(isinstance(n, _VARYING) for n in node.walk())


def _needs_defusing(node: exp.Expr) -> bool:
    """A constant, non-literal argument of another expression: DuckDB would evaluate it."""
    parent = node.parent
    return (
        isinstance(parent, exp.Expression)
        and not isinstance(parent, _KEEP_PARENTS)
        and isinstance(node, _VALUES)
        and not isinstance(node, _SYNTAX)
        and not _is_plain(node)
        and _is_constant(node)
    )


def defuse_constants(sql: str, type_of: TypeOf) -> str:
    """`sql` with its evaluated constants made typed NULLs; `sql` itself when it has none.

    Args:
        sql: one SELECT (parameters `$name`).
        type_of: the DuckDB type of a constant expression's SQL, found by binding it.

    Raises:
        ValueError: sqlglot cannot parse the query (the caller reports that already).
    """
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except (SqlglotError, RecursionError) as exc:
        raise ValueError(str(exc)) from exc
    if not any(_needs_defusing(node) for node in tree.walk()):
        return sql
    names = _projection_names(tree)
    for node in list(tree.walk(bfs=False))[::-1]:  # innermost first
        if node.parent is not None and _needs_defusing(node):
            node.replace(_typed_null(type_of(node.sql(dialect="duckdb"))))
    for projection, name in names:
        projection.replace(exp.alias_(projection.copy(), name, quoted=True))
    return tree.sql(dialect="duckdb")


def _typed_null(type_name: str) -> exp.Expression:
    if type_name.upper() == "NULL":
        return exp.null()
    return exp.cast(exp.null(), exp.DataType.build(type_name, dialect="duckdb", udt=True))


def _projection_names(tree: exp.Expr) -> list[tuple[exp.Expr, str]]:
    """Unaliased result expressions of the outer SELECT with the names DuckDB gives them."""
    if not isinstance(tree, exp.Select):
        return []
    named = []
    for projection in tree.expressions:
        if isinstance(projection, exp.Alias | exp.Column | exp.Star):
            continue
        if any(_needs_defusing(node) for node in projection.walk()):
            text = projection.sql(dialect="duckdb")
            named.append((projection, duckdb.SQLExpression(text).get_name()))
    return named
