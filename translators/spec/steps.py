"""Step models (SPEC 3). A step's kind follows from the key it carries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeAlias

from pydantic import ConfigDict, Field, model_validator

from translators.spec.base import (
    DURATION_PATTERN,
    MAX_RETRY_DELAY_MS,
    MAX_WAIT_SECONDS,
    SpecModel,
    duration_seconds,
)
from translators.spec.modifiers import FieldMapping, ForEachSpec, PaginationSpec, PreExecuteSpec
from translators.spec.poll import PollSpec, check_poll_timing
from translators.spec.schema_rules import (
    empty_or_null,
    is_set,
    is_unset,
    no_output,
    non_empty_object,
    one_output_of,
    rules,
    when_equals,
)
from translators.spec.service import ResponseActions

# The union of the registered kinds (re-exported here).
from translators.spec.step_union import (  # noqa: F401
    KIND_KEYS,
    StepUnion,
    step_adapter,
    step_kind_expected,
    step_kind_of,
    use_step_kinds,
)

STEP_ID_PATTERN = r"^[A-Za-z0-9_]+$"


class BaseStepSpec(SpecModel):
    """Fields every step may carry."""

    id: Annotated[str, Field(pattern=STEP_ID_PATTERN)] | None = Field(
        None,
        description="Extension: the step's name (letters, digits and _); it names the op in "
        "Dagster and can be listed in dependsOn.",
    )
    depends_on: list[str] = Field(
        default_factory=list,
        description="Step ids or table names of earlier steps this step runs after, besides "
        "the tables it reads.",
    )
    output_table: Annotated[str, Field(min_length=1)] | None = Field(
        None,
        description="The name later steps use for this step's table (in SQL, forEach.source, "
        "sourceTable).",
    )
    output_schema: dict[str, str] | None = Field(
        None,
        description="Column name -> DuckDB type (VARCHAR, BIGINT, DOUBLE, BOOLEAN, DATE, "
        "TIMESTAMPTZ, DECIMAL(p,s), JSON, ...); values are cast to it when the table is written.",
    )

    # The kind's name as shown in errors, docs and op tags.
    kind: ClassVar[str] = ""

    @property
    def default_name_stem(self) -> str:
        """The name of a step with neither id nor outputTable, before it is made unique
        (`persist_Product`, `wait`); SPEC 3."""
        return self.kind


class ServiceCallStepSpec(BaseStepSpec):
    """serviceCall (SPEC 3.1): calls an operation of the service catalog; each record of
    the answer becomes a row of outputTable."""

    # With outputTable, outputSchema is required (see `_schema_with_table`).
    model_config = ConfigDict(
        json_schema_extra={"if": is_set("outputTable"), "then": non_empty_object("outputSchema")}
    )

    kind: ClassVar[str] = "serviceCall"
    service: str = Field(description="A service of the catalog (its file name without .json).")
    operation: str = Field(
        description="An operation of that service; the catalog gives its method and path."
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Values for the request: path placeholders first, the rest in the query "
        "(GET/DELETE) or the JSON body; may hold templates, nested objects and arrays.",
    )
    data_path: str | None = Field(
        None, description="Dot path to the records, e.g. data.orders (default: the whole answer)."
    )
    paginate: PaginationSpec | None = Field(
        None, description="How to fetch further pages (default: one request)."
    )
    for_each: ForEachSpec | None = Field(
        None, description="One call per row of an earlier table (default: one call)."
    )
    field_mapping: FieldMapping | None = Field(
        None,
        description="Output column -> dot path in the record, {{item.X}}, or a generator "
        "(default: columns match record fields by name, camelCase too).",
    )
    max_retries: Annotated[int, Field(ge=0, le=20)] = Field(
        3, description="Retries of a request after its first try (0..20)."
    )
    retry_delay_ms: Annotated[int, Field(ge=0, le=MAX_RETRY_DELAY_MS)] = Field(
        1000,
        description="The first retry's delay in milliseconds; it doubles for each further retry.",
    )
    pre_execute: PreExecuteSpec | None = Field(
        None,
        description="A call made first (per item with forEach); when it returns a record the "
        "main call is skipped.",
    )
    response_actions: ResponseActions = Field(
        default_factory=list,
        description="Extension (SPEC 9): rules {status, contains?, action} for this step's "
        "calls, checked before the operation's own and before the default rules.",
    )

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
    """sql (SPEC 3.2): one DuckDB SELECT over the tables of earlier steps."""

    kind: ClassVar[str] = "sql"
    sql: Annotated[str, Field(min_length=1)] = Field(
        description="One SELECT (CTEs allowed); {{var.X}} becomes a bound parameter."
    )
    output_table: Annotated[str, Field(min_length=1)] = Field(
        description="The result's table name; also the default step name."
    )


class ImportSpec(SpecModel):
    """What importFromDatabase reads (SPEC 3.3)."""

    # whereValue given <=> whereColumn set (see `_where_pair`).
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"required": ["whereValue"]},
            "then": is_set("whereColumn"),
            "else": is_unset("whereColumn"),
        }
    )

    app_id: str = Field(
        description="The app whose database is read, usually {{var.appId}}; a literal must "
        "be this app or one its app.json lists."
    )
    table_name: str = Field(description="The table to read.")
    columns: list[str] | None = Field(
        None, description="The columns to read (default: all, in table order)."
    )
    where_column: str | None = Field(
        None, description="With whereValue: read only the rows where this column equals it."
    )
    where_value: Any = Field(
        None,
        description="The value whereColumn must equal; may be a template; null matches NULL.",
    )
    field_mapping: FieldMapping | None = Field(
        None, description="Output column -> source column, or a generator."
    )
    output_table: str | None = Field(
        None, description="The step's outputTable, when it is not set on the step."
    )
    output_schema: dict[str, str] | None = Field(
        None, description="The step's outputSchema, when it is not set on the step."
    )

    @model_validator(mode="after")
    def _where_pair(self) -> ImportSpec:
        has_value = "where_value" in self.model_fields_set
        if (self.where_column is None) != (not has_value):
            raise ValueError("set both whereColumn and whereValue, or neither")
        return self


class ImportFromDatabaseStepSpec(BaseStepSpec):
    """importFromDatabase (SPEC 3.3): reads a table of an app database, in batches."""

    # One outputTable (on the step or inside), at most one outputSchema: `_one_output_table`.
    model_config = ConfigDict(json_schema_extra=one_output_of("importFromDatabase"))

    kind: ClassVar[str] = "importFromDatabase"
    import_from_database: ImportSpec = Field(description="The table to read and how.")

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
    """Which target rows a replaceAll write replaces."""

    match_columns: Annotated[list[str], Field(min_length=1)] = Field(
        description="Target columns (mapped) whose values in the source select the rows to replace."
    )


class PersistSpec(SpecModel):
    """What persistToDatabase writes, and how (SPEC 3.4)."""

    # The keys each mode needs (see `_mode_needs`).
    model_config = ConfigDict(
        json_schema_extra=rules(
            when_equals("mode", "upsert", is_set("upsertKey")),
            when_equals("mode", "replaceAll", is_set("replaceWhere")),
        )
    )

    app_id: str = Field(
        description="The app whose database is written, usually {{var.appId}}; a literal "
        "must be this app or one its app.json lists."
    )
    table_name: str = Field(description="The target table.")
    source_table: str = Field(
        description="The outputTable of an earlier step; the step runs after it."
    )
    mode: Literal["upsert", "replaceAll", "append"] = Field(
        description="upsert: insert or update by upsertKey. replaceAll: replace the rows "
        "matching replaceWhere, in one transaction. append: insert every row."
    )
    field_mapping: Annotated[FieldMapping, Field(min_length=1)] = Field(
        description="Target column -> source column, or a generator (at least one column)."
    )
    upsert_key: Annotated[list[str], Field(min_length=1)] | None = Field(
        None,
        description="Required for upsert: mapped target columns that are exactly a primary "
        "key, unique constraint or unique index.",
    )
    replace_where: ReplaceWhereSpec | None = Field(
        None, description="Required for replaceAll: the columns that select the rows replaced."
    )
    on_row_error: Literal["fail", "skip"] = Field(
        "fail",
        description="fail: any bad row rolls the whole write back. skip: bad rows are left "
        "out and reported in the step's metadata.",
    )

    @model_validator(mode="after")
    def _mode_needs(self) -> PersistSpec:
        if self.mode == "upsert" and not self.upsert_key:
            raise ValueError("mode upsert needs upsertKey")
        if self.mode == "replaceAll" and not self.replace_where:
            raise ValueError("mode replaceAll needs replaceWhere.matchColumns")
        return self


class PersistToDatabaseStepSpec(BaseStepSpec):
    """persistToDatabase (SPEC 3.4): writes an earlier table into an app database,
    exactly once per run."""

    model_config = ConfigDict(json_schema_extra=no_output())  # see `_no_output`

    kind: ClassVar[str] = "persistToDatabase"
    persist_to_database: PersistSpec = Field(description="The table to write and how.")

    @model_validator(mode="after")
    def _no_output(self) -> PersistToDatabaseStepSpec:
        if self.output_table or self.output_schema:
            raise ValueError("persistToDatabase produces no table; remove outputTable")
        return self

    @property
    def default_name_stem(self) -> str:
        return f"persist_{self.persist_to_database.table_name}"


class BranchSpec(SpecModel):
    """Exactly one of condition or sql; false, 0, "", null and no row are false."""

    # A given condition (even null) excludes sql, which is needed otherwise: `_exactly_one`.
    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["condition"]}, is_set("sql")]}
    )

    condition: Any = Field(
        None, description="Any JSON value; templates are rendered, usually {{var.flag}}."
    )
    sql: str | None = Field(
        None,
        description="One SELECT over earlier tables; its first column of the first row is the "
        "value, no row is false.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> BranchSpec:
        has_condition = "condition" in self.model_fields_set
        if has_condition == (self.sql is not None):
            raise ValueError("set exactly one of branch.condition or branch.sql")
        return self


class BranchStepSpec(BaseStepSpec):
    """conditional (SPEC 3.5): when false, every step depending on it is skipped."""

    model_config = ConfigDict(
        json_schema_extra=rules(empty_or_null("outputSchema"))
    )  # `_fixed_schema`

    kind: ClassVar[str] = "conditional"
    branch: BranchSpec = Field(description="The value; its table has one BOOLEAN column `value`.")

    @model_validator(mode="after")
    def _fixed_schema(self) -> BranchStepSpec:
        if self.output_schema:
            raise ValueError("a branch's table always has one BOOLEAN column `value`")
        return self

    @property
    def default_name_stem(self) -> str:
        return "branch"


class WaitSpec(SpecModel):
    """duration or until (until wins when both are set), or extension poll."""

    model_config = ConfigDict(
        json_schema_extra={"anyOf": [is_set("duration"), is_set("until"), is_set("poll")]}
    )

    duration: Annotated[str, Field(pattern=DURATION_PATTERN, min_length=2)] | None = Field(
        None,
        description="30s, 5m, 2h, 1d, or a compound in that order (1h30m); at most 366 days.",
    )
    until: str | None = Field(
        None,
        description="An ISO-8601 time (without an offset it is UTC); may be a template.",
    )
    poll: PollSpec | None = Field(
        None,
        description="Extension: call an operation every `every` until a value of its answer "
        "says done (docs/steps/wait.md#polling-waits); not with duration or until.",
    )
    every: Annotated[str, Field(pattern=DURATION_PATTERN, min_length=2)] | None = Field(
        None, description="With poll: the time between two polls, at least 1s (default 30s)."
    )
    timeout: Annotated[str, Field(pattern=DURATION_PATTERN, min_length=2)] | None = Field(
        None,
        description="With poll: how long to poll before the step fails (default 1h; at most "
        "366 days).",
    )

    @model_validator(mode="after")
    def _one_of(self) -> WaitSpec:
        has_time = self.duration is not None or self.until is not None
        check_poll_timing(self.poll, self.every, self.timeout, has_time)
        if not has_time and self.poll is None:
            raise ValueError("set wait.duration (e.g. 30s, 1h30m) or wait.until (ISO-8601)")
        if self.duration and duration_seconds(self.duration) > MAX_WAIT_SECONDS:
            raise ValueError(f"wait.duration '{self.duration}' is longer than 366 days")
        return self


class WaitStepSpec(BaseStepSpec):
    """waitFor (SPEC 3.6): runs after every earlier step and before every later one; a
    long wait pauses the run instead of holding a worker."""

    model_config = ConfigDict(json_schema_extra=no_output())  # see `_no_output`

    kind: ClassVar[str] = "waitFor"
    wait: WaitSpec = Field(description="How long, or until when.")

    @model_validator(mode="after")
    def _no_output(self) -> WaitStepSpec:
        if self.output_table or self.output_schema:
            raise ValueError("a wait step produces no table; remove outputTable")
        return self

    @property
    def default_name_stem(self) -> str:
        return "wait"


# Any step: parsed as one of the registered kinds (`step_union`); typed as their base.
if TYPE_CHECKING:
    StepSpec: TypeAlias = BaseStepSpec
else:
    StepSpec = StepUnion
