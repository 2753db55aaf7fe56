"""Per-branch statistics computed batch by batch (bounded memory): count, NaN/inf counts, min,
max, mean, population std (Chan's parallel merge), then, in a second pass over the data, a
histogram between min and max and quantiles from a fine histogram (4096 bins, linear
interpolation inside a bin: accurate to 1/4096 of the range)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import awkward as ak
import numpy as np

from .model import LAYOUT_JAGGED, BranchInfo, BranchStatistics, ValueSummary
from .reading import Batch

PROBABILITIES = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999)
FINE_BINS = 4096


@dataclass
class _Acc:
    count: int = 0
    nan: int = 0
    inf: int = 0
    lo: float = np.inf
    hi: float = -np.inf
    mean: float = 0.0
    m2: float = 0.0
    hist: np.ndarray | None = None
    fine: np.ndarray | None = None

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(values)
        self.nan += int(np.isnan(values).sum())
        self.inf += int(np.isinf(values).sum())
        v = values[finite] if not finite.all() else values
        n = len(v)
        if n == 0:
            return
        mean = float(v.mean())
        m2 = float(((v - mean) ** 2).sum())
        self.lo, self.hi = min(self.lo, float(v.min())), max(self.hi, float(v.max()))
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total

    def fill(self, values: np.ndarray, bins: int) -> None:
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        if self.count == 0:
            return
        lo, hi = self.lo, self.hi if self.hi > self.lo else self.lo + 1.0
        if self.hist is None:
            self.hist = np.zeros(bins, dtype=np.int64)
            self.fine = np.zeros(FINE_BINS, dtype=np.int64)
        self.hist += np.histogram(v, bins=bins, range=(lo, hi))[0]
        self.fine += np.histogram(v, bins=FINE_BINS, range=(lo, hi))[0]

    def summary(self) -> ValueSummary:
        if self.count == 0:
            return ValueSummary(nan_count=self.nan, inf_count=self.inf)
        lo, hi = self.lo, self.hi if self.hi > self.lo else self.lo + 1.0
        quantiles = []
        if self.fine is not None:
            cum = np.cumsum(self.fine)
            width = (hi - lo) / FINE_BINS
            for p in PROBABILITIES:
                target = p * self.count
                i = int(np.searchsorted(cum, target, side="left"))
                i = min(i, FINE_BINS - 1)
                before = cum[i - 1] if i > 0 else 0
                inside = self.fine[i]
                frac = (target - before) / inside if inside else 0.0
                value = min(max(lo + (i + frac) * width, self.lo), self.hi)
                quantiles.append((p, float(value)))
        return ValueSummary(
            count=self.count, nan_count=self.nan, inf_count=self.inf, min=self.lo, max=self.hi,
            mean=self.mean, std=float(np.sqrt(self.m2 / self.count)), quantiles=quantiles,
            hist_low=self.lo, hist_high=hi,
            hist_counts=[int(c) for c in self.hist] if self.hist is not None else [])


def _values(arr: ak.Array, info: BranchInfo) -> np.ndarray:
    if info.layout == "flat":
        return ak.to_numpy(arr)
    return ak.to_numpy(ak.flatten(arr, axis=None))


@dataclass
class StatisticsResult:
    entry_count: int
    branches: list[BranchStatistics] = field(default_factory=list)


def compute(batches: Callable[[], Iterable[Batch]], infos: list[BranchInfo], bins: int) -> StatisticsResult:
    """``batches()`` is called twice (two passes over the same rows)."""
    values = {b.name: _Acc() for b in infos}
    mult = {b.name: _Acc() for b in infos if b.layout == LAYOUT_JAGGED}
    entries = 0
    for batch in batches():
        entries += len(batch)
        for info in infos:
            arr = batch.arrays[info.name]
            values[info.name].add(_values(arr, info))
            if info.name in mult:
                mult[info.name].add(ak.to_numpy(ak.num(arr, axis=1)))
    for batch in batches():
        for info in infos:
            arr = batch.arrays[info.name]
            values[info.name].fill(_values(arr, info), bins)
            if info.name in mult:
                mult[info.name].fill(ak.to_numpy(ak.num(arr, axis=1)), bins)
    return StatisticsResult(entries, [
        BranchStatistics(branch=info.name, layout=info.layout, values=values[info.name].summary(),
                         multiplicity=mult[info.name].summary() if info.name in mult else None)
        for info in infos
    ])
