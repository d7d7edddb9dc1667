"""Pydantic models of the definition files. After parsing, no code touches raw dicts."""

from translators.spec.app import AppSpec
from translators.spec.modifiers import (
    CursorPaginationSpec,
    FieldMapping,
    ForEachSpec,
    GenerateSpec,
    LinkPaginationSpec,
    NextUrlPaginationSpec,
    OffsetPaginationSpec,
    PageNumberPaginationSpec,
    PaginationSpec,
    PreExecuteSpec,
    RateLimitSpec,
)
from translators.spec.schedule import ScheduleEntrySpec, SchedulesFileSpec
from translators.spec.service import OperationSpec, ServiceSpec
from translators.spec.steps import (
    BaseStepSpec,
    BranchStepSpec,
    ImportFromDatabaseStepSpec,
    PersistToDatabaseStepSpec,
    ServiceCallStepSpec,
    SqlStepSpec,
    StepSpec,
    WaitStepSpec,
)
from translators.spec.workflow import (
    DateOffsetVariableSpec,
    LastValueVariableSpec,
    NowVariableSpec,
    ParamVariableSpec,
    SettingsSpec,
    VariableSpec,
    WorkflowSpec,
)

__all__ = [
    "AppSpec",
    "BaseStepSpec",
    "BranchStepSpec",
    "CursorPaginationSpec",
    "DateOffsetVariableSpec",
    "FieldMapping",
    "ForEachSpec",
    "GenerateSpec",
    "ImportFromDatabaseStepSpec",
    "LastValueVariableSpec",
    "LinkPaginationSpec",
    "NextUrlPaginationSpec",
    "NowVariableSpec",
    "OffsetPaginationSpec",
    "OperationSpec",
    "PageNumberPaginationSpec",
    "PaginationSpec",
    "ParamVariableSpec",
    "PersistToDatabaseStepSpec",
    "PreExecuteSpec",
    "RateLimitSpec",
    "ScheduleEntrySpec",
    "SchedulesFileSpec",
    "ServiceCallStepSpec",
    "ServiceSpec",
    "SettingsSpec",
    "SqlStepSpec",
    "StepSpec",
    "VariableSpec",
    "WaitStepSpec",
    "WorkflowSpec",
]
