"""Step checkpoints (SPEC 5.5): a paginated call keeps each finished page and a forEach
each finished item, so a retried or re-executed step resumes instead of starting over.

A checkpoint lives under `<table store>/<run lineage>/checkpoints/<step>/`, so the step
retry of a run and the re-execution of its failed steps (a new run with the same root)
find it. It is a sequence of parts: `part-000001.parquet` holds rows (cast to the step's
schema, like the final table) and `part-000001.json` says what they cover: the pagination
state after them, the keys of the forEach items they finish, and running totals. The JSON
is written last, by an atomic rename, so a part counts only once it is whole; a crash in
between leaves an orphan that the next part overwrites.

Parts are flushed every `part_rows` rows (or finished items), and at least every
`flush_seconds` while items finish, which bounds both memory and what a crash can lose.
A forEach whose operation is a `mutation` records every item as it finishes, as one line
of `items.jsonl` (a Parquet part per item would cost milliseconds each): a crash can then
repeat at most the calls that were in flight. When the step succeeds, its
table is assembled from the parts and the checkpoint is removed.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq

from resources.table_store import TableStoreResource, TableWriter

FLUSH_SECONDS = 10.0


def key_text(key: Any) -> str:
    """One stable text per item key, whatever its type (int, str, date, Decimal)."""
    return json.dumps(key, default=str, sort_keys=True)


@dataclass
class Resume:
    """What earlier attempts of this step in this run lineage finished."""

    parts: int = 0
    state: dict[str, Any] | None = None
    complete: bool = False
    done_keys: set[str] = field(default_factory=set)
    pages: int = 0
    records: int = 0

    @property
    def found(self) -> bool:
        """Whether an earlier attempt left anything to resume from."""
        return self.parts > 0 or bool(self.done_keys)


class ItemJournal:
    """Finished items, one JSON line each (key, rows, pages), appended as they finish.

    A line torn by a crash is cut off on load, so the next append starts on a clean line.
    Rows go through JSON (dates as ISO text, decimals as text) and are cast back to the
    step's schema when the table is assembled.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: Any = None

    def load(self, resume: Resume) -> None:
        if not self.path.exists():
            return
        good = 0
        with self.path.open("rb") as lines:
            for line in lines:
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    break  # a torn last line: that item did not finish
                resume.done_keys.add(entry["key"])
                resume.records += len(entry["rows"])
                resume.pages += entry["pages"]
                good += len(line)
        with self.path.open("r+b") as file:
            file.truncate(good)

    def append(self, key: str, rows: list[Mapping[str, Any]], pages: int) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab")
        entry = {"key": key, "rows": rows, "pages": pages}
        self._file.write(orjson.dumps(entry, default=str) + b"\n")
        self._file.flush()

    def rows(self) -> Iterable[Mapping[str, Any]]:
        self.close()
        if self.path.exists():
            with self.path.open("rb") as lines:
                for line in lines:
                    yield from orjson.loads(line)["rows"]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class StepCheckpoint:
    """The checkpoint of one step in one run lineage."""

    def __init__(
        self,
        folder: Path,
        schema: Mapping[str, str] | None,
        *,
        step_name: str,
        part_rows: int,
        flush_seconds: float = FLUSH_SECONDS,
        every_item: bool = False,
    ) -> None:
        self.folder = folder
        self.schema = dict(schema) if schema else None
        self.step_name = step_name
        self.part_rows = part_rows
        self.flush_seconds = flush_seconds
        self.journal = ItemJournal(folder / "items.jsonl") if every_item else None
        self.resume = self._load()
        self._parts = self.resume.parts
        self._records: list[Mapping[str, Any]] = []
        self._keys: list[str] = []
        self._state = self.resume.state
        self._complete = self.resume.complete
        self._pages = self.resume.pages
        self._total = self.resume.records
        self._flushed_at = time.monotonic()

    @classmethod
    def for_step(
        cls,
        store: TableStoreResource,
        lineage: str,
        step_name: str,
        schema: Mapping[str, str] | None,
        *,
        every_item: bool = False,
    ) -> StepCheckpoint:
        """`every_item`: record each item as soon as it finishes (for calls with side
        effects, so that a resumed step repeats none that finished)."""
        folder = store.root_path() / lineage / "checkpoints" / step_name
        return cls(
            folder, schema, step_name=step_name, part_rows=store.batch_rows, every_item=every_item
        )

    def _load(self) -> Resume:
        resume = Resume()
        for meta_path in sorted(self.folder.glob("part-*.json")):
            meta = json.loads(meta_path.read_text())
            resume.parts += 1
            resume.done_keys.update(meta["keys"])
            resume.state, resume.complete = meta["state"], meta["complete"]
            resume.pages, resume.records = meta["pages"], meta["records"]
        if self.journal is not None:
            self.journal.load(resume)
        return resume

    def add_page(self, records: Iterable[Mapping[str, Any]], state: dict[str, Any] | None) -> None:
        """A finished page; `state` resumes after it (None: it was the last page)."""
        self._records.extend(records)
        self._state, self._complete = state, state is None
        self._pages += 1
        if len(self._records) >= self.part_rows or self._complete:
            self.flush()

    def add_item(self, key: Any, records: Iterable[Mapping[str, Any]], pages: int) -> None:
        """A finished forEach item and the rows it produced."""
        if self.journal is not None:
            rows = list(records)
            self.journal.append(key_text(key), rows, pages)
            self._pages += pages
            self._total += len(rows)
            return
        self._records.extend(records)
        self._keys.append(key_text(key))
        self._pages += pages
        due = time.monotonic() - self._flushed_at >= self.flush_seconds
        if max(len(self._records), len(self._keys)) >= self.part_rows or due:
            self.flush()

    def flush(self) -> None:
        """Make what was added so far a part (a no-op when nothing was added)."""
        if not self._records and not self._keys and not self._complete:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self._parts += 1
        name = f"part-{self._parts:06d}"
        if self._records and self.schema:
            with TableWriter(
                self.folder / f"{name}.parquet", self.step_name, name, self.schema, self.part_rows
            ) as writer:
                writer.write_records(self._records)
        self._total += len(self._records)
        meta = {
            "keys": self._keys,
            "state": self._state,
            "complete": self._complete,
            "pages": self._pages,
            "records": self._total,
            "rows": len(self._records),
        }
        temp = self.folder / f".{name}.json.tmp"
        temp.write_text(json.dumps(meta))
        temp.replace(self.folder / f"{name}.json")
        self._records, self._keys = [], []
        self._flushed_at = time.monotonic()

    @property
    def pages(self) -> int:
        return self._pages

    @property
    def records(self) -> int:
        return self._total + len(self._records)

    def write_into(self, writer: TableWriter | None) -> None:
        """Flush, then copy every part (and the journal's rows) into the step's table."""
        self.flush()
        if writer is None:
            if self.journal is not None:
                self.journal.close()
            return
        for part in sorted(self.folder.glob("part-*.parquet")):
            if (part.with_suffix(".json")).exists():
                parquet = pq.ParquetFile(part)
                try:
                    writer.write_batches(parquet.iter_batches(batch_size=self.part_rows))
                finally:
                    parquet.close()
        if self.journal is not None:
            writer.write_records(self.journal.rows())

    def remove(self) -> None:
        """The step succeeded: nothing is left to resume."""
        if self.journal is not None:
            self.journal.close()
        shutil.rmtree(self.folder, ignore_errors=True)
