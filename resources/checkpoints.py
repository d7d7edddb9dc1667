"""Step checkpoints (SPEC 5.5): a paginated call keeps each finished page and a forEach
each finished item, so a retried or re-executed step resumes instead of starting over.

A checkpoint lives under `<table store>/<run lineage>/checkpoints/<step>/`, so the step
retry of a run and the re-execution of its failed steps (a new run with the same root)
find it. Two kinds of files:

- `journal.jsonl`: every finished page (its rows and the pagination state after it) or
  item (its key, rows and page count) as one JSON line, written and flushed before the
  next request is sent, whatever the page size. This is what makes "nothing finished is
  fetched twice" hold when a step fails, is retried, or its process is killed.
- parts: every `part_rows` rows (or finished items) the journal is compacted into
  `part-000001.parquet` (rows cast to the step's schema, like the final table) and
  `part-000001.json` (the pagination state, item keys, running totals and `seq`, the
  number of the last journal entry the part covers); then the journal starts empty.
  The JSON is written last, by an atomic rename, so a part counts only once it is whole.

Every entry carries `seq`, a running number: on load, entries a part already covers (a
crash between the part and the journal's reset) are ignored, and a line torn by a crash
is cut off. The rows of the journal are kept in memory too (at most `part_rows`), so a
compaction never reads the journal back. A paginated step casts them page by page while
the next request is on its way (`add_page(defer=True)`, then `catch_up`), so casting and
compacting overlap the server's work instead of adding to it. When the step succeeds
its table is assembled from the parts and the checkpoint is removed.

The journal is flushed to the operating system, not fsynced: it survives a killed
process; a machine that loses its disk cache loses at most the last pages, which the
resumed step fetches again (the journal is the only record of them, so nothing is written
twice).

On object storage (`TABLE_STORE_ROOT=s3://...`) nothing can be appended to, so the
journal is one object per entry, `journal-<seq>.json` (a PUT is atomic: no torn entry),
deleted when a part covers it; parts and their JSON are objects too. A re-execution on
another machine finds the checkpoint there.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from resources.object_store import Place
from resources.table_store import TableStoreResource, TableWriter
from resources.table_writer import cast_records, declared_types

JOURNAL = "journal.jsonl"
ENTRY_PREFIX = "journal-"  # one object per entry on object storage


def key_text(key: Any) -> str:
    """One stable text per item key, whatever its type (int, str, date, Decimal)."""
    if type(key) is int:
        return str(key)  # what json.dumps gives, without its machinery (once per item)
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
    seq: int = 0

    @property
    def found(self) -> bool:
        """Whether an earlier attempt left anything to resume from."""
        return self.seq > 0 or self.parts > 0 or bool(self.done_keys)


class Journal:
    """Finished pages or items since the last part, one JSON line each, flushed at once.

    Rows go through JSON (dates as ISO text, decimals as text) and are cast back to the
    step's schema when they become a part.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: Any = None

    def load(self, after_seq: int) -> list[dict[str, Any]]:
        """The entries after `after_seq`, in order; a torn last line is cut off."""
        if not self.path.exists():
            return []
        entries, good = [], 0
        with self.path.open("rb") as lines:
            for line in lines:
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    break  # a torn last line: that page or item did not finish
                good += len(line)
                if entry["seq"] > after_seq:
                    entries.append(entry)
        with self.path.open("r+b") as file:
            file.truncate(good)
        return entries

    def append(self, entry: Mapping[str, Any]) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Unbuffered: each entry is one write(2), in the OS when this returns.
            self._file = self.path.open("ab", buffering=0)
        self._file.write(orjson.dumps(entry, default=str) + b"\n")

    def reset(self) -> None:
        """Start empty: a part now holds everything the journal had."""
        self.close()
        if self.path.exists():
            self.path.open("wb").close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class ObjectJournal:
    """The journal on object storage: one object per entry, named by its `seq`."""

    def __init__(self, folder: Place) -> None:
        self.folder = folder

    def load(self, after_seq: int) -> list[dict[str, Any]]:
        """The entries after `after_seq`, in order (older ones a part already holds)."""
        entries = []
        for place in self.folder.files(ENTRY_PREFIX, ".json"):
            if _entry_seq(place) > after_seq:
                entries.append(orjson.loads(place.read_bytes()))
        return entries

    def append(self, entry: Mapping[str, Any]) -> None:
        name = f"{ENTRY_PREFIX}{entry['seq']:012d}.json"
        self.folder.child(name).write_bytes(orjson.dumps(entry, default=str))

    def reset(self) -> None:
        """Delete the entries: a part now holds everything they had."""
        for place in self.folder.files(ENTRY_PREFIX, ".json"):
            place.delete()

    def close(self) -> None:
        """Nothing stays open between entries."""


