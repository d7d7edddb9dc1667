"""The run of one serviceCall step (the kind is `service_call.KIND`): one call, paginated
calls, or one call per row with forEach (SPEC 3.1, 5.1-5.3, 5.5). Pages and items are
written to the table store as they arrive.

A paginated or forEach step keeps a checkpoint (`resources.checkpoints`) while it runs,
so a step retry or a re-execution from failure resumes after the last finished page or
skips the finished items; nothing finished is fetched, posted or written twice.

Everything the catalog says (the operations, the paginator, where retries come from) was
resolved when the job was built: `service_call.bind` gives the `BoundCall` this runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from resources.checkpoints import StepCheckpoint
from resources.paginators import Paginator
from resources.records import RecordShaper
from resources.service import CallRequest, CallStats, Operation, idempotency_key
from translators.spec import FieldMapping, GenerateSpec, ServiceCallStepSpec
from translators.steps.for_each import ItemProgress, run_for_each
from translators.steps.runtime import StepResult, StepRuntime
from translators.templates import render


@dataclass(frozen=True)
class BoundCall:
    """A serviceCall step as bound when its job is built (`service_call.bind`)."""

    spec: ServiceCallStepSpec
    operation: Operation
    pre_operation: Operation | None  # preExecute's operation (no idempotency key of its own)
    paginator: Paginator | None  # a prototype: each call paginates a fresh copy
    retries_from: Any  # the level whose maxRetries / retryDelayMs a request uses (SPEC 5.5)


def mapping_dict(mapping: FieldMapping | None) -> dict[str, Any] | None:
    """The plain form `resources.records` takes: generators as `{"generate": kind}`."""
    if mapping is None:
        return None
    return {
        column: source.model_dump() if isinstance(source, GenerateSpec) else source
        for column, source in mapping.items()
    }


class ServiceCall:
    """One run of one serviceCall step."""

    def __init__(self, bound: BoundCall, rt: StepRuntime, progress_interval_s: float) -> None:
        self.bound = bound
        self.spec = spec = bound.spec
        self.rt = rt
        self.operation = bound.operation
        self.columns = list((rt.plan.output_schema or {}).keys())
        self.shaper = RecordShaper(self.columns, mapping_dict(spec.field_mapping))
        self.started = time.monotonic()
        self.stats = CallStats(
            on_progress=self.log_progress,
            progress_interval_s=progress_interval_s,
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
        retries_from = self.bound.retries_from
        key = None
        if operation.idempotency_header:
            key = idempotency_key(self.rt.lineage, self.rt.plan.name, item_key)
        return CallRequest(
            operation=operation,
            params=render(spec.params, self.rt.variables, item),
            data_path=spec.data_path,
            # The paginator bound with the job; the client takes a fresh copy per call.
            paginator=self.bound.paginator,
            max_retries=retries_from.max_retries,
            retry_delay_ms=retries_from.retry_delay_ms,
            user=user,
            idempotency_key=key,
            # SPEC 5.5: asked before each item's call, and again before a mutation's retry.
            check=(lambda: self.pre_execute_records(item)) if spec.pre_execute else None,
        )

    def shape(self, records: Iterable[dict[str, Any]], item: dict | None) -> list[dict[str, Any]]:
        return [self.shaper.shape(record, item) for record in records]

    def pre_execute_records(
        self, item: dict[str, Any] | None = None, stats: CallStats | None = None
    ) -> list[dict[str, Any]]:
        """SPEC 5.5: records from `preExecute` (for one item under forEach); when any, the
        main call (of that item) is skipped. As a check it runs on worker threads, so it
        counts into `stats` only when given one."""
        pre = self.spec.pre_execute
        assert pre is not None and self.bound.pre_operation is not None
        request = CallRequest(
            operation=self.bound.pre_operation,
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
            # Casting and compacting the journalled pages wait for the next request to
            # leave: they overlap the server's work on it (issue 8 P1).
            pages = self.service.iter_pages(
                request, stats=self.stats, while_waiting=checkpoint.catch_up
            )
            for page in pages:
                checkpoint.add_page(self.shape(page.records, None), page.checkpoint, defer=True)
        return {}
