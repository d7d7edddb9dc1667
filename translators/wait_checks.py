"""`workflows check` warnings about waits (SPEC 3.6, 5.6): a literal wait longer than
the workflow's `inlineWaitMaxSeconds` pauses its run. That is allowed (a warning, not
a problem), but it relies on the resume sensor, so the author should know."""

from __future__ import annotations

import datetime as dt

from translators.errors import Problem, join_pointer
from translators.loader import LoadResult
from translators.plans import WorkflowPlan
from translators.spec import WaitStepSpec
from translators.spec.poll import poll_timing
from translators.spec.steps import duration_seconds
from translators.steps.wait import parse_until


def long_wait_warnings(loaded: LoadResult, now: dt.datetime | None = None) -> list[Problem]:
    now = now or dt.datetime.now(dt.UTC)
    warnings: list[Problem] = []
    for workflow in loaded.workflows:
        warnings += _workflow_warnings(workflow, now)
    return warnings


def _workflow_warnings(workflow: WorkflowPlan, now: dt.datetime) -> list[Problem]:
    limit = workflow.spec.settings.inline_wait_max_seconds
    found = []
    for step in workflow.steps:
        spec = step.spec
        if not isinstance(spec, WaitStepSpec):
            continue
        field, seconds = _literal_seconds(spec, now)
        if seconds is None or seconds <= limit:
            continue
        found.append(
            Problem(
                workflow.file,
                join_pointer(step.pointer, "wait", field),
                f"warning: this wait ({seconds:.0f}s) is longer than "
                f"settings.inlineWaitMaxSeconds ({limit}s), so the run pauses here and "
                "holds no worker; the resume sensor continues it when due (the Dagster "
                "daemon must run), or `workflows resume RUN_ID`",
            )
        )
    return found


def _literal_seconds(spec: WaitStepSpec, now: dt.datetime) -> tuple[str, float | None]:
    """The wait's length when the file alone says it (`until` wins, as at run time); a
    polling wait's longest, its timeout (it pauses between polls when that is long)."""
    if spec.wait.poll is not None:
        field = "timeout" if spec.wait.timeout is not None else "poll"
        return field, float(poll_timing(spec.wait.every, spec.wait.timeout)[1])
    until = spec.wait.until
    if until is not None:
        if "{{" in until:
            return "until", None  # a template: known only at run time
        try:
            return "until", (parse_until(until) - now).total_seconds()
        except ValueError:
            return "until", None  # validation reports it
    assert spec.wait.duration is not None
    return "duration", float(duration_seconds(spec.wait.duration))
