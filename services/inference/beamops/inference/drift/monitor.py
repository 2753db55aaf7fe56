"""Drift of one deployment: which features are watched, their sliding window, their report.

Features are the elements along the last axis of numeric input and output tensors. Reference
distributions (stored with the parameters version) are matched to them by name:
``"<tensor>[<i>]"`` or ``"<tensor>"`` (index 0); output references are prefixed ``"output:"``.
References with other names (human feature names, as the training service writes them) are
matched in order to the input features left over (outputs: to the output features left over).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from beamops.common.v1 import tensor_pb2
from beamops.tensors import DTYPES

from . import stats
from ..domain import (
    DriftReport, FeatureDrift, FeatureKind, FeatureReference, RawTensor, Signature, Thresholds,
)

_NAMED = re.compile(r"^(?P<tensor>[^\[\]]+)(\[(?P<index>\d+)\])?$")
_NON_NUMERIC = {tensor_pb2.DATA_TYPE_BOOL, tensor_pb2.DATA_TYPE_BYTES}
#: Requests (or bytes of tensors) kept before their samples are copied into the window
#: (report() copies them too).
FLUSH_EVERY, FLUSH_BYTES = 256, 4 << 20


@dataclass(frozen=True)
class Feature:
    kind: FeatureKind
    tensor: str
    index: int
    name: str
    reference: FeatureReference | None


def features_for(signature: Signature, references: tuple[FeatureReference, ...]) -> list[Feature]:
    slots: list[tuple[FeatureKind, str, int]] = []
    for kind, tensors in ((FeatureKind.INPUT, signature.inputs), (FeatureKind.OUTPUT, signature.outputs)):
        for t in tensors:
            if t.dtype in _NON_NUMERIC:
                continue
            width = t.shape[-1] if len(t.shape) >= 2 and t.shape[-1] > 0 else 1
            slots.extend((kind, t.name, i) for i in range(width))
    assigned: dict[tuple[FeatureKind, str, int], tuple[str, FeatureReference]] = {}
    unnamed: dict[FeatureKind, list[FeatureReference]] = {FeatureKind.INPUT: [], FeatureKind.OUTPUT: []}
    for ref in references:
        kind, name = FeatureKind.INPUT, ref.feature
        if name.startswith("output:"):
            kind, name = FeatureKind.OUTPUT, name.removeprefix("output:")
        match = _NAMED.match(name)
        key = (kind, match["tensor"], int(match["index"] or 0)) if match else None
        if key in slots and key not in assigned:
            assigned[key] = ("", ref)
        else:
            unnamed[kind].append(ref)
    for kind, refs in unnamed.items():
        free = [s for s in slots if s[0] == kind and s not in assigned]
        for slot, ref in zip(free, refs):
            assigned[slot] = (ref.feature.removeprefix("output:"), ref)
    return [Feature(k, t, i, *assigned.get((k, t, i), ("", None))) for k, t, i in slots]


def _nbytes(tensors) -> int:
    if isinstance(tensors, Mapping):
        return sum(np.asarray(a).nbytes for a in tensors.values())
    return sum(len(t.data) for t in tensors)


def _ts(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)


class DriftMonitor:
    """The window and the scores of one deployment's served version."""

    def __init__(self, deployment: str, model: str, version: str, signature: Signature,
                 references: tuple[FeatureReference, ...], thresholds: Thresholds) -> None:
        self.deployment, self.model, self.version = deployment, model, version
        self.thresholds = thresholds
        self.references = references
        self.features = features_for(signature, references)
        self.active = bool(references) and not thresholds.disabled and bool(self.features)
        self.window = stats.Window(thresholds.window_size, len(self.features)) if self.active else None
        self._by_tensor: dict[str, list[tuple[int, int]]] = {}
        for column, f in enumerate(self.features):
            self._by_tensor.setdefault(f.tensor, []).append((column, f.index))
        self.last_evaluation = time.monotonic()
        self._pending: list[tuple[float, object, object]] = []
        self._pending_bytes = 0

    def observe(self, inputs: Mapping[str, np.ndarray] | Sequence[RawTensor],
                outputs: Mapping[str, np.ndarray] | Sequence[RawTensor]) -> None:
        """Keeps one request's tensors (arrays by name, or raw tensors) for the window.

        Cheap on purpose (it runs on every Predict): the samples are copied into the window in
        batches, by :meth:`flush`, which :meth:`report` calls, and which runs by itself once
        enough requests are pending.
        """
        if self.window is None:
            return
        self._pending.append((time.time(), inputs, outputs))
        self._pending_bytes += _nbytes(inputs) + _nbytes(outputs)
        if len(self._pending) >= FLUSH_EVERY or self._pending_bytes >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Copies the pending requests' samples into the window (rows in arrival order)."""
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        if self.window is None or not pending:
            return
        run_key, run = None, []
        for now, inputs, outputs in pending:
            flats = self._flats(inputs, outputs)
            if flats is None:
                continue
            key = tuple((name, flat.shape[1]) for name, flat in flats)
            if key != run_key and run:
                self._append_run(run)
                run = []
            run_key = key
            run.append((now, flats))
        if run:
            self._append_run(run)

    def _flats(self, inputs, outputs) -> list[tuple[str, np.ndarray]] | None:
        """The request's monitored tensors as [rows, values] arrays; None if not batch-major."""
        flats, rows = [], None
        for tensors in (inputs, outputs):
            items = tensors.items() if isinstance(tensors, Mapping) else \
                ((t.name, t) for t in tensors)
            for name, tensor in items:
                if name not in self._by_tensor:
                    continue
                array = as_array(tensor) if isinstance(tensor, RawTensor) else np.asarray(tensor)
                flat = array.reshape(array.shape[0], -1) if array.ndim >= 1 else array.reshape(1, 1)
                if rows is None:
                    rows = flat.shape[0]
                if flat.shape[0] != rows:
                    return None  # not batch-major: cannot attribute rows
                flats.append((name, flat))
        return flats or None

    def _append_run(self, run: list[tuple[float, list[tuple[str, np.ndarray]]]]) -> None:
        """Requests with the same tensors: one matrix for all of them, one copy into the window."""
        counts = [flats[0][1].shape[0] for _, flats in run]
        rows = np.full((sum(counts), len(self.features)), np.nan)
        for position, (name, _) in enumerate(run[0][1]):
            block = run[0][1][position][1] if len(run) == 1 else np.concatenate(
                [flats[position][1] for _, flats in run])
            for column, index in self._by_tensor[name]:
                if index < block.shape[1]:
                    rows[:, column] = block[:, index]
        times = np.repeat(np.fromiter((now for now, _ in run), np.float64, len(run)), counts)
        self.window.append(rows, times)

    def due(self) -> bool:
        return time.monotonic() - self.last_evaluation >= self.thresholds.evaluation_interval_s

    def report(self) -> DriftReport:
        self.flush()
        self.last_evaluation = time.monotonic()
        t = self.thresholds
        base = dict(deployment=self.deployment, model=self.model, version=self.version,
                    window_size=t.window_size, thresholds=t)
        if t.disabled:
            return DriftReport(**base, unavailable_reason="drift monitoring is disabled for "
                               "this deployment")
        if not self.references:
            return DriftReport(**base, unavailable_reason=f"parameters version {self.version} of "
                               f"{self.model!r} has no reference distributions")
        if not self.features:
            return DriftReport(**base, unavailable_reason="the signature has no numeric features")
        values = self.window.values()
        span = self.window.time_span()
        features = [self._feature(f, values[:, column]) for column, f in enumerate(self.features)]
        ref_counts = [f.reference.count for f in self.features if f.reference and f.reference.count]
        return DriftReport(
            **base, available=True, window_samples=self.window.size,
            window_start_time=_ts(span[0] if span else None),
            window_end_time=_ts(span[1] if span else None),
            reference_sample_count=max(ref_counts, default=0),
            drifting=any(f.psi_exceeded or f.ks_exceeded for f in features),
            features=tuple(features))

    def _feature(self, f: Feature, column: np.ndarray) -> FeatureDrift:
        column = column[np.isfinite(column)]
        out = FeatureDrift(kind=f.kind, tensor=f.tensor, index=f.index, feature=f.name,
                           sample_count=int(column.size))
        if f.reference is None or len(f.reference.bin_edges) < 2:
            out.unavailable_reason = "no reference distribution for this feature"
            return out
        if column.size < self.thresholds.min_samples:
            out.unavailable_reason = (f"{column.size} samples in the window, fewer than "
                                      f"min_samples {self.thresholds.min_samples}")
            return out
        try:
            out.psi = stats.psi(f.reference.bin_edges, f.reference.counts, column)
            out.ks_statistic, out.ks_p_value = stats.ks(
                f.reference.bin_edges, f.reference.counts, column, f.reference.count)
        except ValueError as exc:
            out.unavailable_reason = f"reference unusable: {exc}"
            return out
        out.available = True
        out.psi_exceeded = out.psi > self.thresholds.psi
        out.ks_exceeded = out.ks_statistic > self.thresholds.ks_statistic
        return out


def as_array(tensor: RawTensor) -> np.ndarray:
    """A read-only numpy view of a raw tensor's bytes."""
    return np.frombuffer(tensor.data, dtype=DTYPES[tensor.dtype]).reshape(tensor.shape)
