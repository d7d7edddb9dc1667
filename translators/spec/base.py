"""The base of every spec model: camelCase keys in JSON, snake_case in Python, no extras."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

# Limits that keep one hostile or mistaken file from hanging a run or the code location.
MAX_RETRY_DELAY_MS = 600_000  # ten minutes between two attempts
MAX_STEPS = 1_000  # steps of one workflow; each costs load time in every process
MAX_WAIT_SECONDS = 366 * 86_400  # a wait.duration of more than a year is a mistake


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
