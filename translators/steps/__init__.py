"""One module per step kind, each with its `KIND` (`kind.StepKind`); `registry.STEP_KINDS`
is the one table of them. Importing this package imports no kind (and no Dagster)."""

from __future__ import annotations

from translators.steps.runtime import StepResult, StepRuntime

__all__ = ["StepResult", "StepRuntime"]
