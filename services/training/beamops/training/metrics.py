"""Metrics on a split: roc_auc, accuracy, log_loss (classification); rmse, mae, r2 (regression)."""

from __future__ import annotations

import math

import numpy as np


def compute(names: tuple[str, ...] | list[str], task: str, y: np.ndarray, predicted: np.ndarray,
            weight: np.ndarray | None = None) -> tuple[dict[str, float], list[str]]:
    """Metric name -> value, and notes for the metrics that could not be computed."""
    from sklearn import metrics as m

    values: dict[str, float] = {}
    notes: list[str] = []
    for name in names:
        try:
            if task == "classification":
                proba = np.asarray(predicted, dtype=np.float64)
                if name == "accuracy":
                    value = m.accuracy_score(y, proba.argmax(axis=1), sample_weight=weight)
                elif name == "log_loss":
                    value = m.log_loss(y, proba, labels=list(range(proba.shape[1])), sample_weight=weight)
                elif name == "roc_auc":
                    if len(np.unique(y)) < 2:
                        notes.append("roc_auc needs both classes in the split; skipped")
                        continue
                    if proba.shape[1] == 2:
                        value = m.roc_auc_score(y, proba[:, 1], sample_weight=weight)
                    else:
                        value = m.roc_auc_score(y, proba, multi_class="ovr", sample_weight=weight,
                                                labels=list(range(proba.shape[1])))
                else:
                    raise KeyError(name)
            else:
                pred = np.asarray(predicted, dtype=np.float64).reshape(-1)
                if name == "rmse":
                    value = math.sqrt(m.mean_squared_error(y, pred, sample_weight=weight))
                elif name == "mae":
                    value = m.mean_absolute_error(y, pred, sample_weight=weight)
                elif name == "r2":
                    value = m.r2_score(y, pred, sample_weight=weight)
                else:
                    raise KeyError(name)
        except ValueError as exc:
            notes.append(f"{name} could not be computed: {exc}")
            continue
        values[name] = float(value)
    return values, notes
