"""State shared by the checks of one workflow file: where problems go, and each step's slot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from resources.table_store_types import normalize_type
from translators.app_access import AppAccess
from translators.errors import Problem, did_you_mean, join_pointer
from translators.spec import BaseStepSpec, ServiceSpec, VariableSpec
from translators.sql_analysis import SqlBinder


@dataclass
class CheckContext:
    """One workflow file being checked; `report` collects its problems."""

    file: str
    # Declared variables; the spec is None when the variable itself failed validation.
    variables: Mapping[str, VariableSpec | None]
    services: Mapping[str, ServiceSpec]
    # Service name -> the catalog file that defines it but has problems.
    broken_services: Mapping[str, str]
    binder: SqlBinder
    problems: list[Problem] = field(default_factory=list)
    # The app databases the workflow reaches (SPEC 8); None: a literal appId is not checked.
    app_access: AppAccess | None = None

    def report(self, pointer: str, message: str, expected: str | None = None) -> None:
        problem = Problem(self.file, pointer, message, expected)
        if problem not in self.problems:
            self.problems.append(problem)


@dataclass
class SqlText:
    """A query of a step (`sql` or `branch.sql`) after its templates became parameters."""

    pointer: str
    sql: str
    params: list[str]
    tables: set[str]


@dataclass
class Ref:
    """A name a step uses to reach an earlier step: a table it reads or a dependsOn entry."""

    name: str
    pointer: str
    role: str  # "sql", "forEach", "sourceTable" or "dependsOn"
    target: int | None = None

    @property
    def reads(self) -> bool:
        return self.role != "dependsOn"


@dataclass
class Slot:
    """One entry of `steps`; `spec` is None when the step itself failed validation."""

    index: int
    raw: Any
    spec: BaseStepSpec | None
    name: str = ""
    table: str | None = None
    table_pointer: str = ""
    schema: dict[str, str] | None = None  # declared or inferred, as the plan shows it
    bind_schema: dict[str, str] | None = None  # canonical DuckDB types, for binding
    refs: list[Ref] = field(default_factory=list)
    sql: list[SqlText] = field(default_factory=list)
    upstream: list[int] = field(default_factory=list)
    # Set when a query or table reference of this step could not be resolved.
    unresolved: bool = False

    @property
    def pointer(self) -> str:
        return f"/steps/{self.index}"

    def at(self, *tokens: str | int) -> str:
        return join_pointer(self.pointer, *tokens)

    def target_of(self, role: str) -> int | None:
        return next((ref.target for ref in self.refs if ref.role == role), None)


def canonical_schema(
    ctx: CheckContext, schema: Mapping[str, Any], pointer: str
) -> dict[str, str] | None:
    """A declared outputSchema with canonical types; reports each unsupported type and
    returns None when there is one."""
    result: dict[str, str] | None = {}
    if not schema:
        ctx.report(pointer, "outputSchema has no columns", "column -> DuckDB type, e.g. VARCHAR")
        return None
    for column, type_name in schema.items():
        try:
            canonical = normalize_type(type_name)
        except ValueError as exc:
            message, _, expected = str(exc).partition("; expected ")
            hint = did_you_mean(str(type_name).upper(), _TYPE_NAMES)
            ctx.report(
                join_pointer(pointer, column), message, (expected or None) and expected + hint
            )
            result = None
            continue
        if result is not None:
            result[column] = canonical
    return result


_TYPE_NAMES = [
    "VARCHAR", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "DOUBLE", "FLOAT", "BOOLEAN",
    "DATE", "TIME", "TIMESTAMP", "TIMESTAMPTZ", "DECIMAL", "JSON", "UUID", "BLOB",
]  # fmt: skip
