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
from .spec import ELEMENT, DatasetRef, TrainingSpec
from .trainers import TrainingData, TrainingFailure, make_trainer

Columns = Mapping[str, np.ndarray]
# load(ref, split, branches, pad): pad is jagged_pad_length, or branch -> pad length when some
# branches are read for one element only (the data service pads each to its own length).
Loader = Callable[[DatasetRef, str, list[str], "int | Mapping[str, int]"], tuple[Columns, str]]
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

    samples = spec.class_samples() if spec.source_classes else ((None, None),)
    weighted = bool(spec.weight_branch) or any(s.weight != 1.0 for _, s in samples if s is not None)

    def read(split: str) -> tuple[SplitData, list[str]]:
        parts, names = [], []
        for index, (ref, (source_class, sample)) in enumerate(zip(spec.datasets, samples)):
            elements = spec.element_sources[index] if index < len(spec.element_sources) else ()
            sources = {f: sample.source(f) if sample is not None else f for f in spec.features}
            branches, pad = _branches_to_read(sources, elements, spec.jagged_pad_length)
            if spec.label_branch:
                branches.append(spec.label_branch)
            if spec.weight_branch:
                branches.append(spec.weight_branch)
            columns, content_hash = load(ref, split, branches, pad)
            if ref.content_hash and content_hash and content_hash != ref.content_hash:
                raise TrainingFailure(
                    f"dataset {ref.dataset} version {ref.version_id} now has content hash "
                    f"{content_hash}, not {ref.content_hash} as when the job was submitted")
            read_refs.append(dict(dataset=ref.dataset, version_id=ref.version_id,
                                  content_hash=content_hash or ref.content_hash, split=split))
            X, names = _features(_feature_columns(columns, sources, elements, spec.jagged_pad_length),
                                 spec.features)
            if spec.label_branch:
                y = np.asarray(columns[spec.label_branch])
            else:
                y = np.full(len(X), source_class.class_index, dtype=np.int64)
            w = None
            if weighted:
                w = np.asarray(columns[spec.weight_branch], dtype=np.float64) if spec.weight_branch \
                    else np.ones(len(X))
                w = w * (sample.weight if sample is not None else 1.0)
            parts.append(SplitData(X, y, w))
            log(f"read {len(X)} events of {ref.dataset} {ref.version_id} split {split!r}"
                + (f" (class {source_class.label}, weight {sample.weight:.6g} per event)"
                   if sample is not None and sample.weight != 1.0 else ""))
        X = np.concatenate([p.X for p in parts]) if len(parts) > 1 else parts[0].X
        y = np.concatenate([p.y for p in parts]) if len(parts) > 1 else parts[0].y
        w = None if parts[0].weight is None else np.concatenate([p.weight for p in parts])
        if len(X) == 0:
            raise TrainingFailure(f"the {split!r} split has no events")
        if w is not None:
            if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
                raise TrainingFailure(f"the event weights of the {split!r} split are not all finite and >= 0, "
                                      "or they add up to 0")
            w = w * (len(w) / w.sum())  # mean 1: the same physics, fit to the libraries' hessian limits
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
    check = compare(native, predictor.predict(test.X), spec.onnx_tolerance, spec.onnx_relative_tolerance)
    log(f"ONNX check on {check.events_compared} test events: largest difference "
        f"{check.max_abs_difference:.3g} (allowed: {check.tolerance:g} * {check.output_scale:.6g} + "
        f"{check.relative_tolerance:g} * |native|)")
    if not check.passed:
        raise TrainingFailure(onnx_check_message(check, task))
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


def onnx_check_message(check, task: str) -> str:
    where = f"test event {check.worst_event}" if check.worst_event >= 0 else "the test split"
    output = f", probability of class {check.worst_output}" if task == "classification" else ""
    if check.worst_event < 0:
        return ("the exported ONNX model does not predict like the trained model: its outputs have another "
                "shape than the native model's")
    return (
        f"the exported ONNX model does not predict like the trained model: {where} (of "
        f"{check.events_compared}{output}) gives {check.worst_native:.9g} natively and {check.worst_onnx:.9g} "
        f"in ONNX Runtime, a difference of {abs(check.worst_onnx - check.worst_native):.3g}; allowed is "
        f"onnx_tolerance * largest output + onnx_relative_tolerance * |native| = {check.tolerance:g} * "
        f"{check.output_scale:.6g} + {check.relative_tolerance:g} * {abs(check.worst_native):.6g} = "
        f"{check.allowed:.3g}. Float32 rounding stays well inside the defaults (1e-5 each); a larger "
        "difference usually means the export is wrong. To accept it, raise onnx_tolerance or "
        "onnx_relative_tolerance in the job spec")


def _branches_to_read(sources: Mapping[str, str], elements: tuple[str, ...],
                      pad_length: int) -> tuple[list[str], int | dict[str, int]]:
    """The branches a sample is read with, and the pad: jagged_pad_length, or branch -> length when
    some jagged branch is read for one element only (padded to that element, or more)."""
    branches: list[str] = []
    lengths: dict[str, int] = {}
    for source in sources.values():
        if source in elements:
            match = ELEMENT.fullmatch(source)
            assert match is not None
            branch, index = match.group(1), int(match.group(2))
            lengths[branch] = max(lengths.get(branch, 0), index + 1)
        else:
            branch = source
        branches.append(branch)
    branches = list(dict.fromkeys(branches))
    if not lengths:
        return branches, pad_length
    # a branch also read whole (padded) keeps jagged_pad_length at least
    for source in sources.values():
        if source not in elements and source in lengths:
            lengths[source] = max(lengths[source], pad_length)
    return branches, lengths


def _feature_columns(columns: Columns, sources: Mapping[str, str], elements: tuple[str, ...],
                     pad_length: int) -> dict[str, np.ndarray]:
    """The job's features (by their names) from a sample's columns (by its branch names)."""
    out: dict[str, np.ndarray] = {}
    for feature, source in sources.items():
        if source in elements:
            match = ELEMENT.fullmatch(source)
            assert match is not None
            col = np.asarray(columns[match.group(1)])
            out[feature] = col.reshape(len(col), -1)[:, int(match.group(2))]
            continue
        col = np.asarray(columns[source])
        out[feature] = col
        if col.ndim > 1:
            width = pad_length or col.shape[1]
            out[feature] = col.reshape(len(col), -1)[:, :width]
            out[f"{feature}_mask"] = np.asarray(columns[f"{source}_mask"]).reshape(len(col), -1)[:, :width]
    return out


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
