"""Comparison of a reproduction with its original job: metrics, predictions and recorded inputs."""

from __future__ import annotations

import json

import numpy as np

DEFAULT_TOLERANCE = 1e-6


def compare_runs(original: dict, reproduced: dict, original_predictions: np.ndarray | None,
                 predictions: np.ndarray, tolerance: float, original_executor: str,
                 executor: str) -> dict:
    """A ReproductionReport as a dict (see job.proto); ``original``/``reproduced`` are job results."""
    tolerance = tolerance or DEFAULT_TOLERANCE
    metrics = []
    before = {(m["split"], m["name"]): m["value"] for m in original.get("metrics", [])}
    for m in reproduced.get("metrics", []):
        key = (m["split"], m["name"])
        if key in before:
            metrics.append(dict(name=m["name"], split=m["split"], original=before[key], reproduced=m["value"],
                                abs_difference=abs(before[key] - m["value"])))
    metrics_agree = all(m["abs_difference"] <= tolerance for m in metrics) and len(metrics) == len(before)

    if original_predictions is None or original_predictions.shape != predictions.shape:
        events, max_diff, beyond, agree = 0, float("inf"), int(predictions.shape[0]) if predictions.ndim else 0, False
    else:
        diff = np.abs(original_predictions.astype(np.float64) - predictions.astype(np.float64))
        per_event = diff.reshape(len(diff), -1).max(axis=1) if diff.size else diff
        events = int(len(per_event))
        max_diff = float(per_event.max()) if events else 0.0
        beyond = int((per_event > tolerance).sum())
        agree = beyond == 0
    identical = bool(original.get("predictions_sha256")) and \
        original.get("predictions_sha256") == reproduced.get("predictions_sha256")

    differences = _differences(original, reproduced, original_executor, executor)
    reproduced_ok = metrics_agree and agree
    if reproduced_ok:
        summary = ("Reproduced: predictions are bit-identical." if identical else
                   f"Reproduced within tolerance {tolerance:g} (largest prediction difference {max_diff:.3g}).")
    else:
        worst = max((m["abs_difference"] for m in metrics), default=0.0)
        summary = f"Not reproduced: metrics differ by up to {worst:.3g}, predictions by up to {max_diff:.3g}"
        if differences:
            shown = "; ".join(f"{d['field']}: {d['original']} -> {d['reproduced']}" for d in differences[:3])
            summary += f"; recorded inputs differ ({shown})."
        else:
            summary += "; no recorded input differs (non-deterministic training code?)."
    return dict(original_job=original.get("job_id", ""), reproduced=reproduced_ok, metrics_agree=metrics_agree,
                predictions_agree=agree, tolerance=tolerance, metrics=metrics, events_compared=events,
                max_prediction_difference=max_diff if np.isfinite(max_diff) else 1e308,
                events_beyond_tolerance=beyond, predictions_identical=identical, differences=differences,
                summary=summary)


def _differences(a: dict, b: dict, executor_a: str, executor_b: str) -> list[dict]:
    out: list[dict] = []

    def add(kind: str, field: str, x, y) -> None:
        if x != y:
            out.append(dict(kind=kind, field=field, original=_text(x), reproduced=_text(y)))

    add("seed", "seed", a.get("seed"), b.get("seed"))
    for i, (da, db) in enumerate(zip(a.get("datasets", []), b.get("datasets", []))):
        add("data_hash", f"datasets[{i}].content_hash", da.get("content_hash"), db.get("content_hash"))
    ea, eb = a.get("environment", {}), b.get("environment", {})
    add("environment", "python_version", ea.get("python_version"), eb.get("python_version"))
    add("environment", "platform", ea.get("platform"), eb.get("platform"))
    pa, pb = ea.get("packages", {}), eb.get("packages", {})
    for name in sorted(set(pa) | set(pb)):
        add("environment", f"packages.{name}", pa.get(name, ""), pb.get(name, ""))
    add("code", "code", a.get("code"), b.get("code"))
    ha, hb = a.get("hyperparameters", {}), b.get("hyperparameters", {})
    for name in sorted(set(ha) | set(hb)):
        add("hyperparameters", f"hyperparameters.{name}", ha.get(name), hb.get(name))
    add("executor", "executor", executor_a, executor_b)
    return out


def _text(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)
