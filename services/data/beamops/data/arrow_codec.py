"""Batches of awkward arrays -> Arrow record batches -> Arrow IPC message bytes.

Flat branches become primitive columns (zero copy from numpy), jagged ones list<item> columns,
or, in pad mode, fixed_size_list columns of ``pad_length`` values with a boolean
``<branch>_mask`` column true where a value is real. Fixed-size arrays (float[3]) become
fixed_size_list columns. The schema is known before the first batch (from the version's branch
descriptions), so the stream can start with it even when no entry passes the cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import awkward as ak
import numpy as np
import pyarrow as pa

from .model import LAYOUT_FIXED, LAYOUT_JAGGED, BranchInfo

ENTRY_COLUMN = "__entry__"


@dataclass(frozen=True)
class PadOptions:
    """Pad jagged branches to fixed lengths (None: keep them as lists)."""

    default_length: int = 0
    lengths: Mapping[str, int] = field(default_factory=dict)
    value: float = 0.0

    def length_of(self, branch: str) -> int:
        return int(self.lengths.get(branch, self.default_length))


def _item(dtype: str) -> pa.DataType:
    return pa.from_numpy_dtype(np.dtype(dtype))


def arrow_schema(branches: Sequence[BranchInfo], pad: PadOptions | None,
                 with_entry: bool) -> pa.Schema:
    fields: list[pa.Field] = []
    for b in branches:
        item = _item(b.dtype or "float64")
        meta = {k: v for k, v in (("unit", b.unit), ("root_type", b.type_name)) if v}
        if b.layout == LAYOUT_JAGGED and pad is not None:
            n = pad.length_of(b.name)
            fields.append(pa.field(b.name, pa.list_(pa.field("item", item, nullable=False), n),
                                   nullable=False, metadata=meta or None))
            fields.append(pa.field(f"{b.name}_mask", pa.list_(pa.field("item", pa.bool_(), nullable=False), n),
                                   nullable=False))
        elif b.layout == LAYOUT_JAGGED:
            fields.append(pa.field(b.name, pa.list_(pa.field("item", item, nullable=False)),
                                   nullable=False, metadata=meta or None))
        elif b.layout == LAYOUT_FIXED:
            t: pa.DataType = item
            for n in reversed(b.fixed_shape):
                t = pa.list_(pa.field("item", t, nullable=False), int(n))
            fields.append(pa.field(b.name, t, nullable=False, metadata=meta or None))
        else:
            fields.append(pa.field(b.name, item, nullable=False, metadata=meta or None))
    if with_entry:
        fields.append(pa.field(ENTRY_COLUMN, pa.int64(), nullable=False))
    return pa.schema(fields)


def _padded(arr: ak.Array, length: int, value: float, dtype: str) -> tuple[pa.Array, pa.Array, np.ndarray]:
    counts = ak.to_numpy(ak.num(arr, axis=1))
    rows = len(counts)
    values = ak.to_numpy(ak.fill_none(ak.pad_none(arr, length, axis=1, clip=True), value)).astype(dtype, copy=False)
    mask = np.arange(length)[None, :] < counts[:, None]
    col = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(rows * length)), length)
    mcol = pa.FixedSizeListArray.from_arrays(pa.array(mask.reshape(rows * length)), length)
    return col, mcol, counts > length


def to_record_batch(arrays: Mapping[str, ak.Array], branches: Sequence[BranchInfo],
                    schema: pa.Schema, pad: PadOptions | None,
                    entries: np.ndarray | None) -> tuple[pa.RecordBatch, int]:
    """One record batch with ``schema``; returns it and the number of truncated rows."""
    columns: list[pa.Array] = []
    truncated: np.ndarray | None = None
    for b in branches:
        arr = arrays[b.name]
        if b.layout == LAYOUT_JAGGED and pad is not None:
            col, mcol, trunc = _padded(arr, pad.length_of(b.name), pad.value, b.dtype or "float64")
            columns += [col, mcol]
            truncated = trunc if truncated is None else truncated | trunc
        elif b.layout == LAYOUT_JAGGED or b.layout == LAYOUT_FIXED:
            columns.append(ak.to_arrow(arr, extensionarray=False, list_to32=True))
        else:
            columns.append(pa.array(ak.to_numpy(arr)))
    if entries is not None:
        columns.append(pa.array(entries, type=pa.int64()))
    columns = [c if c.type == f.type else c.cast(f.type) for c, f in zip(columns, schema)]
    batch = pa.RecordBatch.from_arrays(columns, schema=schema)
    return batch, int(truncated.sum()) if truncated is not None else 0


def schema_message(schema: pa.Schema) -> bytes:
    return schema.serialize().to_pybytes()


def batch_messages(batch: pa.RecordBatch, max_bytes: int) -> Iterator[tuple[pa.Buffer, int, int]]:
    """IPC messages for ``batch`` (pyarrow buffers, not copied into bytes here), sliced so each
    stays under ``max_bytes``: (buffer, first row in the batch, rows), one at a time, so only
    the message being sent is in memory beside the batch."""
    total = batch.nbytes
    if total <= max_bytes or batch.num_rows <= 1:
        yield batch.serialize(), 0, batch.num_rows
        return
    parts = int(np.ceil(total / max_bytes)) + 1
    step = max(1, batch.num_rows // parts)
    for start in range(0, batch.num_rows, step):
        piece = batch.slice(start, step)
        yield piece.serialize(), start, piece.num_rows
