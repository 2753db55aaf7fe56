"""One training run, as the worker does it: read the splits, fit, evaluate, export, check, describe.

No gRPC here: the data comes through a ``load`` function and events leave through ``emit``,
both given by the worker (a local subprocess or a Dask task). The same function runs in both.

Events are small dicts: ``{"type": "log", "level", "text"}``, ``{"type": "progress",
"iteration", "total_iterations", "fraction"}``, ``{"type": "metric", "name", "split", "value",
"iteration"}``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from . import metrics as metric_fns
from .environment import code_reference, software_environment
from beamops.onnx_export import OnnxPredictor, compare
from beamops.onnx_external import ExternalDataError
from .reference import reference_distributions
from .spec import DatasetRef, TrainingSpec
from .trainers import TrainingData, TrainingFailure, make_trainer

Columns = Mapping[str, np.ndarray]
Loader = Callable[[DatasetRef, str, list[str], int], tuple[Columns, str]]
Emit = Callable[[dict], None]


class JobCancelled(Exception):
    """The job was asked to stop; raised between iterations."""


@dataclass
class RunOutcome:
    result: dict[str, Any]  # JSON-able: metrics, lineage, checks, distributions
    onnx: bytes
    predictions: np.ndarray  # float32 predictions on the test split, event order


@dataclass
class SplitData:
    X: np.ndarray
    y: np.ndarray
    weight: np.ndarray | None


def predictions_sha256(predictions: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(predictions, dtype="<f4").tobytes()).hexdigest()


def run_training(job_id: str, spec: TrainingSpec, load: Loader, emit: Emit,
                 should_stop: Callable[[], bool]) -> RunOutcome:
    def log(text: str, level: str = "INFO") -> None:
        emit({"type": "log", "level": level, "text": text})

    task = spec.model.task
    read_refs: list[dict] = []

    def read(split: str) -> tuple[SplitData, list[str]]:
        parts, names = [], []
        for index, ref in enumerate(spec.datasets):
            branches = list(spec.features)
            if spec.label_branch:
                branches.append(spec.label_branch)
            if spec.weight_branch:
                branches.append(spec.weight_branch)
            columns, content_hash = load(ref, split, branches, spec.jagged_pad_length)
            if ref.content_hash and content_hash and content_hash != ref.content_hash:
                raise TrainingFailure(
                    f"dataset {ref.dataset} version {ref.version_id} now has content hash "
                    f"{content_hash}, not {ref.content_hash} as when the job was submitted")
            read_refs.append(dict(dataset=ref.dataset, version_id=ref.version_id,
                                  content_hash=content_hash or ref.content_hash, split=split))
            X, names = _features(columns, spec.features)
            if spec.label_branch:
                y = np.asarray(columns[spec.label_branch])
            else:
                y = np.full(len(X), spec.source_classes[index].class_index, dtype=np.int64)
            w = np.asarray(columns[spec.weight_branch], dtype=np.float64) if spec.weight_branch else None
            parts.append(SplitData(X, y, w))
            log(f"read {len(X)} events of {ref.dataset} {ref.version_id} split {split!r}")
        X = np.concatenate([p.X for p in parts]) if len(parts) > 1 else parts[0].X
        y = np.concatenate([p.y for p in parts]) if len(parts) > 1 else parts[0].y
        w = None if parts[0].weight is None else np.concatenate([p.weight for p in parts])
        if len(X) == 0:
            raise TrainingFailure(f"the {split!r} split has no events")
        return SplitData(X, _labels(y, task, split), w), names

    emit({"type": "progress", "iteration": 0, "total_iterations": 0, "fraction": 0.0})
    train, feature_names = read(spec.splits.train)
    val = read(spec.splits.validation)[0] if spec.splits.use_validation else None
    test = read(spec.splits.test)[0]
    classes = 0
    if task == "classification":
        classes = int(max(train.y.max(), test.y.max(), val.y.max() if val is not None else 0)) + 1
        if classes < 2 or len(np.unique(train.y)) < 2:
            raise TrainingFailure("the train split holds events of one class only: a classifier needs "
                                  "at least two classes")
        missing = sorted(set(range(classes)) - set(np.unique(train.y).tolist()))
        if missing:
            raise TrainingFailure(f"class(es) {missing} never occur in the train split; class indices "
                                  "must be 0..N-1 and each present")
    if should_stop():
        raise JobCancelled()

    trainer = make_trainer(spec.model.builtin, spec.model.entry_point, task,
                           spec.model.hyperparameters, spec.seed)
    log(f"training {trainer.kind} ({task}) on {len(train.X)} events, {train.X.shape[1]} inputs, "
        f"seed {spec.seed}")
    first_metric = spec.metrics[0] if spec.metrics else None
    state = {"last": 0.0, "quarter": 0, "iteration": 0, "total": 0}

    def on_iteration(iteration: int, total: int) -> None:
        if should_stop():
            raise JobCancelled()
        now = time.monotonic()
        fraction = iteration / total if total else 0.0
        state["iteration"], state["total"] = iteration, total
        if now - state["last"] >= 0.25 or iteration >= total:
            state["last"] = now
            emit({"type": "progress", "iteration": iteration, "total_iterations": total,
                  "fraction": round(0.05 + 0.85 * fraction, 6)})
        quarter = int(fraction * 4)
        if val is not None and first_metric and quarter > state["quarter"] and iteration < total:
            state["quarter"] = quarter
            values, _ = metric_fns.compute([first_metric], task, val.y, trainer.predict(val.X))
            for name, value in values.items():
                emit({"type": "metric", "name": name, "split": "validation", "value": value,
                      "iteration": iteration})

    data = TrainingData(train.X, train.y, feature_names, train.weight,
                        val.X if val is not None else None, val.y if val is not None else None, classes)
    started = time.monotonic()
    trainer.fit(data, on_iteration)
    log(f"training finished in {time.monotonic() - started:.1f} s")
    if should_stop():
        raise JobCancelled()

    final_metrics: list[dict] = []
    for split_name, split in (("validation", val), ("test", test)):
        if split is None:
            continue
        values, notes = metric_fns.compute(spec.metrics, task, split.y, trainer.predict(split.X), split.weight)
        for note in notes:
            log(f"{split_name}: {note}", "WARNING")
        for name, value in values.items():
            metric = dict(name=name, split=split_name, value=value, iteration=0)
            final_metrics.append(metric)
            emit({"type": "metric", **metric})

    onnx_bytes = trainer.to_onnx(train.X.shape[1])
    native = np.asarray(trainer.predict(test.X))
    try:
        predictor = OnnxPredictor(onnx_bytes)
    except ExternalDataError as exc:
        raise TrainingFailure(str(exc)) from None
    check = compare(native, predictor.predict(test.X), spec.onnx_tolerance)
    log(f"ONNX check on {check.events_compared} test events: largest difference "
        f"{check.max_abs_difference:.3g} (tolerance {check.tolerance:g})")
    if not check.passed:
        raise TrainingFailure(
            f"the exported ONNX model does not predict like the trained model: the largest difference "
            f"on the test split is {check.max_abs_difference:.3g}, above the tolerance {check.tolerance:g}")
    emit({"type": "progress", "iteration": state["iteration"], "total_iterations": state["total"],
          "fraction": 0.95})

    code, dists = code_reference(spec.model.entry_point)
    predictions = native.astype(np.float32)
    result = dict(
        job_id=job_id,
        metrics=final_metrics,
        hyperparameters=trainer.hyperparameters,
        seed=spec.seed,
        datasets=read_refs,
        feature_names=feature_names,
        framework=trainer.framework,
        model_kind=trainer.kind,
        code=code,
        environment=software_environment(dists),
        onnx_check=check.to_dict(),
        onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        predictions_sha256=predictions_sha256(predictions),
        reference_distributions=reference_distributions(
            train.X, feature_names, trainer.predict(train.X), task),
        train_events=int(len(train.X)),
        test_events=int(len(test.X)),
    )
    return RunOutcome(result, onnx_bytes, predictions)


def _features(columns: Columns, features: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """float32 [N, inputs]: flat branches as one column, padded jagged ones as pad + mask columns."""
    blocks, names = [], []
    for name in features:
        col = np.asarray(columns[name])
        if col.ndim == 1:
            blocks.append(col.reshape(-1, 1))
            names.append(name)
        else:
            n = col.shape[1]
            blocks.append(col.reshape(len(col), n))
            names += [f"{name}[{i}]" for i in range(n)]
            mask = np.asarray(columns[f"{name}_mask"]).reshape(len(col), n)
            blocks.append(mask)
            names += [f"{name}_mask[{i}]" for i in range(n)]
    X = np.hstack([b.astype(np.float32) for b in blocks]) if blocks else np.zeros((0, 0), np.float32)
    return np.ascontiguousarray(X), names


def _labels(y: np.ndarray, task: str, split: str) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype == bool:
        y = y.astype(np.int64)
    if task == "regression":
        y = y.astype(np.float64)
        if not np.isfinite(y).all():
            raise TrainingFailure(f"the label has NaN or infinite values in the {split!r} split")
        return y
    yf = y.astype(np.float64)
    if not np.isfinite(yf).all() or (yf != np.round(yf)).any() or (yf < 0).any():
        raise TrainingFailure(f"the label holds values that are not class indices 0, 1, ... in the "
                              f"{split!r} split; for classification it must hold whole numbers >= 0")
    return yf.astype(np.int64)