def _entry_seq(place: Place) -> int:
    return int(place.name[len(ENTRY_PREFIX) : -len(".json")])


class StepCheckpoint:
    """The checkpoint of one step in one run lineage (a local folder or a bucket prefix)."""

    def __init__(
        self,
        folder: Path | Place,
        schema: Mapping[str, str] | None,
        *,
        step_name: str,
        part_rows: int,
    ) -> None:
        self.folder = folder
        self.place = folder if isinstance(folder, Place) else Place.local(folder)
        self.schema = dict(schema) if schema else None
        self.step_name = step_name
        self.part_rows = part_rows
        self.journal: Journal | ObjectJournal = (
            ObjectJournal(self.place)
            if self.place.remote
            else Journal(Path(self.place.path) / JOURNAL)
        )
        self._rows: list[Mapping[str, Any]] = []  # not yet cast, when kept
        self._cast: list[pa.Table] = []  # cast since the last part (`catch_up`)
        self._cast_rows = 0
        self._buffered = 0  # rows since the last part
        self._types: dict[str, str] = {}
        self._arrow: pa.Schema | None = None
        if schema:
            self._types, self._arrow = declared_types(schema)
        self._keys: list[str] = []
        self.resume = Resume()
        self._load_parts()
        self._parts, self._part_seq = self.resume.parts, self.resume.seq
        self._total = self.resume.records
        self._replay(self.journal.load(self.resume.seq))
        self._seq = self.resume.seq
        self._state, self._complete = self.resume.state, self.resume.complete
        self._pages = self.resume.pages

    @classmethod
    def for_step(
        cls,
        store: TableStoreResource,
        lineage: str,
        step_name: str,
        schema: Mapping[str, str] | None,
    ) -> StepCheckpoint:
        place = store.place().child(lineage, "checkpoints", step_name)
        folder = place if place.remote else Path(place.path)
        return cls(folder, schema, step_name=step_name, part_rows=store.batch_rows)

    def _load_parts(self) -> None:
        resume = self.resume
        for meta_place in self.place.files("part-", ".json"):
            meta = json.loads(meta_place.read_bytes())
            resume.parts += 1
            resume.done_keys.update(meta["keys"])
            resume.state, resume.complete = meta["state"], meta["complete"]
            resume.pages, resume.records = meta["pages"], meta["records"]
            resume.seq = meta.get("seq", resume.seq)

    def _replay(self, entries: list[dict[str, Any]]) -> None:
        """Journal entries after the last part: done, and buffered for the next part."""
        resume = self.resume
        for entry in entries:
            rows = entry["rows"]
            resume.seq = entry["seq"]
            resume.records += len(rows)
            resume.pages += entry.get("pages", 1)
            if "key" in entry:
                resume.done_keys.add(entry["key"])
                self._keys.append(entry["key"])
            else:
                resume.state, resume.complete = entry["state"], entry["state"] is None
            self._keep(rows, len(rows))

    def _keep(self, rows: list[Mapping[str, Any]], count: int) -> None:
        if self.schema:
            self._rows.extend(rows)
        self._buffered += count

    def add_page(
        self,
        records: Iterable[Mapping[str, Any]],
        state: dict[str, Any] | None,
        *,
        defer: bool = False,
    ) -> None:
        """A finished page; `state` resumes after it (None: it was the last page).

        Journalled before this returns, so before the next page is requested. With
        `defer`, casting and compacting wait for `catch_up`, which the page loop calls
        while the next page is on its way (`ServiceResource.iter_pages(while_waiting=)`)."""
        rows = records if isinstance(records, list) else list(records)
        self._seq += 1
        kept = rows if self.schema else []
        self.journal.append({"seq": self._seq, "state": state, "rows": kept})
        self._state, self._complete = state, state is None
        self._pages += 1
        self._keep(kept, len(rows))
        if not defer and self._buffered >= self.part_rows:
            self.flush()  # casts the part's rows in one go

    def catch_up(self) -> None:
        """Cast the rows added since the last call; a part once `part_rows` have gathered.

        The journal holds those rows already: this is bookkeeping, free to run later."""
        self._cast_kept()
        if self._buffered >= self.part_rows:
            self.flush()

    def _cast_kept(self) -> None:
        if self._rows and self._arrow is not None:
            first = self._total + self._cast_rows  # rows are named from the table's start
            table = cast_records(self._rows, self._types, self._arrow, self.step_name, first)
            self._cast.append(table)
            self._cast_rows += table.num_rows
        self._rows = []

    def add_item(self, key: Any, records: Iterable[Mapping[str, Any]], pages: int) -> None:
        """A finished forEach item and the rows it produced, journalled at once."""
        rows = records if isinstance(records, list) else list(records)
        kept = rows if self.schema else []
        self._seq += 1
        text = key_text(key)
        self.journal.append({"seq": self._seq, "key": text, "rows": kept, "pages": pages})
        self._keys.append(text)
        self._pages += pages
        self._keep(kept, len(rows))
        if max(self._buffered, len(self._keys)) >= self.part_rows:
            self.flush()

    def flush(self) -> None:
        """Compact what was added since the last part into a part (no-op when nothing was)."""
        if self._seq == self._part_seq:
            return
        self.place.ensure_folder()
        self._parts += 1
        name = f"part-{self._parts:06d}"
        self._cast_kept()
        if self._cast:
            with TableWriter(
                self.place.child(f"{name}.parquet"),
                self.step_name,
                name,
                self.schema,
                self.part_rows,
            ) as writer:
                writer.write_batches(batch for t in self._cast for batch in t.to_batches())
        self._total += self._buffered
        meta = {
            "keys": self._keys,
            "state": self._state,
            "complete": self._complete,
            "pages": self._pages,
            "records": self._total,
            "rows": self._buffered,
            "seq": self._seq,
        }
        # Written last and at once: the part counts only when this file exists.
        self.place.child(f"{name}.json").write_bytes(json.dumps(meta).encode())
        self.journal.reset()
        self._cast, self._cast_rows, self._keys, self._buffered = [], 0, [], 0
        self._part_seq = self._seq

    @property
    def pages(self) -> int:
        return self._pages

    @property
    def records(self) -> int:
        return self._total + self._buffered

    def write_into(self, writer: TableWriter | None) -> None:
        """Flush, then copy every part into the step's table."""
        self.flush()
        self.journal.close()
        if writer is None:
            return
        for part in self.place.files("part-", ".parquet"):
            if part.sibling(part.name.removesuffix(".parquet") + ".json").exists():
                self._copy_part(part, writer)

    def _copy_part(self, part: Place, writer: TableWriter) -> None:
        with part.filesystem.open_input_file(part.path) as source:
            parquet = pq.ParquetFile(source, pre_buffer=False)
            try:
                writer.write_batches(parquet.iter_batches(batch_size=self.part_rows))
            finally:
                parquet.close()

    def close(self) -> None:
        """The step stops (it failed): what it finished is on disk already."""
        self.journal.close()

    def remove(self) -> None:
        """The step succeeded: nothing is left to resume."""
        self.journal.close()
        if self.place.remote:
            self.place.delete_tree()
        else:
            shutil.rmtree(self.place.path, ignore_errors=True)
