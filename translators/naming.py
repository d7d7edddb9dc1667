"""Dagster names for jobs, schedules and ops (SPEC 1, 3).

Dagster names allow only `[A-Za-z0-9_]` and refuse a few reserved words; other characters
become `_`, and a reserved word or a leading digit gets the prefix `k_`. Two things whose
names collide after that are a validation problem, never silently renamed.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

APP_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
APP_ID_EXPECTED = "letters, digits, _ and - (not first), e.g. my-app"

# Names Dagster refuses for ops, jobs and mapping keys, besides Python keywords.
_DAGSTER_RESERVED = {
    "context", "conf", "config", "meta", "arg_dict", "dict", "input_arg_dict",
    "output_arg_dict", "int", "str", "float", "bool", "input", "output", "type",
}  # fmt: skip
RESERVED_NAMES = frozenset(_DAGSTER_RESERVED | set(keyword.kwlist))

# The op that resolves a run's variables, and the fan-in input through which a wait comes
# after the earlier steps: no step may take these names (ops and inputs are named by steps).
VARIABLES_STEP_NAME = "resolve_variables"
AFTER_INPUT_NAME = "after_earlier_steps"
TRANSLATOR_NAMES = frozenset({VARIABLES_STEP_NAME, AFTER_INPUT_NAME})


def dagster_name(text: str) -> str:
    """`check-total` -> `check_total`, `type` -> `k_type`, `3x` -> `k_3x`."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text) or "_"
    if name in RESERVED_NAMES or name[0].isdigit():
        return f"k_{name}"
    return name


def job_name(app_id: str, stem: str) -> str:
    return dagster_name(f"{app_id}__{stem}")


def schedule_name(app_id: str, name: str) -> str:
    return dagster_name(f"{app_id}__{name}")


@dataclass(frozen=True)
class NameSource:
    """What a step's name is made from: its `id`, else its `outputTable`, else a stem."""

    explicit: str | None
    explicit_pointer: str
    stem: str
    pointer: str


@dataclass(frozen=True)
class NameClash:
    pointer: str
    message: str
    expected: str


def step_names(sources: Sequence[NameSource]) -> tuple[list[str], list[NameClash]]:
    """The op name of every step, and the clashes among explicit names.

    Explicit names (id / outputTable) are taken first, in step order; the others get
    their stem, made unique with a numeric suffix (`wait`, `wait_2`, ...) that avoids
    every explicit name.
    """
    names: list[str | None] = [None] * len(sources)
    owner: dict[str, NameSource] = {}
    clashes: list[NameClash] = []
    for index, source in enumerate(sources):
        if source.explicit is None:
            continue
        name = dagster_name(source.explicit)
        names[index] = name
        clash = _clash(name, source, owner.get(name))
        if clash:
            clashes.append(clash)
        else:
            owner[name] = source
    counts: dict[str, int] = {}
    for index, source in enumerate(sources):
        if names[index] is None:
            name = _unique(dagster_name(source.stem), owner, counts)
            names[index] = name
            owner[name] = source
    return [name or "" for name in names], clashes


def _clash(name: str, source: NameSource, other: NameSource | None) -> NameClash | None:
    written = source.explicit or ""
    if name in TRANSLATOR_NAMES:
        return NameClash(
            source.explicit_pointer,
            f"the step name '{written}' is reserved by the translator",
            "another id",
        )
    if other is None:
        return None
    message = f"the step name '{written}' is already used by the step at {other.pointer}"
    if other.explicit != written:
        message += f" ('{other.explicit}' and '{written}' both become '{name}')"
    return NameClash(
        source.explicit_pointer, message, "a unique id for this step (ids name the ops)"
    )


def _unique(stem: str, taken: Mapping[str, object], counts: dict[str, int]) -> str:
    count = counts.get(stem, 0)
    while True:
        count += 1
        name = stem if count == 1 else f"{stem}_{count}"
        if name not in taken and name not in TRANSLATOR_NAMES:
            counts[stem] = count
            return name
