"""What a sql step's query is, reads and returns, found without running it (SPEC 3.2, 4).

- `statement_kind_problem`: DuckDB's own parser says whether the text is exactly one SELECT.
- `referenced_tables`: sqlglot finds the tables the query reads (CTE names excluded).
- `bind_query` / `SqlBinder`: DuckDB binds the query against EMPTY tables with the input
  schemas, in memory, with external access switched off, so a missing table or column
  fails at load and the result columns and types are known. Nothing is executed: the
  constants DuckDB's binder would evaluate become typed NULLs first (`sql_constants`).

Every function takes SQL whose templates are already parameters (`sql_with_params`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import duckdb

from translators.templates import param_name

SELECT_EXPECTED = "exactly one SELECT statement (CTEs allowed)"

# The database and schema DuckDB resolves unqualified names in; `main.orders` is `orders`.
_DEFAULT_QUALIFIERS = {"", "main", "memory"}


class SqlBindError(ValueError):
    """DuckDB refused to bind the query: unknown table or column, bad function, ..."""


def _first_lines(exc: BaseException) -> str:
    """The message without the `LINE 1: ...` excerpt or terminal colours, on one line."""
    lines = []
    for line in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines():
        if line.startswith("LINE ") or not line.strip():
            break
        lines.append(line.strip())
    return " ".join(lines) or type(exc).__name__


def statement_kind_problem(sql: str) -> str | None:
    """None when `sql` is exactly one SELECT; else what was found instead."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        return f"the SQL does not parse: {_first_lines(exc)}"
    kinds = [statement.type.name for statement in statements]
    if not kinds:
        return "the SQL holds no statement"
    if len(kinds) > 1:
        return f"the SQL holds {len(kinds)} statements ({', '.join(kinds)})"
    if statements[0].type != duckdb.StatementType.SELECT:
        return f"the statement is {kinds[0]}, not SELECT"
    return None


def referenced_tables(sql: str) -> set[str]:
    """The tables a query reads, by name as written (`main.x` -> `x`).

    CTE names are excluded; table functions (`read_csv(...)`, `range(10)`) are not tables.
    A name with another qualifier keeps it (`other.x`), so it matches no step table.

    Raises:
        ValueError: sqlglot cannot parse the query.
    """
    # Imported here: a load whose files all come from the plan cache never parses SQL,
    # and sqlglot costs a third of a second to import in every run and step process.
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        trees = sqlglot.parse(sql, read="duckdb")
    except SqlglotError as exc:
        raise ValueError(f"the SQL parser cannot read the query: {_first_lines(exc)}") from exc
    except RecursionError as exc:  # the parser recurses once per level of parentheses
        raise ValueError("the SQL is nested too deeply for the SQL parser") from exc
    tables: set[str] = set()
    for tree in trees:
        if tree is None:
            continue
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            if not isinstance(table.this, exp.Identifier):
                continue  # a table function, not a table
            qualifiers = [
                q for q in (table.catalog, table.db) if q.lower() not in _DEFAULT_QUALIFIERS
            ]
            if not qualifiers and table.name.lower() in ctes:
                continue
            tables.add(".".join([*qualifiers, table.name]))
    return tables


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqlBinder:
    """One in-memory DuckDB connection that binds many queries; use as a context manager.

    External access is off (no files, URLs or extension downloads), so a query that would
    read `read_csv('/etc/passwd')` fails here too.
    """

    def __init__(self) -> None:
        # Connected on first use: a load served by the plan cache binds nothing.
        self._connection: duckdb.DuckDBPyConnection | None = None

    @property
    def _con(self) -> duckdb.DuckDBPyConnection:
        if self._connection is None:
            self._connection = duckdb.connect(
                ":memory:",
                config={"enable_external_access": False, "autoinstall_known_extensions": False},
            )
        return self._connection

    def __enter__(self) -> SqlBinder:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    @contextmanager
    def _tables(self, schemas: Mapping[str, Mapping[str, str]]) -> Iterator[None]:
        """Empty tables with these schemas, rolled back afterwards."""
        self._con.execute("BEGIN TRANSACTION")
        try:
            for table, schema in schemas.items():
                if not schema:
                    raise SqlBindError(f"the schema of table '{table}' has no columns")
                columns = ", ".join(f"{quote_identifier(c)} {t}" for c, t in schema.items())
                self._con.execute(f"CREATE TABLE {quote_identifier(table)} ({columns})")
            yield
        finally:
            self._con.execute("ROLLBACK")

    def _type_of(self, constant: str) -> str:
        """The type of a constant expression whose arguments are literals: bound, not run."""
        return str(self._con.sql(f"SELECT {constant} AS v").types[0])

    def bind(
        self, sql: str, params: list[str], input_schemas: Mapping[str, Mapping[str, str]]
    ) -> dict[str, str]:
        """The result columns -> DuckDB types of `sql` over empty `input_schemas` tables.

        Args:
            sql: one SELECT whose parameters are `$name`.
            params: the variables `sql_with_params` returned (bound as NULL).
            input_schemas: table name -> column -> DuckDB type.

        Raises:
            SqlBindError: DuckDB's message (missing table or column, ...), or a result
                with two columns of the same name.
        """
        from translators.sql_constants import defuse_constants  # sqlglot: see above

        try:
            sql = defuse_constants(sql, self._type_of)
            with self._tables(input_schemas):
                relation = self._con.sql(sql, params={param_name(p): None for p in params})
                columns = list(zip(relation.columns, map(str, relation.types), strict=True))
        except (duckdb.Error, ValueError) as exc:
            raise SqlBindError(_first_lines(exc)) from exc
        result: dict[str, str] = {}
        seen: set[str] = set()
        for column, type_name in columns:
            if column.lower() in seen:
                raise SqlBindError(
                    f"the query returns column '{column}' more than once; "
                    "give each result column its own alias"
                )
            seen.add(column.lower())
            result[column] = type_name
        return result


def bind_query(
    sql: str, params: list[str], input_schemas: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """`SqlBinder.bind` on a connection of its own (prefer one `SqlBinder` per load)."""
    with SqlBinder() as binder:
        return binder.bind(sql, params, input_schemas)
