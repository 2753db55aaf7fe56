"""Reference distributions of a model's inputs and outputs on its training data.

One per feature column and one per output column (named ``output:<name>``): a histogram
between the 0.1% and 99.9% quantiles (values outside are counted in the first and last bin),
quantiles at fixed levels, mean, std and count of finite values. The inference service compares
live inputs with these to detect drift.
"""

from __future__ import annotations

import numpy as np

QUANTILE_LEVELS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999)
BINS = 50


def distribution(name: str, values: np.ndarray, bins: int = BINS) -> dict:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return dict(feature=name, bin_edges=[], counts=[], quantile_levels=list(QUANTILE_LEVELS),
                    quantiles=[], mean=0.0, std=0.0, count=0)
    quantiles = np.quantile(v, QUANTILE_LEVELS)
    low, high = float(quantiles[0]), float(quantiles[-1])
    if not high > low:
        low, high = float(v.min()), float(v.max())
    if not high > low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    counts, _ = np.histogram(np.clip(v, low, high), bins=edges)
    return dict(feature=name, bin_edges=edges.tolist(), counts=counts.astype(float).tolist(),
                quantile_levels=list(QUANTILE_LEVELS), quantiles=quantiles.tolist(),
                mean=float(v.mean()), std=float(v.std()), count=int(v.size))


def reference_distributions(X: np.ndarray, feature_names: list[str], outputs: np.ndarray,
                            task: str) -> list[dict]:
    out = [distribution(name, X[:, i]) for i, name in enumerate(feature_names)]
    outputs = np.asarray(outputs)
    if task == "classification":
        for c in range(outputs.shape[1]):
            out.append(distribution(f"output:probabilities[{c}]", outputs[:, c]))
    else:
        out.append(distribution("output:variable", outputs))
    return out
