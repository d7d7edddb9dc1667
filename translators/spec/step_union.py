"""The union of every step kind (SPEC 3), built from the registry of step kinds
(`translators.steps.registry`) rather than listed here, so that a kind registered by one
line is parsed too. A step's kind follows from the key it carries."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Annotated, Any, Union

from pydantic import Discriminator, GetCoreSchemaHandler, Tag, TypeAdapter
from pydantic.errors import PydanticUndefinedAnnotation

# The kinds the parser knows, in the order they are tried: set from the registry of step
# kinds (`translators.steps.registry`), never listed here, so that a kind registered by one
# line is parsed too. Each item has `name`, `spec` (its model) and `keys` (the JSON keys
# that identify it). `KIND_KEYS` is kept in step (same dict object, updated in place).
_KINDS: list[Any] = []
STEP_KIND_ERROR = "cannot tell the step's kind; expected "
KIND_KEYS: dict[str, tuple[str, ...]] = {}


def use_step_kinds(kinds: Sequence[Any]) -> None:
    """The kinds `StepUnion` parses; models holding steps must then be rebuilt."""
    _KINDS[:] = list(kinds)
    KIND_KEYS.clear()
    KIND_KEYS.update({kind.name: kind.keys for kind in kinds})
    step_adapter.cache_clear()


def step_kind_expected() -> str:
    """The keys of every kind, as the step-kind error states them."""
    return "exactly one of: " + ", ".join(" + ".join(keys) for keys in KIND_KEYS.values())


def step_kind_of(value: Any) -> str | None:
    """The kind tag of a raw step, or None when it has no kind key or several."""
    if not isinstance(value, dict):
        return getattr(value, "kind", None)  # a parsed step
    kinds = [kind for kind, keys in KIND_KEYS.items() if any(k in value for k in keys)]
    return kinds[0] if len(kinds) == 1 else None


class StepUnion:
    """Any step: a union of the registered kinds' models, told apart by their keys.

    Built when a model holding steps is built; before any kind is registered that model
    stays incomplete (as with a forward reference) and is rebuilt by the registry.
    """

    @classmethod
    def current_union(cls) -> Any:
        """The union type of the registered kinds (what code walking the types sees)."""
        members = tuple(Annotated[kind.spec, Tag(kind.name)] for kind in _KINDS)
        return Annotated[
            Union[members],  # noqa: UP007 - a union built at run time
            Discriminator(
                step_kind_of,
                custom_error_type="step_kind",
                custom_error_message=STEP_KIND_ERROR + step_kind_expected(),
            ),
        ]

    @classmethod
    def __get_pydantic_core_schema__(cls, _source: Any, handler: GetCoreSchemaHandler) -> Any:
        if not _KINDS:
            raise PydanticUndefinedAnnotation(
                "StepUnion", "no step kinds registered: import translators.steps.registry"
            )
        return handler.generate_schema(cls.current_union())


@cache
def step_adapter() -> TypeAdapter[Any]:
    """A parser of one step on its own, for the registered kinds."""
    return TypeAdapter(StepUnion)
