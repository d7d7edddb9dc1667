"""waitFor steps (SPEC 3.6, 5.6): sleep inside the op up to `inlineWaitMaxSeconds`; a
longer wait pauses the run (translators/pause.py) and its continuation passes when due."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from translators.spec import WaitStepSpec
from translators.spec.steps import duration_seconds
from translators.step_checks import check_wait
from translators.steps.kind import StepKind
from translators.steps.poll import (
    BoundPoll,
    bind_wait,
    check_poll,
    describe_wait,
    poll_services,
    run_poll,
)
from translators.steps.runtime import StepResult, StepRuntime
from translators.templates import render


def parse_until(value: str) -> dt.datetime:
    """ISO-8601; a time without an offset is UTC (SPEC 3.6)."""
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def wait_seconds(spec: WaitStepSpec, rt: StepRuntime, now: dt.datetime) -> float:
    """How long this wait lasts from `now`; `until` wins when both are set."""
    if spec.wait.until is not None:
        until = parse_until(str(render(spec.wait.until, rt.variables)))
        return max(0.0, (until - now).total_seconds())
    assert spec.wait.duration is not None
    return float(duration_seconds(spec.wait.duration))


def run_wait(spec: WaitStepSpec | BoundPoll, rt: StepRuntime) -> StepResult:
    if isinstance(spec, BoundPoll):
        return run_poll(spec, rt)
    # Imported here: checking a workflow needs the kind, not Dagster.
    import dagster as dg

    from translators.pause import iso, pause_run, recorded_due

    context = dg.OpExecutionContext.get()
    now = dt.datetime.now(dt.UTC)
    # A continuation waits for the time its paused parent recorded, not a new duration.
    due, skip_rest = recorded_due(context, rt.plan.name)
    if skip_rest:
        rt.log.info(f"wait {rt.plan.name}: resumed with --now; the rest of the wait is skipped")
        return StepResult(None, {"waited seconds": 0.0, "skipped until": iso(due or now)})
    if due is None:
        due = now + dt.timedelta(seconds=wait_seconds(spec, rt, now))
    seconds = max(0.0, (due - now).total_seconds())
    if seconds > rt.inline_wait_max_seconds:
        pause_run(context, rt.plan.name, due, rt.inline_wait_max_seconds)
    rt.log.info(f"wait {rt.plan.name}: sleeping {seconds:.1f}s")
    time.sleep(seconds)
    return StepResult(None, {"waited seconds": round(seconds, 3)})


def _check(ctx: Any, slot: Any, spec: WaitStepSpec, slots: Any) -> None:
    check_wait(ctx, slot, spec)
    check_poll(ctx, slot, spec)


KIND = StepKind(
    name="waitFor",
    spec=WaitStepSpec,
    keys=("wait",),
    badge="wait",
    template_sites=("/wait/until", "/wait/poll/params"),
    produces_table=False,
    barrier=True,
    check=_check,
    services=poll_services,
    bind=bind_wait,
    describe=describe_wait,
    run=run_wait,
)
