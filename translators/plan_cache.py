"""Checked workflow files, kept by content, so an unchanged file is not checked again.

Checking a workflow file is mostly SQL work (sqlglot parses every query twice, DuckDB
binds it over empty tables): ~30 ms a file, 15 s for 500 files, paid by every reload of
the code location, every `workflows run` and every step process. The result of checking
one file (its plan, or its problems) depends only on bytes: the file itself, its path
(names and messages quote it), its app's app.json, the service catalog, and the code
and library versions that check it. A hash of all of those names a cache entry, so a
changed byte anywhere that matters is a miss, and a broken file's problems come back
from the cache exactly as they were found.

Entries are pickles under `$WORKFLOWS_DATA_DIR/cache/plans/` (`WORKFLOWS_PLAN_CACHE_DIR`
overrides the folder, `WORKFLOWS_PLAN_CACHE=off` switches the cache off). A pickle runs
code when read, so that folder must be as trusted as the code itself; it is written
atomically (temporary file, then rename), so concurrent loads never read half an entry.
An entry that cannot be read is a miss.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from resources.paths import data_dir

CACHE_ENV = "WORKFLOWS_PLAN_CACHE"
CACHE_DIR_ENV = "WORKFLOWS_PLAN_CACHE_DIR"
_CHECKING_LIBRARIES = ("sqlglot", "duckdb", "pydantic")
log = logging.getLogger("workflows")


@cache
def code_version() -> str:
    """A hash of the checking code (this package's sources) and the libraries it uses."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for source in sorted(package.rglob("*.py")):
        digest.update(source.relative_to(package).as_posix().encode())
        digest.update(source.read_bytes())
    for name in _CHECKING_LIBRARIES:
        digest.update(f"{name}=={metadata.version(name)}".encode())
    return digest.hexdigest()


def cache_dir() -> Path | None:
    """Where entries live; None when the cache is switched off."""
    if os.environ.get(CACHE_ENV, "").strip().lower() in ("0", "off", "false", "no"):
        return None
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured) if configured else data_dir() / "cache" / "plans"


def _files_digest(paths: list[Path], root: Path) -> bytes:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.digest()


class PlanCache:
    """The entries of one load: `key` names a file's result, `get`/`put` read/write it."""

    def __init__(self, root: Path, folder: Path | None) -> None:
        self._folder = folder
        # Every workflow may call any service: the catalog is part of every key.
        self._shared = code_version().encode() + _files_digest(
            sorted((root / "services").glob("*.json")), root
        )
        self.hits = 0
        self.misses = 0

    @classmethod
    def for_folder(cls, root: Path) -> PlanCache:
        return cls(root, cache_dir())

    def key(self, rel_path: str, content: bytes, app_context: bytes) -> str:
        digest = hashlib.sha256(self._shared)
        for part in (rel_path.encode(), app_context, content):
            digest.update(len(part).to_bytes(8, "big") + part)
        return digest.hexdigest()

    def get(self, key: str) -> Any | None:
        if self._folder is None:
            return None
        try:
            with open(self._folder / f"{key}.pickle", "rb") as entry:
                value = pickle.load(entry)
        except FileNotFoundError:
            value = None
        except Exception as error:  # a damaged entry is checked again and rewritten
            log.warning("plan cache entry %s unreadable (%s); checking the file again", key, error)
            value = None
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, key: str, value: Any) -> None:
        if self._folder is None:
            return
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                dir=self._folder, prefix=f".{key}.", delete=False
            ) as tmp:
                pickle.dump(value, tmp, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp.name, self._folder / f"{key}.pickle")
        except Exception as error:  # a read-only or full disk only costs speed
            log.warning("plan cache not written (%s)", error)
