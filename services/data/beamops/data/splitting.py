"""Deterministic train/validation/test splits.

Each entry's part depends only on the seed and its position in the parent version: a 64-bit
mix (splitmix64) of (seed, position) gives a uniform number u in [0, 1), and the entry goes to
train when u < f_train, to validation when u < f_train + f_validation, else to test. The same
seed always gives the same split, no state is stored per entry, and any batch of positions can
be assigned on its own (so reading a split needs no memory proportional to the dataset).
"""

from __future__ import annotations

import numpy as np

from beamops.runtime.errors import InvalidArgument

from .model import SPLIT_NAMES, SplitInfo, SplitSpec

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
PART_CODES = {name: i for i, name in enumerate(SPLIT_NAMES)}


def check_split(spec: SplitSpec) -> None:
    values = spec.fractions
    for name, value in values.items():
        if not (0.0 <= value <= 1.0) or value != value:
            raise InvalidArgument(f"the {name} fraction must be in [0, 1], got {value}",
                                  field=f"split.{name}_fraction")
    if abs(sum(values.values()) - 1.0) > 1e-9:
        raise InvalidArgument(
            f"split fractions must sum to 1, got {sum(values.values())!r}", field="split"
        )
    if spec.seed < 0 or spec.seed >= 2**64:
        raise InvalidArgument("the split seed must fit in 64 bits", field="split.seed")


def _mix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def assign(spec: SplitSpec, positions: np.ndarray) -> np.ndarray:
    """Part code (0 train, 1 validation, 2 test) of each entry position."""
    with np.errstate(over="ignore"):
        seed_mix = _mix(np.array([spec.seed], dtype=np.uint64))[0]
        h = _mix(np.asarray(positions, dtype=np.uint64) ^ seed_mix)
    u = (h >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)
    codes = np.full(len(u), 2, dtype=np.int8)
    codes[u < spec.train + spec.validation] = 1
    codes[u < spec.train] = 0
    return codes


def split_counts(spec: SplitSpec, entry_count: int, chunk: int = 4_000_000) -> list[SplitInfo]:
    """Entries per part for a parent of ``entry_count`` entries (parts with fraction 0 left out)."""
    counts = np.zeros(3, dtype=np.int64)
    for start in range(0, entry_count, chunk):
        codes = assign(spec, np.arange(start, min(start + chunk, entry_count), dtype=np.uint64))
        counts += np.bincount(codes, minlength=3)
    return [
        SplitInfo(name=name, fraction=spec.fractions[name], entry_count=int(counts[i]))
        for i, name in enumerate(SPLIT_NAMES) if spec.fractions[name] > 0
    ]
