"""fieldMapping applied to Arrow batches, for the database steps (SPEC 3.3, 3.4, 5.3)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pyarrow as pa

from resources.records import generate_value
from translators.spec import FieldMapping, GenerateSpec


def source_columns(mapping: FieldMapping) -> list[str]:
    """The columns a mapping reads (generators read none)."""
    return list(dict.fromkeys(s for s in mapping.values() if isinstance(s, str)))


def map_batch(batch: pa.RecordBatch, mapping: FieldMapping) -> pa.RecordBatch:
    """Target column -> source column or generated value, one batch at a time."""
    arrays: list[pa.Array] = []
    for target, source in mapping.items():
        if isinstance(source, GenerateSpec):
            values = [generate_value(source.generate) for _ in range(batch.num_rows)]
            # Typed, so that an empty batch still has a string column.
            arrays.append(pa.array(values, type=pa.string()))
        else:
            index = batch.schema.get_field_index(source)
            if index < 0:
                raise KeyError(
                    f"fieldMapping '{target}' reads column '{source}', which the source does not "
                    f"have; expected one of {batch.schema.names}"
                )
            arrays.append(batch.column(index))
    return pa.RecordBatch.from_arrays(arrays, names=list(mapping))


def map_batches(
    batches: Iterable[pa.RecordBatch], mapping: FieldMapping | None
) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        yield map_batch(batch, mapping) if mapping else batch


def render_str(value: Any, variables: Mapping[str, Any]) -> str:
    from translators.templates import render

    return str(render(value, variables))
