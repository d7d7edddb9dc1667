"""serviceCall steps: one call, paginated calls, or one call per row with forEach
(SPEC 3.1, 5.1-5.3, 5.5). Pages and items are written to the table store as they arrive.

A paginated or forEach step keeps a checkpoint (`resources.checkpoints`) while it runs,
so a step retry or a re-execution from failure resumes after the last finished page or
skips the finished items; nothing finished is fetched, posted or written twice.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from contextlib import nullcontext
from functools import cached_property
from typing import Any

import dagster as dg

from resources.checkpoints import StepCheckpoint
from resources.paginators import (
    CursorPaginator,
    LinkHeaderPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    Paginator,
)
from resources.records import RecordShaper
from resources.secrets import redact
from resources.service import (
    CallRequest,
    CallStats,
    Operation,
    ServiceCallError,
    idempotency_key,
)
from translators.spec import (
    CursorPaginationSpec,
    FieldMapping,
    GenerateSpec,
    LinkPaginationSpec,
    NextUrlPaginationSpec,
    OffsetPaginationSpec,
    PageNumberPaginationSpec,
    PaginationSpec,
    ServiceCallStepSpec,
)
from translators.steps.for_each import ItemProgress, run_for_each
from translators.steps.runtime import StepResult, StepRuntime
from translators.templates import render


def paginator_for(spec: PaginationSpec) -> Paginator:
    """`CursorPaginationSpec` -> `CursorPaginator`, and so on for each style."""
    if isinstance(spec, CursorPaginationSpec):
        return CursorPaginator(
            spec.cursor_field, spec.cursor_param, spec.has_more_field, max_pages=spec.max_pages
        )
    if isinstance(spec, PageNumberPaginationSpec):
        return PageNumberPaginator(spec.page_param, spec.start_page, max_pages=spec.max_pages)
    if isinstance(spec, OffsetPaginationSpec):
        return OffsetPaginator(
            spec.offset_param,
            spec.limit_param,
            spec.limit_value,
            spec.start_offset,
            max_pages=spec.max_pages,
        )
    if isinstance(spec, LinkPaginationSpec):
        return LinkHeaderPaginator(max_pages=spec.max_pages)
    assert isinstance(spec, NextUrlPaginationSpec)
    return NextUrlPaginator(spec.next_url_field, max_pages=spec.max_pages)


def mapping_dict(mapping: FieldMapping | None) -> dict[str, Any] | None:
    """The plain form `resources.records` takes: generators as `{"generate": kind}`."""
    if mapping is None:
        return None
    return {
        column: source.model_dump() if isinstance(source, GenerateSpec) else source
        for column, source in mapping.items()
    }


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


class ServiceCall:
    """One run of one serviceCall step."""

    def __init__(self, spec: ServiceCallStepSpec, rt: StepRuntime) -> None:
        self.spec = spec
        self.rt = rt
        self.columns = list((rt.plan.output_schema or {}).keys())
        self.shaper = RecordShaper(self.columns, mapping_dict(spec.field_mapping))
        self.started = time.monotonic()
        self.stats = CallStats(
            on_progress=self.log_progress,
            progress_interval_s=progress_interval(),
            on_log=self.log_line,
        )
        self.service = rt.service(spec.service)
        # Set by `run_for_each`: the items' figures, for the progress and summary lines.
        self.item_progress: ItemProgress | None = None

    def log_line(self, level: int, text: str) -> None:
        """A line of the client (a retry, a skipped item), on the step's thread."""
        self.rt.log.log(level, f"{self.rt.plan.name}: {text}")

    def log_progress(self, stats: CallStats) -> None:
        self.rt.log.info(f"{self.rt.plan.name}: progress: {self.figures(stats)}")

    def figures(self, stats: CallStats) -> str:
        """What the call has done so far: items, or pages and where the call is."""
        if self.item_progress is not None:
            return self.item_progress.describe(stats)
        seconds = stats.duration_s or 1e-9
        text = (
            f"{stats.pages} pages, {stats.records} records, {stats.pages / seconds:.1f} pages/s, "
            f"{stats.records / seconds:.0f} records/s, {stats.retries} retries"
        )
        page = stats.last_page
        if page is not None and self.spec.paginate is not None:
            text += f"; at page {page.number}: {self.operation.method} {page.url_redacted}"
        return text

    def log_summary(self, failed: bool) -> None:
        """The step's last line: how long it took and what it did (this attempt)."""
        stats = self.stats
        seconds = time.monotonic() - self.started
        work = self.figures(stats)
        if self.item_progress is None:
            work = f"{stats.pages} pages, {stats.records} records, {stats.requests} requests, "
            work += f"{stats.retries} retries"
        if failed:
            self.rt.log.warning(f"{self.rt.plan.name}: failed after {seconds:.1f} s: {work}")
        else:
            self.rt.log.info(f"{self.rt.plan.name}: done in {seconds:.1f} s: {work}")

    def request(self, item: dict[str, Any] | None = None, item_key: Any = None) -> CallRequest:
        """The main call (of one item); `item_key` goes into its idempotency key."""
        spec = self.spec
        operation = self.operation
        user = None
        if spec.for_each and spec.for_each.run_as_user is not None:
            user = str(render(spec.for_each.run_as_user, self.rt.variables, item))
        retries_from = self.retries_from
        key = None
        if operation.idempotency_header:
            key = idempotency_key(self.rt.lineage, self.rt.plan.name, item_key)
        return CallRequest(
            operation=operation,
            params=render(spec.params, self.rt.variables, item),
            data_path=spec.data_path,
            paginator=paginator_for(spec.paginate) if spec.paginate else None,
            max_retries=retries_from.max_retries,
            retry_delay_ms=retries_from.retry_delay_ms,
            user=user,
            idempotency_key=key,
            # SPEC 5.5: asked before each item's call, and again before a mutation's retry.
            check=(lambda: self.pre_execute_records(item)) if spec.pre_execute else None,
        )

    @cached_property
    def operation(self) -> Operation:
        """The step's operation; built once, not once per forEach item."""
        operation = self.rt.catalog[self.spec.service].operations[self.spec.operation]
        return Operation(
            self.spec.operation,
            operation.method,
            operation.path,
            operation.mutation,
            operation.idempotency_header,
        )

    @cached_property
    def retries_from(self) -> Any:
        return retry_settings(self.spec)

    def shape(self, records: Iterable[dict[str, Any]], item: dict | None) -> list[dict[str, Any]]:
        return [self.shaper.shape(record, item) for record in records]

    def pre_execute_records(
        self, item: dict[str, Any] | None = None, stats: CallStats | None = None
    ) -> list[dict[str, Any]]:
        """SPEC 5.5: records from `preExecute` (for one item under forEach); when any, the
        main call (of that item) is skipped. As a check it runs on worker threads, so it
        counts into `stats` only when given one."""
        pre = self.spec.pre_execute
        assert pre is not None
        operation = self.rt.catalog[pre.service].operations[pre.operation]
        request = CallRequest(
            operation=Operation(
                pre.operation, operation.method, operation.path, operation.mutation
            ),
            params=render(pre.params, self.rt.variables, item),
            data_path=pre.data_path,
            paginator=None,
            max_retries=self.spec.max_retries,
            retry_delay_ms=self.spec.retry_delay_ms,
        )
        # As a check (forEach worker threads) its retries reach the step's log via `note`.
        stats = stats or CallStats(on_log=self.stats.note)
        pages = self.rt.service(pre.service).iter_pages(request, stats=stats)
        return [record for page in pages for record in page.records]

    def checkpoint(self) -> StepCheckpoint:
        rt = self.rt
        schema = rt.plan.output_schema if self.columns else None
        return StepCheckpoint.for_step(rt.table_store, rt.lineage, rt.plan.name, schema)

    def run(self) -> StepResult:
        try:
            result = self._run()
        except BaseException:
            self.stats.flush()  # lines the forEach loop noted before it stopped
            self.log_summary(failed=True)
            raise
        self.log_summary(failed=False)
        return result

    def _run(self) -> StepResult:
        metadata: dict[str, Any] = {}
        checkpoint = None
        schema = self.rt.plan.output_schema
        with self.rt.open_writer(schema) if self.columns else nullcontext() as writer:
            pre = (
                self.pre_execute_records(stats=self.stats)
                if self.spec.pre_execute and not self.spec.for_each
                else []
            )
            if pre:
                records = self.shape(pre, None)
                if writer is not None:
                    writer.write_records(records)
                metadata["records"] = len(records)
                metadata["preExecute"] = f"{len(pre)} record(s) found; main call skipped"
                self.rt.log.info(f"{self.rt.plan.name}: preExecute found records; skipping call")
            elif self.spec.for_each or self.spec.paginate:
                checkpoint = self.checkpoint()
                try:
                    metadata |= self.run_checkpointed(checkpoint, writer)
                finally:
                    checkpoint.close()
            else:
                metadata |= self.run_once(writer)
        if checkpoint is not None:
            checkpoint.remove()
        stats = self.stats
        # One name per figure: `pages` and `records` count the whole table, resumed parts
        # included (`resumed` says how many); `requests` and `retries` this attempt's.
        metadata.setdefault("pages", stats.pages)
        metadata |= {"requests": stats.requests, "retries": stats.retries}
        metadata["duration s"] = round(time.monotonic() - self.started, 3)
        return StepResult(writer.handle if writer is not None else None, metadata)

    def run_once(self, writer: Any) -> dict[str, Any]:
        records = 0
        for page in self.service.iter_pages(self.request(), stats=self.stats):
            rows = self.shape(page.records, None)
            records += len(rows)
            if writer is not None:
                writer.write_records(rows)
        return {"records": records}

    def run_checkpointed(self, checkpoint: StepCheckpoint, writer: Any) -> dict[str, Any]:
        resume = checkpoint.resume
        if resume.found:
            self.rt.log.info(
                f"{self.rt.plan.name}: resuming from a checkpoint: {resume.pages} pages, "
                f"{len(resume.done_keys)} items and {resume.records} records already done"
            )
        if self.spec.for_each:
            metadata = run_for_each(self, checkpoint)
        else:
            metadata = self.fetch_pages(checkpoint)
        checkpoint.write_into(writer)
        metadata["pages"] = checkpoint.pages
        metadata["records"] = checkpoint.records
        if resume.found:
            metadata["resumed"] = {
                "pages": resume.pages,
                "items": len(resume.done_keys),
                "records": resume.records,
            }
        return metadata

    def fetch_pages(self, checkpoint: StepCheckpoint) -> dict[str, Any]:
        resume = checkpoint.resume
        if not resume.complete:
            request = self.request()
            request.resume_from = resume.state
            for page in self.service.iter_pages(request, stats=self.stats):
                checkpoint.add_page(self.shape(page.records, None), page.checkpoint)
        return {}


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


def step_retry_policy(spec: ServiceCallStepSpec) -> dg.RetryPolicy | None:
    """The op's `RetryPolicy`: the step's `maxRetries` (at most STEP_RETRY_CAP), waiting
    (2^n - 1) x D before step retry n, D = `retryDelayMs` x 2^r (capped at 60 s) where r
    is the retries of one request: the backoff goes on from the request's last wait.

    Each attempt resumes from the checkpoint; `run_service_call` lets only failures that
    may pass reach the policy.
    """
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
    text = str(error)
    if not isinstance(error, ServiceCallError) or not _GAVE_UP.search(text):
        return False
    return not unguarded_mutation or bool(_NOT_TAKEN.search(text))


def run_service_call(spec: ServiceCallStepSpec, rt: StepRuntime) -> StepResult:
    """Runs the step; a failure no step retry can cure bypasses the op's `RetryPolicy`."""
    try:
        return ServiceCall(spec, rt).run()
    except Exception as error:
        operation = rt.catalog[spec.service].operations[spec.operation]
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
