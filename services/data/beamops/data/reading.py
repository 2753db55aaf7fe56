"""Reading a dataset version batch by batch: files in order, the version's entry range and cut,
the split, then the reader's own entry range and extra cut. Memory stays bounded by the batch
size: nothing reads a whole file.

Entry numbering: the version's entries are numbered 0.. after its entry range and cut (in file
order); a split's entries are numbered 0.. within the split. The reader's entry range applies to
those numbers, before the reader's extra cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import awkward as ak
import numpy as np

from beamops.runtime.errors import InvalidArgument

from . import parquet_io, rootio, splitting
from .cuts import Cut
from .model import DatasetVersion, EntryRange
from .sources import SourceFileRef


@dataclass
class ReadPlan:
    """Everything needed to read: the checked request, with the files resolved."""

    version: DatasetVersion
    files: Sequence[SourceFileRef]  # in the version's file order
    branches: list[str]  # output branches
    version_cut: Cut | None
    extra_cut: Cut | None
    split: str = ""  # "" for all entries
    entry_range: EntryRange = field(default_factory=EntryRange)
    step_size: int = 100_000
    timeout_s: float = 30.0
    open_files: rootio.OpenFiles | None = None  # local ROOT files kept open between reads


@dataclass
class Batch:
    arrays: dict[str, ak.Array]
    entries: np.ndarray  # int64 entry numbers in the version (or the split)

    def __len__(self) -> int:
        return len(self.entries)


def chain_range(version: DatasetVersion) -> tuple[int, int]:
    total = sum(f.entry_count for f in version.files)
    r = version.source.entry_range
    stop = total if r.stop == 0 else min(r.stop, total)
    return min(r.start, total), stop


def read_batches(plan: ReadPlan) -> Iterator[Batch]:
    version = plan.version
    chain_start, chain_stop = chain_range(version)
    want_start = plan.entry_range.start
    want_stop = plan.entry_range.stop if plan.entry_range.stop > 0 else None
    if want_stop is not None and want_stop <= want_start:
        return
    simple = plan.version_cut is None and not plan.split
    if simple:
        # Version entries are chain entries: seek straight to the requested range.
        offset = chain_start
        chain_start = min(chain_start + want_start, chain_stop)
        if want_stop is not None:
            chain_stop = min(offset + want_stop, chain_stop)
        counter = chain_start - offset
    else:
        counter = 0  # entries of the version (or split) seen so far
    split_code = splitting.PART_CODES[plan.split] if plan.split else None
    version_counter = 0
    needed = list(dict.fromkeys(
        [*plan.branches,
         *(plan.version_cut.branches if plan.version_cut else ()),
         *(plan.extra_cut.branches if plan.extra_cut else ())]))

    file_offset = 0
    for ref, record in zip(plan.files, version.files):
        n = record.entry_count
        start = max(chain_start - file_offset, 0)
        stop = min(chain_stop - file_offset, n)
        file_offset += n
        if start >= stop:
            continue
        if record.format == "parquet":  # the service's own conversion (see parquet_io)
            chunks = parquet_io.iterate(ref.open_path, ref.url, needed, start, stop, plan.step_size)
        else:
            chunks = rootio.iterate(ref, version.source.tree_name, needed, start, stop,
                                    plan.step_size, plan.timeout_s, plan.open_files)
        for _, arrays in chunks:
            length = len(next(iter(arrays.values()))) if arrays else 0
            rows: np.ndarray | None = None  # None: all rows of the chunk
            if plan.version_cut is not None:
                rows = np.flatnonzero(plan.version_cut.mask(arrays, length))
            if split_code is not None:
                count = length if rows is None else len(rows)
                positions = np.arange(version_counter, version_counter + count, dtype=np.int64)
                version_counter += count
                keep = splitting.assign(version.split, positions) == split_code  # type: ignore[arg-type]
                rows = np.flatnonzero(keep) if rows is None else rows[keep]
            count = length if rows is None else len(rows)
            entries = np.arange(counter, counter + count, dtype=np.int64)
            counter += count
            if not simple:
                lo = np.searchsorted(entries, want_start)
                hi = len(entries) if want_stop is None else np.searchsorted(entries, want_stop)
                if lo > 0 or hi < len(entries):
                    if rows is None:
                        rows = np.arange(length)
                    rows, entries = rows[lo:hi], entries[lo:hi]
            out = {name: arrays[name] for name in needed}
            if rows is not None and len(rows) != length:
                out = {name: arr[rows] for name, arr in out.items()}
            if plan.extra_cut is not None and len(entries):
                keep = plan.extra_cut.mask(out, len(entries))
                if not keep.all():
                    out = {name: arr[keep] for name, arr in out.items()}
                    entries = entries[keep]
            if len(entries):
                yield Batch({name: out[name] for name in plan.branches}, entries)
            if want_stop is not None and counter >= want_stop and not simple:
                return


def count_entries(plan: ReadPlan) -> int:
    return sum(len(b) for b in read_batches(plan))


def check_numeric(version: DatasetVersion, names: Sequence[str]) -> None:
    for name in names:
        info = version.branch(name)
        if info is None:
            raise InvalidArgument(f"dataset version {version.version_id} has no branch {name!r}",
                                  field="branches")
        if not info.numeric:
            raise InvalidArgument(
                f"branch {name!r} ({info.type_name}) is not numeric and cannot be streamed",
                field="branches")
