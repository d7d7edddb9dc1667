"""The polling wait's model (SPEC 3.6, extension `wait.poll`): which operation to call and
what in its answer means "done". `every` and `timeout` sit next to `poll` in `wait`
(translators/spec/steps.py `WaitSpec`); their rules are here so the wait model stays small.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from translators.spec.base import MAX_WAIT_SECONDS, SpecModel, duration_seconds

# A dot path as `get_path` reads it: `status`, `job.state`, `items.0.status`.
DOT_PATH_PATTERN = r"^[^.\s]+(\.[^.\s]+)*$"
DEFAULT_EVERY_SECONDS = 30
DEFAULT_TIMEOUT_SECONDS = 3600
CONDITIONS = ("equals", "notEquals", "in")


def _one_condition() -> dict[str, Any]:
    """JSON Schema of `_exactly_one_condition`: one of equals / notEquals / in."""
    return {"oneOf": [{"required": [key]} for key in CONDITIONS]}


class PollSpec(SpecModel):
    """Extension: the call a polling wait repeats, and the value of its answer that ends it."""

    model_config = ConfigDict(json_schema_extra=_one_condition())

    service: str = Field(description="A service of the catalog (its file name without .json).")
    operation: str = Field(description="An operation of that service, called once per poll.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Values for the operation: path placeholders first, the rest in the "
        "query string (GET/DELETE) or the JSON body; may hold templates ({{var.x}}).",
    )
    data_path: str | None = Field(
        None,
        description="Dot path to the records of the answer; `field` is then read in the "
        "first record (default: `field` is read in the whole answer).",
    )
    field: str = Field(
        description="Dot path of the value to test, e.g. status or job.state (a number "
        "indexes an array: items.0.status).",
    )
    equals: Any = Field(None, description="Done when the value equals this (JSON equality).")
    not_equals: Any = Field(
        None, description="Done when the value is present and differs from this."
    )
    in_: list[Any] | None = Field(
        None, alias="in", description="Done when the value is one of these."
    )

    @field_validator("field", "data_path")
    @classmethod
    def _dot_path(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(DOT_PATH_PATTERN, value):
            raise ValueError(
                f"invalid dot path {value!r}; expected names joined by dots, e.g. status, "
                "job.state or items.0.status"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one_condition(self) -> PollSpec:
        given = [key for key in CONDITIONS if self._is_given(key)]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(
                f"wait.poll needs exactly one of equals, notEquals, in (found: {found})"
            )
        return self

    def _is_given(self, key: str) -> bool:
        # `equals: null` is a condition too, so "set" means "written in the file".
        name = {"equals": "equals", "notEquals": "not_equals", "in": "in_"}[key]
        return name in self.model_fields_set

    def is_done(self, value: Any, present: bool) -> bool:
        """Whether `value` (read at `field`; `present` False when nothing was there) ends
        the wait. A missing value ends no wait, not even a `notEquals` one."""
        if not present:
            return False
        if self._is_given("equals"):
            return bool(value == self.equals)
        if self._is_given("notEquals"):
            return bool(value != self.not_equals)
        return value in (self.in_ or [])

    def condition_text(self) -> str:
        """The condition as written, for messages: `status equals "done"`."""
        import json

        for key, value in (("equals", self.equals), ("notEquals", self.not_equals)):
            if self._is_given(key):
                return f"{self.field} {key} {json.dumps(value)}"
        return f"{self.field} in {json.dumps(self.in_)}"


def check_poll_timing(
    poll: PollSpec | None, every: str | None, timeout: str | None, has_time: bool
) -> None:
    """The rules of `every` / `timeout` (durations as written) around `poll`."""
    if poll is None:
        if every is not None or timeout is not None:
            raise ValueError(
                "wait.every and wait.timeout go with wait.poll; add poll or remove them"
            )
        return
    if has_time:
        raise ValueError(
            "wait.poll waits for an answer, not for a time; remove wait.duration and wait.until"
        )
    every_s, timeout_s = poll_timing(every, timeout)
    if every_s < 1:
        raise ValueError("wait.every must be at least 1s")
    if timeout_s > MAX_WAIT_SECONDS:
        raise ValueError("wait.timeout is longer than 366 days")
    if every_s > timeout_s:
        raise ValueError(f"wait.every ({every_s}s) is longer than wait.timeout ({timeout_s}s)")


def poll_timing(every: str | None, timeout: str | None) -> tuple[int, int]:
    """`every` and `timeout` in seconds, the defaults filled in."""
    return (
        DEFAULT_EVERY_SECONDS if every is None else duration_seconds(every),
        DEFAULT_TIMEOUT_SECONDS if timeout is None else duration_seconds(timeout),
    )
