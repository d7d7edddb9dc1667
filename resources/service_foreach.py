"""forEach (SPEC 5.2): one call per item, at most `parallel` in flight.

Internal to `resources.service` (`ServiceResource.for_each`). The caller is a plain
synchronous op, so the asyncio loop runs in a thread of its own and hands finished items
to the caller through a queue: the caller consumes lazily, and closing the generator
(or the first failure with `fail_fast`) cancels the work in flight before control
returns. Memory stays flat: a worker takes a credit before it pulls an item, and the
caller hands one back for each outcome it takes, so at most `2 * parallel` items are in
flight or waiting at any time, however long the input.

With a `handle` function (`ServiceResource.for_each_into`) each outcome is handled on the
loop's thread as it finishes, and nothing is queued: the caller's work per item (shaping,
the checkpoint journal) then never competes with the loop for the GIL. With two threads,
each socket call of the loop handed the GIL to the caller, which kept it for up to the
switch interval (5 ms): that convoy, not the HTTP client, bounded a forEach at parallel
50. A failed item under `fail_fast` still reaches the caller, which raises it.

An item whose request has a `check` (the step's preExecute, SPEC 5.5) asks it first, on a
thread (it makes blocking calls): records it finds are the item's output and its call is
not sent. That makes a mutation per item exactly-once across retries and re-runs.

Log lines of the loop's thread (a retry, a skipped item) go through `CallStats.note`:
the caller's thread writes them to the step's log while it waits (every `_POLL_S`),
as Dagster's `context.log` is not meant to be called from another thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import queue
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any

import aiohttp

from resources.secrets import redact
from resources.service_errors import ServiceCallError
from resources.service_http import PageLoop, Session
from resources.service_request import CallRequest, CallStats, ItemOutcome
from resources.service_transport import new_client, new_event_loop, send

_DONE = object()
_POLL_S = 0.25  # how often the caller wakes to report progress while nothing finishes


class _FailFast(Exception):
    """Raised by a worker whose item failed under `fail_fast`: stops the task group."""


class ForEachRun:
    """One forEach: the worker tasks, the hand-over queue and the cancellation."""

    def __init__(
        self,
        *,
        session: Session,
        build_request: Callable[[dict[str, Any]], CallRequest],
        parallel: int,
        fail_fast: bool,
        item_key: str | None,
        stats: CallStats,
        handle: Callable[[ItemOutcome], None] | None = None,
    ) -> None:
        self.session = session
        self.handle = handle
        self._handler_failed = False
        self.build_request = build_request
        self.parallel = parallel
        self.fail_fast = fail_fast
        self.item_key = item_key
        self.stats = stats
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._credits: asyncio.Semaphore | None = None

    def outcomes(self, items: Iterable[dict[str, Any]]) -> Generator[ItemOutcome, None, None]:
        """The outcomes in completion order; the thread starts at the first `next()`.

        `items` is iterated on the loop's thread, one item whenever a worker is free.
        """
        thread = threading.Thread(
            target=self._thread_main,
            args=(enumerate(items),),
            name=f"forEach-{self.session.service}",
            daemon=True,
        )
        self.stats.start()
        with _older_objects_frozen():
            thread.start()
            try:
                yield from self._drain()
            finally:
                self._stop()
                thread.join()
                self.stats.finish()

    def _drain(self) -> Iterator[ItemOutcome]:
        while True:
            try:
                message = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                self.stats.tick()
                continue
            if message is _DONE:
                return
            if isinstance(message, BaseException):
                raise message
            assert isinstance(message, ItemOutcome)
            if self.handle is None:
                self._give_credit()
            self.stats.tick()
            if message.error is not None and self.fail_fast:
                raise ServiceCallError(message.error)
            yield message

    def _stop(self) -> None:
        with self._lock:
            self._stopping = True
            loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop has finished already
                loop.call_soon_threadsafe(task.cancel)

    def _give_credit(self) -> None:
        loop, credits = self._loop, self._credits
        if loop is not None and credits is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(credits.release)

    def _thread_main(self, items: Iterator[tuple[int, dict[str, Any]]]) -> None:
        try:
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                runner.run(self._main(items))
        except BaseException as exc:  # handed to the caller's thread, which raises it
            self._queue.put(_single(exc))
        finally:
            self._queue.put(_DONE)

    async def _main(self, items: Iterator[tuple[int, dict[str, Any]]]) -> None:
        with self._lock:
            if self._stopping:
                return
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
        self._credits = asyncio.Semaphore(2 * self.parallel)
        async with new_client(self.session, self.parallel) as client:
            try:
                async with asyncio.TaskGroup() as group:
                    for _ in range(self.parallel):
                        group.create_task(self._worker(client, items))
            except* _FailFast:
                pass  # the failed outcome is queued already; the caller raises it

    async def _worker(
        self, client: aiohttp.ClientSession, items: Iterator[tuple[int, dict[str, Any]]]
    ) -> None:
        assert self._credits is not None
        credits = self._credits if self.handle is None else None  # nothing waits in the queue
        while True:
            if credits is not None:
                await credits.acquire()
            entry = next(items, None)
            if entry is None:
                if credits is not None:
                    credits.release()
                return
            outcome = await self._run_item(client, *entry)
            failed = outcome.error is not None and self.fail_fast
            if self.handle is not None and not failed:
                if self._handler_failed:
                    return  # the forEach is stopping: no outcome is handled after it failed
                try:
                    self.handle(outcome)
                except BaseException:  # stops the forEach; the caller raises it
                    self._handler_failed = True
                    raise
            else:
                self._queue.put(outcome)
            if failed:
                raise _FailFast

    async def _run_item(
        self, client: aiohttp.ClientSession, index: int, item: dict[str, Any]
    ) -> ItemOutcome:
        key = item.get(self.item_key) if self.item_key else index
        label = f"item {self.item_key}={key!r}" if self.item_key else f"item #{index}"
        records: list[dict[str, Any]] = []
        pages = 0
        try:
            request = self.build_request(item)
            if request.check is not None:
                found = await asyncio.to_thread(request.check)
                if found:
                    self.stats.items += 1
                    return ItemOutcome(item, found, None, 0, key, found=True)
            loop = PageLoop(self.session, request, item_label=label, stats=self.stats)
            while loop.pending is not None:
                page = loop.handle(await send(client, loop, self.stats))
                records.extend(page.records)
                pages += 1
                self.stats.pages += 1
                self.stats.records += len(page.records)
        except Exception as exc:  # this item's failure only; the others go on
            text = str(exc) if isinstance(exc, ServiceCallError) else f"{type(exc).__name__}: {exc}"
            self.stats.failed_items += 1
            error = text if label in text else f"{label}: {text}"
            return ItemOutcome(item, None, redact(error), pages, key)
        self.stats.items += 1
        return ItemOutcome(item, records, None, pages, key)


@contextlib.contextmanager
def _older_objects_frozen() -> Iterator[None]:
    """Keep the objects alive before the forEach (Dagster, the code location, the run: a
    heap of ~200 MB) out of the collections that its allocations trigger: each full one
    walked them all again, ~3% of a 10,000-item forEach (issue 8 P2). Unfrozen after, so
    nothing stays out of the collector's reach; steps running beside this one lose
    nothing but the speed-up when it ends first."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _single(exc: BaseException) -> BaseException:
    """The one exception inside (nested) single-member exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
