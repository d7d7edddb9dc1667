"""Polling waits (SPEC 3.6, extension `wait.poll`): call an operation every `every` until
a value of its answer says done; part of the wait kind (translators/steps/wait.py).

The call goes through the service's resource like a serviceCall's (auth, rate limit,
request retries, redaction). Between two polls the step sleeps when the rest of the poll
(until `timeout`) fits in `inlineWaitMaxSeconds`; otherwise the run pauses as a long wait
does (translators/pause.py) until the next poll is due, recording when the poll gives up,
and its continuation polls again. No worker is held between two polls of a long poll.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from translators.errors import join_pointer
from translators.spec import WaitStepSpec
from translators.spec.poll import PollSpec, poll_timing
from translators.step_checks import check_operation
from translators.steps.runtime import StepResult, StepRuntime
from translators.templates import render

if TYPE_CHECKING:
    from resources.service import Operation
    from translators.check_context import CheckContext, Slot
    from translators.plans import StepPlan
    from translators.spec import ServiceSpec


@dataclass(frozen=True)
class BoundPoll:
    """A polling wait with its catalog operation, resolved once when the job is built."""

    spec: WaitStepSpec
    poll: PollSpec
    operation: Operation


def bind_wait(step: StepPlan, catalog: dict[str, ServiceSpec]) -> WaitStepSpec | BoundPoll:
    """A plain wait stays its spec; a polling one gets its operation."""
    from resources.service import Operation, ResponseAction

    spec = step.spec
    assert isinstance(spec, WaitStepSpec)
    poll = spec.wait.poll
    if poll is None:
        return spec
    op = catalog[poll.service].operations[poll.operation]
    # A poll only reads: it sends no idempotency key. The operation's responseActions hold.
    actions = tuple(ResponseAction(r.status, r.action, r.contains) for r in op.response_actions)
    operation = Operation(poll.operation, op.method, op.path, op.mutation, None, actions)
    return BoundPoll(spec, poll, operation)


def poll_services(spec: WaitStepSpec) -> list[str]:
    return [spec.wait.poll.service] if spec.wait.poll is not None else []


def check_poll(ctx: CheckContext, slot: Slot, spec: WaitStepSpec) -> None:
    """The service and operation exist and the params fill the operation's path."""
    poll = spec.wait.poll
    if poll is not None:
        base = join_pointer(slot.pointer, "wait", "poll")
        check_operation(ctx, base, poll.service, poll.operation, poll.params)


def describe_wait(workflow: Any, step: StepPlan, catalog: Any) -> str:
    spec = step.spec
    assert isinstance(spec, WaitStepSpec)
    poll = spec.wait.poll
    if poll is None:
        return "Waits before the steps after it."
    every, timeout = poll_timing(spec.wait.every, spec.wait.timeout)
    return (
        f"Calls `{poll.service}.{poll.operation}` every {every}s until {poll.condition_text()} "
        f"(at most {timeout}s), before the steps after it."
    )


@dataclass
class _Seen:
    """The last answer: the value at `field`, whether there was one, and polls so far."""

    value: Any = None
    present: bool = False
    polls: int = 0

    def text(self, field: str) -> str:
        if not self.present:
            return f"nothing at {field!r}"
        return f"{field} = {json.dumps(self.value, default=str)}"


def _ask(bound: BoundPoll, rt: StepRuntime, seen: _Seen) -> None:
    """One poll: the operation once (no pages), the value at `field` of its first record."""
    from resources.records import MISSING, get_path
    from resources.service import CallRequest

    poll = bound.poll
    request = CallRequest(
        operation=bound.operation,
        params=render(poll.params, rt.variables),
        data_path=poll.data_path,
    )
    pages = rt.service(poll.service).iter_pages(request)
    try:
        first = next(pages, None)
    finally:
        pages.close()
    record = first.records[0] if first is not None and first.records else {}
    value = get_path(record, poll.field)
    seen.value, seen.present = (None, False) if value is MISSING else (value, True)
    seen.polls += 1
    rt.log.info(
        f"wait {rt.plan.name}: poll {seen.polls} of {poll.service}.{poll.operation}: "
        f"{seen.text(poll.field)}"
    )


def run_poll(bound: BoundPoll, rt: StepRuntime) -> StepResult:
    """Polls until done, sleeping between polls or pausing the run (see the module)."""
    import dagster as dg

    from translators.pause import POLL_DEADLINE_TAG, iso, pause_run, recorded_poll_deadline

    context = dg.OpExecutionContext.get()
    poll, step = bound.poll, rt.plan.name
    every, timeout = poll_timing(bound.spec.wait.every, bound.spec.wait.timeout)
    started = time.monotonic()
    # A continuation keeps the deadline its paused parent recorded.
    deadline = recorded_poll_deadline(context, step)
    deadline = deadline or dt.datetime.now(dt.UTC) + dt.timedelta(seconds=timeout)
    seen = _Seen()
    while True:
        _ask(bound, rt, seen)
        if poll.is_done(seen.value, seen.present):
            waited = round(time.monotonic() - started, 3)
            metadata = {"polls": seen.polls, "last value": seen.text(poll.field)}
            return StepResult(None, {**metadata, "waited seconds": waited})
        now = dt.datetime.now(dt.UTC)
        left = (deadline - now).total_seconds()
        if left <= 0:
            raise dg.Failure(
                _timeout_message(bound, step, seen, iso(deadline)), allow_retries=False
            )
        following = min(now + dt.timedelta(seconds=every), deadline)
        if left > rt.inline_wait_max_seconds:
            why = (
                f"polls {poll.service}.{poll.operation} until {poll.condition_text()} (last: "
                f"{seen.text(poll.field)}) up to {iso(deadline)}, longer than "
                f"settings.inlineWaitMaxSeconds ({rt.inline_wait_max_seconds}s); it polls again "
                "when due"
            )
            tags = {POLL_DEADLINE_TAG: iso(deadline)}
            pause_run(context, step, following, rt.inline_wait_max_seconds, why=why, tags=tags)
        time.sleep(max(0.0, (following - now).total_seconds()))


def _timeout_message(bound: BoundPoll, step: str, seen: _Seen, deadline: str) -> str:
    poll = bound.poll
    timeout = bound.spec.wait.timeout or "1h (the default)"
    return (
        f"wait {step}: {poll.service}.{poll.operation} did not report "
        f"{poll.condition_text()} within wait.timeout {timeout} (gave up at {deadline}); "
        f"last value seen: {seen.text(poll.field)}"
    )
