"""Step models (SPEC 3). A step's kind follows from the key it carries."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from translators.spec.base import MAX_RETRY_DELAY_MS, MAX_WAIT_SECONDS, SpecModel
from translators.spec.modifiers import FieldMapping, ForEachSpec, PaginationSpec, PreExecuteSpec

STEP_ID_PATTERN = r"^[A-Za-z0-9_]+$"


class BaseStepSpec(SpecModel):
    """Fields every step may carry."""

    id: Annotated[str, Field(pattern=STEP_ID_PATTERN)] | None = None
    depends_on: list[str] = Field(default_factory=list)
    output_table: Annotated[str, Field(min_length=1)] | None = None
    output_schema: dict[str, str] | None = None

    # The kind's name as shown in errors, docs and op tags.
    kind: ClassVar[str] = ""

    @property
    def default_name_stem(self) -> str:
        """The name of a step with neither id nor outputTable, before it is made unique
        (`persist_Product`, `wait`); SPEC 3."""
        return self.kind


class ServiceCallStepSpec(BaseStepSpec):
    kind: ClassVar[str] = "serviceCall"
    service: str
    operation: str
    params: dict[str, Any] = Field(default_factory=dict)
    data_path: str | None = None
    paginate: PaginationSpec | None = None
    for_each: ForEachSpec | None = None
    field_mapping: FieldMapping | None = None
    max_retries: Annotated[int, Field(ge=0, le=20)] = 3
    retry_delay_ms: Annotated[int, Field(ge=0, le=MAX_RETRY_DELAY_MS)] = 1000
    pre_execute: PreExecuteSpec | None = None

    @model_validator(mode="after")
    def _schema_with_table(self) -> ServiceCallStepSpec:
        # Decision (SPEC 3): a service's records have no schema of their own to infer from.
        if self.output_table and not self.output_schema:
            raise ValueError("a serviceCall step with outputTable needs outputSchema")
        return self

    @property
    def default_name_stem(self) -> str:
        return f"call_{self.operation}"


class SqlStepSpec(BaseStepSpec):
    kind: ClassVar[str] = "sql"
    sql: Annotated[str, Field(min_length=1)]
    output_table: Annotated[str, Field(min_length=1)]


class ImportSpec(SpecModel):
    app_id: str
    table_name: str
    columns: list[str] | None = None
    where_column: str | None = None
    where_value: Any = None
    field_mapping: FieldMapping | None = None
    output_table: str | None = None
    output_schema: dict[str, str] | None = None

    @model_validator(mode="after")
    def _where_pair(self) -> ImportSpec:
        has_value = "where_value" in self.model_fields_set
        if (self.where_column is None) != (not has_value):
            raise ValueError("set both whereColumn and whereValue, or neither")
        return self


class ImportFromDatabaseStepSpec(BaseStepSpec):
    kind: ClassVar[str] = "importFromDatabase"
    import_from_database: ImportSpec

    @model_validator(mode="after")
    def _one_output_table(self) -> ImportFromDatabaseStepSpec:
        inner = self.import_from_database
        if self.output_table and inner.output_table and self.output_table != inner.output_table:
            raise ValueError("outputTable is set on the step and inside importFromDatabase")
        if not (self.output_table or inner.output_table):
            raise ValueError("importFromDatabase needs outputTable (on the step)")
        if self.output_schema and inner.output_schema:
            raise ValueError("outputSchema is set on the step and inside importFromDatabase")
        return self

    @property
    def table(self) -> str:
        return self.output_table or self.import_from_database.output_table or ""

    @property
    def schema_(self) -> dict[str, str] | None:
        return self.output_schema or self.import_from_database.output_schema

    @property
    def default_name_stem(self) -> str:
        return f"import_{self.import_from_database.table_name}"


class ReplaceWhereSpec(SpecModel):
    match_columns: Annotated[list[str], Field(min_length=1)]


class PersistSpec(SpecModel):
    app_id: str
    table_name: str
    source_table: str
    mode: Literal["upsert", "replaceAll", "append"]
    field_mapping: Annotated[FieldMapping, Field(min_length=1)]
    upsert_key: Annotated[list[str], Field(min_length=1)] | None = None
    replace_where: ReplaceWhereSpec | None = None
    on_row_error: Literal["fail", "skip"] = "fail"

    @model_validator(mode="after")
    def _mode_needs(self) -> PersistSpec:
        if self.mode == "upsert" and not self.upsert_key:
            raise ValueError("mode upsert needs upsertKey")
        if self.mode == "replaceAll" and not self.replace_where:
            raise ValueError("mode replaceAll needs replaceWhere.matchColumns")
        return self


class PersistToDatabaseStepSpec(BaseStepSpec):
    kind: ClassVar[str] = "persistToDatabase"
    persist_to_database: PersistSpec

    @model_validator(mode="after")
    def _no_output(self) -> PersistToDatabaseStepSpec:
        if self.output_table or self.output_schema:
            raise ValueError("persistToDatabase produces no table; remove outputTable")
        return self

    @property
    def default_name_stem(self) -> str:
        return f"persist_{self.persist_to_database.table_name}"


class BranchSpec(SpecModel):
    condition: Any = None
    sql: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> BranchSpec:
        has_condition = "condition" in self.model_fields_set
        if has_condition == (self.sql is not None):
            raise ValueError("set exactly one of branch.condition or branch.sql")
        return self


class BranchStepSpec(BaseStepSpec):
    kind: ClassVar[str] = "conditional"
    branch: BranchSpec

    @model_validator(mode="after")
    def _fixed_schema(self) -> BranchStepSpec:
        if self.output_schema:
            raise ValueError("a branch's table always has one BOOLEAN column `value`")
        return self

    @property
    def default_name_stem(self) -> str:
        return "branch"


DURATION_PATTERN = r"^(\d+d)?(\d+h)?(\d+m)?(\d+s)?$"
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def duration_seconds(text: str) -> int:
    """`30s`, `5m`, `2h`, `1d` and compounds like `1h30m` -> seconds."""
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in re.findall(r"(\d+)([dhms])", text))


class WaitSpec(SpecModel):
    duration: Annotated[str, Field(pattern=DURATION_PATTERN, min_length=2)] | None = None
    until: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> WaitSpec:
        if self.duration is None and self.until is None:
            raise ValueError("set wait.duration (e.g. 30s, 1h30m) or wait.until (ISO-8601)")
        if self.duration and duration_seconds(self.duration) > MAX_WAIT_SECONDS:
            raise ValueError(f"wait.duration '{self.duration}' is longer than 366 days")
        return self


class WaitStepSpec(BaseStepSpec):
    kind: ClassVar[str] = "waitFor"
    wait: WaitSpec

    @model_validator(mode="after")
    def _no_output(self) -> WaitStepSpec:
        if self.output_table or self.output_schema:
            raise ValueError("a wait step produces no table; remove outputTable")
        return self

    @property
    def default_name_stem(self) -> str:
        return "wait"


# The key that identifies each kind (SPEC 3), in the order they are tried.
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "serviceCall": ("service", "operation"),
    "sql": ("sql",),
    "importFromDatabase": ("importFromDatabase",),
    "persistToDatabase": ("persistToDatabase",),
    "conditional": ("branch",),
    "waitFor": ("wait",),
}

STEP_KIND_ERROR = (
    "cannot tell the step's kind; expected exactly one of: service + operation, sql, "
    "importFromDatabase, persistToDatabase, branch, wait"
)


def step_kind_of(value: Any) -> str | None:
    """The kind tag of a raw step, or None when it has no kind key or several."""
    if isinstance(value, BaseStepSpec):
        return value.kind
    if not isinstance(value, dict):
        return None
    kinds = [kind for kind, keys in KIND_KEYS.items() if any(k in value for k in keys)]
    return kinds[0] if len(kinds) == 1 else None


StepSpec = Annotated[
    Annotated[ServiceCallStepSpec, Tag("serviceCall")]
    | Annotated[SqlStepSpec, Tag("sql")]
    | Annotated[ImportFromDatabaseStepSpec, Tag("importFromDatabase")]
    | Annotated[PersistToDatabaseStepSpec, Tag("persistToDatabase")]
    | Annotated[BranchStepSpec, Tag("conditional")]
    | Annotated[WaitStepSpec, Tag("waitFor")],
    Discriminator(
        step_kind_of,
        custom_error_type="step_kind",
        custom_error_message=STEP_KIND_ERROR,
    ),
]
