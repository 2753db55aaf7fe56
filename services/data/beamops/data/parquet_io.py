"""The one module that writes and reads the service's Parquet files (pyarrow.parquet).

Writing takes Arrow record batches one at a time (ParquetWriter), so a conversion never holds
more than one batch. Reading yields awkward arrays per batch, like rootio.iterate, so the read
pipeline (cuts, splits, entry ranges) is the same for ROOT and Parquet files; it starts at the
row group holding the first wanted entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Sequence

import awkward as ak
import pyarrow as pa
import pyarrow.parquet as pq

from beamops.runtime.errors import DataLoss

DEFAULT_ROW_GROUP = 100_000


def write(path: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch], compression: str = "zstd") -> int:
    """Write ``batches`` (each becomes at least one row group) to ``path``; returns the rows."""
    rows = 0
    codec = None if compression in ("", "none") else compression
    with pq.ParquetWriter(path, schema, compression=codec or "NONE") as writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def iterate(path: str, url: str, columns: Sequence[str], entry_start: int, entry_stop: int,
            step_size: int) -> Iterator[tuple[int, dict[str, ak.Array]]]:
    """Yield (first entry, {column: array}) for entries [start, stop) of the file at ``path``."""
    if entry_stop <= entry_start:
        return
    if not columns:  # only counting entries: no column needs reading
        for start in range(entry_start, entry_stop, step_size):
            yield start, {}
        return
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataLoss(f"the service's file {url!r} is not a readable Parquet file: "
                       f"{type(exc).__name__}") from None
    with pf:
        groups, first = [], 0
        offset = 0
        for i in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(i).num_rows
            if offset + n > entry_start and offset < entry_stop:
                if not groups:
                    first = offset
                groups.append(i)
            offset += n
        if not groups:
            return
        position = first
        for batch in pf.iter_batches(batch_size=step_size, row_groups=groups, columns=list(columns),
                                     use_threads=False):
            batch_start, position = position, position + batch.num_rows
            lo, hi = max(entry_start - batch_start, 0), min(entry_stop - batch_start, batch.num_rows)
            if hi > lo:
                if lo > 0 or hi < batch.num_rows:
                    batch = batch.slice(lo, hi - lo)
                yield batch_start + lo, {name: ak.from_arrow(batch.column(name)) for name in columns}
            if position >= entry_stop:
                return
