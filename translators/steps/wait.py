"""waitFor steps: sleep inside the op up to `inlineWaitMaxSeconds` (SPEC 3.6, 5.6)."""

from __future__ import annotations

import datetime as dt
import time

from translators.spec import WaitStepSpec
from translators.spec.steps import duration_seconds
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


def run_wait(spec: WaitStepSpec, rt: StepRuntime) -> StepResult:
    seconds = wait_seconds(spec, rt, dt.datetime.now(dt.UTC))
    if seconds > rt.inline_wait_max_seconds:
        # Pausing the run and resuming it from a sensor (SPEC 5.6) is a later issue;
        # holding a worker for hours silently would be worse than a clear failure.
        raise RuntimeError(
            f"step {rt.plan.name}: waiting {seconds:.0f}s exceeds settings.inlineWaitMaxSeconds "
            f"({rt.inline_wait_max_seconds}s); long waits that pause the run are not "
            "supported yet"
        )
    rt.log.info(f"wait {rt.plan.name}: sleeping {seconds:.1f}s")
    time.sleep(seconds)
    return StepResult(None, {"waited seconds": round(seconds, 3)})
