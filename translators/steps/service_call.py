"""serviceCall steps (SPEC 3.1, 5.1-5.3, 5.5): the kind. It says what the step reads and
calls, how it is checked and described, and binds it once when the job is built: the
operations, the paginator and the level its retries come from are resolved from the
catalog then (`bind`), so the op never reaches back into the catalog while it runs. The
run itself is `service_call_run.ServiceCall`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from resources.secrets import redact
from translators.spec import ServiceCallStepSpec, ServiceSpec
from translators.step_checks import check_service_call
from translators.steps.kind import Lineage, StepKind, TableRead
from translators.steps.pagination import paginator_for
from translators.steps.runtime import StepResult, StepRuntime

if TYPE_CHECKING:
    from resources.service import Operation
    from translators.plans import StepPlan
    from translators.steps.service_call_run import BoundCall

# Where a forEach step may read `{{item.X}}`: preExecute runs once per item (SPEC 5.5).
ITEM_SITES = ("/params", "/forEach/runAsUser", "/preExecute/params", "/fieldMapping")


def retry_settings(spec: ServiceCallStepSpec) -> Any:
    """Where a request's `maxRetries` / `retryDelayMs` come from (SPEC 5.5 levels).

    The innermost level that sets them explicitly wins: page (`paginate`), then item
    (`forEach`), then the step; when none does, a forEach's defaults apply to its items.
    """
    levels = [level for level in (spec.paginate, spec.for_each, spec) if level is not None]
    for level in levels:
        if level.model_fields_set & {"max_retries", "retry_delay_ms"}:
            return level
    return spec.for_each or spec


def _operation(
    catalog: dict[str, ServiceSpec],
    service: str,
    name: str,
    keyed: bool,
    step_rules: Sequence[Any] = (),
) -> Operation:
    from resources.service import Operation, ResponseAction

    operation = catalog[service].operations[name]
    header = operation.idempotency_header if keyed else None
    # responseActions: the step's rules first, then the operation's (SPEC 9, extension).
    rules = [*step_rules, *operation.response_actions]
    actions = tuple(ResponseAction(r.status, r.action, r.contains) for r in rules)
    return Operation(name, operation.method, operation.path, operation.mutation, header, actions)


def bind(step: StepPlan, catalog: dict[str, ServiceSpec]) -> BoundCall:
    """The step with its catalog operations, paginator and retry level, resolved once."""
    from translators.steps.service_call_run import BoundCall

    spec = step.spec
    assert isinstance(spec, ServiceCallStepSpec)
    pre = spec.pre_execute
    return BoundCall(
        spec=spec,
        operation=_operation(
            catalog, spec.service, spec.operation, keyed=True, step_rules=spec.response_actions
        ),
        # preExecute only reads: it sends no idempotency key.
        pre_operation=_operation(catalog, pre.service, pre.operation, keyed=False)
        if pre is not None
        else None,
        paginator=paginator_for(spec.paginate) if spec.paginate is not None else None,
        retries_from=retry_settings(spec),
    )


def services_called(spec: ServiceCallStepSpec) -> list[str]:
    """The catalog names of the services the step calls (its own, then preExecute's)."""
    names = [spec.service] + ([spec.pre_execute.service] if spec.pre_execute else [])
    return list(dict.fromkeys(names))


def _reads(spec: ServiceCallStepSpec) -> list[TableRead]:
    if spec.for_each is None:
        return []
    return [TableRead(spec.for_each.source, ("forEach", "source"), "forEach")]


def _describe(workflow: Any, step: Any, catalog: dict[str, ServiceSpec]) -> str:
    spec = step.spec
    service = catalog.get(spec.service)
    operation = service.operations.get(spec.operation) if service else None
    call = f"`{spec.service}.{spec.operation}`"
    if operation is not None:
        call += f" ({operation.method} {operation.path})"
    text = f"Calls {call}"
    if spec.for_each is not None:
        text += f" once per row of `{spec.for_each.source}`"
    if spec.paginate is not None:
        text += f", following {spec.paginate.type} pages"
    writes = f" Writes table `{step.output_table}`." if step.output_table else ""
    return text + "." + writes


def _lineage(spec: ServiceCallStepSpec) -> Lineage:
    # Only a call whose records become a table feeds the app tables written later.
    if not spec.output_table:
        return Lineage()
    return Lineage(operations_kept=((spec.service, spec.operation),))


# A progress line at most this often (seconds) while a call or forEach runs: a steady
# wall-clock pace, so a big run logs the same few lines a minute however fast its pages
# come, and a short one only its summary. The variable lets a test or a user change it.
PROGRESS_SECONDS_VARIABLE = "WORKFLOWS_PROGRESS_SECONDS"
DEFAULT_PROGRESS_SECONDS = 10.0


def progress_interval() -> float:
    """The pace of progress lines: `WORKFLOWS_PROGRESS_SECONDS`, else 10 s."""
    raw = os.environ.get(PROGRESS_SECONDS_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_PROGRESS_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise ValueError(
            f"environment variable {PROGRESS_SECONDS_VARIABLE}={raw!r}: expected a number of "
            f"seconds above 0 (e.g. {DEFAULT_PROGRESS_SECONDS:g}), the pace of progress lines"
        )
    return seconds


# The step level of SPEC 5.5 takes over where the request level stopped, and no more than
# this: a request that keeps failing is tried at most (r + 1) x (STEP_RETRY_CAP + 1) times.
STEP_RETRY_CAP = 3
STEP_RETRY_BASE_CAP_S = 60.0


def step_retry_policy(spec: ServiceCallStepSpec) -> Any:
    """The op's `RetryPolicy`: the step's `maxRetries` (at most STEP_RETRY_CAP), waiting
    (2^n - 1) x D before step retry n, D = `retryDelayMs` x 2^r (capped at 60 s) where r
    is the retries of one request: the backoff goes on from the request's last wait.

    Each attempt resumes from the checkpoint; `run_service_call` lets only failures that
    may pass reach the policy.
    """
    import dagster as dg  # building the job needs it; checking does not

    retries = min(spec.max_retries, STEP_RETRY_CAP)
    if retries == 0:
        return None
    request_retries = retry_settings(spec).max_retries
    base = min(spec.retry_delay_ms / 1000.0 * 2**request_retries, STEP_RETRY_BASE_CAP_S)
    return dg.RetryPolicy(max_retries=retries, delay=base, backoff=dg.Backoff.EXPONENTIAL)


# A request gave up on a failure that may pass (SPEC 5.5: 408, 429, 5xx, timeouts,
# connection errors): the page loop says "(after N retries)", also inside a forEach error.
_GAVE_UP = re.compile(r"\(after \d+ retries\)")
# What surely did not reach the server's logic, so a mutation may be sent again.
_NOT_TAKEN = re.compile(r"HTTP (429|503) |ConnectError|ConnectTimeout|PoolTimeout")


def may_pass(error: BaseException, *, unguarded_mutation: bool) -> bool:
    """Whether a step retry (SPEC 5.5, level "step") could cure `error`.

    Only a request that ran out of its page/item retries on a retryable failure; a 4xx,
    bad JSON, a missing dataPath, a pagination loop or a cast error would fail the same
    way again. A mutation without `preExecute` is sent again only after a 429, a 503 or
    a refused connection, which the server surely did not act on.
    """
    from resources.service import ServiceCallError

    text = str(error)
    if not isinstance(error, ServiceCallError) or not _GAVE_UP.search(text):
        return False
    return not unguarded_mutation or bool(_NOT_TAKEN.search(text))


def run_service_call(bound: BoundCall, rt: StepRuntime) -> StepResult:
    """Runs the step; a failure no step retry can cure bypasses the op's `RetryPolicy`."""
    import dagster as dg

    from resources.service import ServiceCallError
    from translators.steps.service_call_run import ServiceCall

    spec, operation = bound.spec, bound.operation
    try:
        return ServiceCall(bound, rt, progress_interval()).run()
    except Exception as error:
        # The key or preExecute guards a step retry too: the key stays the same per lineage.
        guarded = spec.pre_execute is not None or operation.idempotency_header is not None
        if may_pass(error, unguarded_mutation=operation.mutation and not guarded):
            rt.log.warning(f"{rt.plan.name}: a step retry (if any are left) resumes: {error}")
            raise
        text = (
            str(error)
            if isinstance(error, ServiceCallError)
            else f"{type(error).__name__}: {error}"
        )
        raise dg.Failure(redact(text), allow_retries=False) from error


KIND = StepKind(
    name="serviceCall",
    spec=ServiceCallStepSpec,
    keys=("service", "operation"),
    badge="serviceCall",
    template_sites=ITEM_SITES,
    item_sites=ITEM_SITES,
    item_role="forEach",
    reads=_reads,
    check=check_service_call,
    services=services_called,
    bind=bind,
    retry_policy=lambda bound: step_retry_policy(bound.spec),
    describe=_describe,
    lineage=_lineage,
    run=run_service_call,
)
