"""The base of every spec model: camelCase keys in JSON, snake_case in Python, no extras."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


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
