"""Drift statistics, pure numpy: PSI and Kolmogorov-Smirnov of live samples against a reference
histogram (bin edges + counts, as stored with a parameters version), and a sliding window.

* PSI: live samples are histogrammed on the reference edges (values outside the edges count in
  the first and last bin, as the reference does); proportions are floored at ``eps`` so empty
  bins do not divide by zero; PSI = sum((p_live - p_ref) * ln(p_live / p_ref)).
* KS: the reference CDF is the histogram's piecewise-linear CDF (0 below the first edge, 1 above
  the last); the statistic is the largest distance to the samples' empirical CDF; the p-value uses
  the asymptotic Kolmogorov distribution with n_eff = n*m/(n+m) (m = reference sample count, or
  n when unknown).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

EPS = 1e-4


def _reference(edges: Sequence[float], counts: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    edges = np.asarray(edges, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or len(counts) != len(edges) - 1:
        raise ValueError("a reference needs n+1 bin edges and n counts")
    if np.any(np.diff(edges) <= 0) or np.any(counts < 0) or counts.sum() <= 0:
        raise ValueError("reference edges must increase and counts be non-negative, not all 0")
    return edges, counts


def psi(edges: Sequence[float], counts: Sequence[float], samples: np.ndarray,
        eps: float = EPS) -> float:
    """Population stability index of ``samples`` against the reference histogram."""
    edges, counts = _reference(edges, counts)
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise ValueError("no finite samples")
    live, _ = np.histogram(np.clip(x, edges[0], edges[-1]), bins=edges)
    p = np.maximum(live / x.size, eps)
    q = np.maximum(counts / counts.sum(), eps)
    return float(np.sum((p - q) * np.log(p / q)))


def reference_cdf(edges: Sequence[float], counts: Sequence[float], x: np.ndarray) -> np.ndarray:
    edges, counts = _reference(edges, counts)
    cumulative = np.concatenate([[0.0], np.cumsum(counts) / counts.sum()])
    return np.interp(x, edges, cumulative, left=0.0, right=1.0)


def ks_p_value(statistic: float, n: int, m: int = 0) -> float:
    """Asymptotic two-sided p-value of a KS statistic (Kolmogorov distribution)."""
    if n <= 0:
        return 1.0
    n_eff = n * m / (n + m) if m > 0 else float(n)
    en = math.sqrt(n_eff)
    lam = (en + 0.12 + 0.11 / en) * statistic
    if lam < 0.2:
        return 1.0
    k = np.arange(1, 101)
    q = 2.0 * np.sum((-1.0) ** (k - 1) * np.exp(-2.0 * k**2 * lam**2))
    return float(min(1.0, max(0.0, q)))


def ks(edges: Sequence[float], counts: Sequence[float], samples: np.ndarray,
       reference_count: int = 0) -> tuple[float, float]:
    """(statistic, p-value) of ``samples`` against the reference histogram's CDF."""
    x = np.sort(np.asarray(samples, dtype=np.float64).reshape(-1))
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        raise ValueError("no finite samples")
    cdf = reference_cdf(edges, counts, x)
    i = np.arange(n)
    d = float(max(np.max((i + 1) / n - cdf), np.max(cdf - i / n)))
    return d, ks_p_value(d, n, reference_count)


class Window:
    """The most recent ``capacity`` rows of ``width`` features (float64), with arrival times."""

    def __init__(self, capacity: int, width: int) -> None:
        self.capacity, self.width = capacity, width
        self._rows = np.zeros((capacity, width), dtype=np.float64)
        self._times = np.zeros(capacity, dtype=np.float64)
        self._next = 0
        self.size = 0

    def append(self, rows: np.ndarray, now: float | np.ndarray | None = None) -> None:
        """Adds rows that arrived at ``now`` (one time, or one per row)."""
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, self.width)
        times = np.broadcast_to(np.asarray(time.time() if now is None else now, np.float64),
                                (len(rows),))
        if len(rows) >= self.capacity:
            rows, times = rows[-self.capacity:], times[-self.capacity:]
        n = len(rows)
        end = self._next + n
        if end <= self.capacity:
            self._rows[self._next:end] = rows
            self._times[self._next:end] = times
        else:
            first = self.capacity - self._next
            self._rows[self._next:] = rows[:first]
            self._rows[:n - first] = rows[first:]
            self._times[self._next:] = times[:first]
            self._times[:n - first] = times[first:]
        self._next = end % self.capacity
        self.size = min(self.capacity, self.size + n)

    def values(self) -> np.ndarray:
        """The rows in the window (in no particular order)."""
        return self._rows[:self.size] if self.size < self.capacity else self._rows

    def time_span(self) -> tuple[float, float] | None:
        if self.size == 0:
            return None
        times = self._times[:self.size] if self.size < self.capacity else self._times
        return float(times.min()), float(times.max())
