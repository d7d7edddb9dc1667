"""forEach: one call per row of an earlier table, inside one op, with bounded concurrency
(SPEC 5.2). Finished items go to the step's checkpoint (on the forEach loop's thread, see
`ServiceResource.for_each_into`) and are skipped on resume.

With `preExecute` (SPEC 5.5) each item asks it first: an item it finds records for is
finished with those records (through the fieldMapping, with that item) and not called.
That is what covers an item whose call took effect but was not journalled (a killed
process): its resumed or re-run attempt finds the effect instead of repeating it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Protocol

from resources.checkpoints import StepCheckpoint, key_text
from resources.service import CallRequest, CallStats, ItemOutcome, ServiceResource
from translators.spec import ServiceCallStepSpec
from translators.steps.runtime import StepRuntime

# How many skipped items the step's metadata lists (all are counted).
MAX_LISTED_SKIPS = 100


class _PendingItems:
    """The source rows not finished by an earlier attempt, each with its key.

    An item's key is its `itemKey` value, else its position in the source table (the
    table of a finished step is reused as is, so positions are stable across attempts).
    """

    def __init__(self, rows: Iterator[dict[str, Any]], item_key: str | None, done: set[str]):
        self.rows, self.item_key, self.done = rows, item_key, done
        self.keys: dict[int, Any] = {}  # id(item) -> key, while the item is in flight
        self.already_done = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for position, row in enumerate(self.rows):
            key = row.get(self.item_key) if self.item_key else position
            if key_text(key) in self.done:
                self.already_done += 1
                continue
            self.keys[id(row)] = key
            yield row

    def key_of(self, item: dict[str, Any]) -> Any:
        return self.keys.pop(id(item))

    def peek_key(self, item: dict[str, Any]) -> Any:
        """The key of an item in flight, for its request's idempotency key."""
        return self.keys[id(item)]


class ItemProgress:
    """The figures of a running forEach for its progress and summary lines.

    Read on the step's thread while the forEach loop's thread counts: each figure is one
    int, so a line may be a moment behind but never torn."""

    def __init__(self, total: int, pending: _PendingItems, counts: dict[str, int], skip: bool):
        self.total, self.pending, self.counts, self.skip = total, pending, counts, skip

    def describe(self, stats: CallStats) -> str:
        done = stats.items + self.pending.already_done
        calls = stats.requests / stats.duration_s if stats.duration_s else 0.0
        text = f"{done}/{self.total} items done, {stats.failed_items} failed"
        text += " (skipped)" if self.skip and stats.failed_items else ""
        text += f", {calls:.1f} calls/s, {stats.retries} retries"
        if self.pending.already_done:
            text += f", {self.pending.already_done} of them done before (resumed)"
        if self.counts["found"]:
            text += f", {self.counts['found']} found by preExecute"
        return text


class ItemCalls(Protocol):
    """What the forEach loop needs of the step's call (`service_call_run.ServiceCall`)."""

    spec: ServiceCallStepSpec
    rt: StepRuntime
    stats: CallStats
    service: ServiceResource
    item_progress: ItemProgress | None

    def shape(self, records: Any, item: dict[str, Any] | None) -> list[dict[str, Any]]: ...

    def request(self, item: dict[str, Any] | None = None, item_key: Any = None) -> CallRequest: ...


def run_for_each(call: ItemCalls, checkpoint: StepCheckpoint) -> dict[str, Any]:
    for_each = call.spec.for_each
    assert for_each is not None
    rt = call.rt
    source = rt.table(for_each.source)
    pending = _PendingItems(
        rt.table_store.iter_rows(source), for_each.item_key, checkpoint.resume.done_keys
    )
    rate = for_each.rate_limit.per_second if for_each.rate_limit else None
    counts = {"done": 0, "skipped": 0, "found": 0}
    skips: list[dict[str, Any]] = []
    skip = for_each.on_item_error == "skip"
    call.item_progress = ItemProgress(source.row_count, pending, counts, skip)

    def handle(outcome: ItemOutcome) -> None:
        """One finished item, on the forEach loop's thread (see `for_each_into`)."""
        key = pending.key_of(outcome.item)
        if outcome.error is not None:
            # A skipped item is not finished: a later attempt tries it again.
            counts["skipped"] += 1
            if len(skips) < MAX_LISTED_SKIPS:
                skips.append({"key": key, "error": outcome.error})
            # Not `rt.log`: this is the loop's thread; the step's thread logs it.
            call.stats.note(logging.WARNING, f"item {key!r} skipped: {outcome.error}")
            return
        counts["done"] += 1
        counts["found"] += outcome.found
        checkpoint.add_item(key, call.shape(outcome.records or [], outcome.item), outcome.pages)

    call.service.for_each_into(
        pending,
        lambda item: call.request(item, pending.peek_key(item)),
        handle,
        parallel=for_each.parallel,
        on_item_error=for_each.on_item_error,
        item_key=for_each.item_key,
        rate_limit_per_second=rate,
        stats=call.stats,
    )
    return {
        "items done": counts["done"],
        "items skipped": counts["skipped"],
        "items found by preExecute": counts["found"],
        "items done before": pending.already_done,
        "skipped items": skips,
    }
