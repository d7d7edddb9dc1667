"""The base of every spec model: camelCase keys in JSON, snake_case in Python, no extras."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

# Limits that keep one hostile or mistaken file from hanging a run or the code location.
MAX_RETRY_DELAY_MS = 600_000  # ten minutes between two attempts
MAX_STEPS = 1_000  # steps of one workflow; each costs load time in every process
MAX_WAIT_SECONDS = 366 * 86_400  # a wait.duration of more than a year is a mistake

# Durations of waits and polls (wait.duration, wait.every, wait.timeout).
DURATION_PATTERN = r"^(\d+d)?(\d+h)?(\d+m)?(\d+s)?$"
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def duration_seconds(text: str) -> int:
    """`30s`, `5m`, `2h`, `1d` and compounds like `1h30m` -> seconds."""
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in re.findall(r"(\d+)([dhms])", text))


class SpecModel(BaseModel):
    """A parsed piece of a definition file.

    Unknown keys are errors (SPEC 2): `extra="forbid"`. Models are frozen so that the
    translator can share them between jobs and ops without defensive copies.
    """

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
    )
