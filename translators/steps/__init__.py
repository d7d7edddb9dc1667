"""One module per step kind; `STEP_RUNNERS` maps a step model to the code of its op."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from translators.spec import (
    BranchStepSpec,
    ImportFromDatabaseStepSpec,
    PersistToDatabaseStepSpec,
    ServiceCallStepSpec,
    SqlStepSpec,
    WaitStepSpec,
)
from translators.steps.branch import run_branch
from translators.steps.import_db import run_import
from translators.steps.persist import run_persist
from translators.steps.runtime import StepResult, StepRuntime
from translators.steps.service_call import run_service_call
from translators.steps.sql import run_sql
from translators.steps.wait import run_wait

StepRunner = Callable[[Any, StepRuntime], StepResult]

STEP_RUNNERS: dict[type, StepRunner] = {
    ServiceCallStepSpec: run_service_call,
    SqlStepSpec: run_sql,
    ImportFromDatabaseStepSpec: run_import,
    PersistToDatabaseStepSpec: run_persist,
    BranchStepSpec: run_branch,
    WaitStepSpec: run_wait,
}

__all__ = ["STEP_RUNNERS", "StepResult", "StepRunner", "StepRuntime"]
