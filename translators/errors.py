"""The one error type for bad definitions, and helpers that say where and what was expected.

A problem reads `<file>#<JSON pointer>: <what is wrong>; expected <...>`, with the file
relative to the definitions folder (`apps/shop/workflows/sync.json#/steps/2/sql: ...`).
Definition files hold only the NAMES of environment variables, never secrets, so a
problem may quote the values it found.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a definition file."""

    file: str
    pointer: str
    message: str
    expected: str | None = None

    def __str__(self) -> str:
        text = f"{self.file}#{self.pointer}: {self.message}"
        if self.expected:
            text += f"; expected {self.expected}"
        return text


class DefinitionError(Exception):
    """Raised when definitions cannot be used; holds every problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


def escape_token(token: str | int) -> str:
    """One reference token of a JSON pointer (RFC 6901: `~` -> `~0`, `/` -> `~1`)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def join_pointer(base: str, *tokens: str | int) -> str:
    """`join_pointer("/steps/0", "params", "a/b")` -> `/steps/0/params/a~1b`."""
    return base + "".join("/" + escape_token(token) for token in tokens)


def pointer_order(pointer: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key that puts `/steps/2` before `/steps/10`."""
    return tuple((0, int(t)) if t.isdigit() else (1, t) for t in pointer.split("/")[1:])


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when a candidate is close to `word`, else an empty string.

    Case-insensitive first (`orderid` -> `orderId`), then difflib's close matches.
    """
    options = [c for c in candidates if c != word]
    folded = [c for c in options if c.lower() == word.lower()]
    matches = folded or difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def one_of(candidates: Iterable[str], word: str | None = None, limit: int = 12) -> str:
    """`one of 'a', 'b', 'c'`, plus a did-you-mean for `word`; `nothing` when empty."""
    names = sorted(set(candidates))
    if not names:
        return "nothing (none is defined)"
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    if len(names) > limit:
        shown += f", ... ({len(names) - limit} more)"
    hint = did_you_mean(word, names) if word is not None else ""
    return f"one of {shown}{hint}"


def short_repr(value: Any, limit: int = 60) -> str:
    """A value as quoted in a message, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
