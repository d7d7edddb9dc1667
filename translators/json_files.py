"""Reading one definition file: JSON text -> a document, or the problem why there is none.

Also the problem for a check that failed unexpectedly, so that it stays a problem of the
file being checked instead of stopping the whole load.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from resources.secrets import redact
from translators.errors import Problem, escape_token

# Real definitions nest a few levels; deeper ones are refused before parsing (see read_json).
MAX_NESTING_DEPTH = 64
# A definition file is hand-written JSON of a few kB; a larger one is a mistake or an
# attack, and every process that loads the code location would pay for it.
MAX_FILE_BYTES = 1024 * 1024
_BRACKETS_AND_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_NO_VALUE = object()


# A top-level "$schema": "<path or URL>" tells editors which JSON Schema a file follows
# (docs/editor.md); it is the one key a definition file may carry beyond the SPEC's.
SCHEMA_KEY = "$schema"


def read_json(path: Path, file: str) -> tuple[Any, Problem | None]:
    """The parsed document, or a problem saying why there is none."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            message = f"the file has {size:,} bytes"
            return _NO_VALUE, Problem(file, "", message, f"at most {MAX_FILE_BYTES:,} bytes")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return _NO_VALUE, Problem(file, "", f"the file is not UTF-8 text ({exc.reason})")
    except OSError as exc:
        return _NO_VALUE, Problem(file, "", f"cannot read the file: {exc.strerror or exc}")
    # Checked before parsing: deeper documents break Python's recursion limit, in the
    # JSON parser and in every check that walks the document.
    deep = _too_deep(text)
    if deep is not None:
        message = (
            f"nested deeper than {MAX_NESTING_DEPTH} levels (at line {deep[0]}, column {deep[1]})"
        )
        return _NO_VALUE, Problem(
            file, "", message, f"at most {MAX_NESTING_DEPTH} nested arrays/objects"
        )
    try:
        raw = json.loads(text, object_pairs_hook=_JsonObject.from_pairs)
    except json.JSONDecodeError as exc:
        message = f"invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        return _NO_VALUE, Problem(file, "", message, "a JSON document")
    except ValueError as exc:  # an integer longer than Python converts
        digits = re.search(r"value has (\d+) digits", str(exc))
        found = f"a number with {digits.group(1)} digits" if digits else str(exc)
        limit = f"numbers of at most {sys.get_int_max_str_digits()} digits"
        return _NO_VALUE, Problem(file, "", f"invalid JSON value: {found}", limit)
    problem = _surrogate_problem(raw, file) or _duplicate_key_problem(raw, file)
    if not problem and isinstance(raw, dict) and isinstance(raw.get(SCHEMA_KEY), str):
        del raw[SCHEMA_KEY]  # an editor's pointer to `workflows schema` output, not content
    return (_NO_VALUE if problem else raw), problem


class _JsonObject(dict[str, Any]):
    """A parsed JSON object that remembers keys it saw more than once.

    Python's parser keeps the last value of a repeated key silently; in a definition
    that hides an edit (two `sql` keys, and the first one is the one you read).
    """

    duplicates: tuple[str, ...] = ()

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, Any]]) -> _JsonObject:
        obj = cls(pairs)
        if len(obj) != len(pairs):
            keys = [key for key, _ in pairs]
            obj.duplicates = tuple(k for i, k in enumerate(keys) if k in keys[:i])
        return obj


def _duplicate_key_problem(raw: Any, file: str, pointer: str = "") -> Problem | None:
    """The first object (depth first) that repeats a key, as a problem at its pointer."""
    if isinstance(raw, _JsonObject) and raw.duplicates:
        key = raw.duplicates[0]
        return Problem(
            file, pointer, f"the key '{key}' appears more than once", "each key once per object"
        )
    if isinstance(raw, dict):
        children: Any = raw.items()
    else:
        children = enumerate(raw) if isinstance(raw, list) else ()
    for key, value in children:
        problem = _duplicate_key_problem(value, file, f"{pointer}/{escape_token(key)}")
        if problem:
            return problem
    return None


def _too_deep(text: str) -> tuple[int, int] | None:
    """(line, column) of the first bracket beyond `MAX_NESTING_DEPTH`, else None."""
    depth = 0
    for match in _BRACKETS_AND_STRINGS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_NESTING_DEPTH:
                start = match.start()
                return text.count("\n", 0, start) + 1, start - text.rfind("\n", 0, start)
        elif token in ("]", "}"):
            depth -= 1
    return None


def _surrogate_problem(raw: Any, file: str) -> Problem | None:
    """A `\\udXXX` escape without its pair is not text: DuckDB and printing refuse it."""
    try:
        json.dumps(raw, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        found = repr(exc.object[exc.start : exc.end])
        message = f"a string holds a lone UTF-16 surrogate ({found}), which is not text"
        return Problem(file, "", message, "\\u escapes that form whole characters")
    return None


def unchecked(file: str, exc: Exception) -> Problem:
    """A failure of the checker itself, kept to the file being checked."""
    detail = redact(str(exc)) or "no message"
    return Problem(
        file,
        "",
        f"the file could not be checked ({type(exc).__name__}: {detail})",
        "a file the checks can read; please report this error",
    )
