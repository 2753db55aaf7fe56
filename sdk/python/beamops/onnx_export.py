"""ONNX export (skl2onnx) and the check that ONNX Runtime predicts what the native model does.

Every exported model has one input, ``input``: float32 ``[N, features]``. Classifiers give
``label`` (int64) and ``probabilities`` (float32 ``[N, classes]``, no ZipMap); regressors give
``variable`` (float32 ``[N, 1]``).

skl2onnx 1.20 fails on scikit-learn's HistGradientBoosting trees (it writes a Python bool into
an integer attribute for leaves); :func:`_patch_skl2onnx_hist_gbt` makes it write 0/1 instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INPUT_NAME = "input"
TARGET_OPSET = 17
XGBOOST_TARGET_OPSET = 15  # the highest onnxmltools' XGBoost and LightGBM converters support

_patched = False


def _patch_skl2onnx_hist_gbt() -> None:
    global _patched
    if _patched:
        return
    from skl2onnx.common import tree_ensemble

    original = tree_ensemble.add_node

    def add_node(*args, nodes_missing_value_tracks_true=0, **kwargs):
        return original(*args, nodes_missing_value_tracks_true=int(nodes_missing_value_tracks_true), **kwargs)

    tree_ensemble.add_node = add_node
    _patched = True


def sklearn_to_onnx(estimator, n_features: int) -> bytes:
    """A fitted scikit-learn estimator or pipeline as ONNX bytes (checked with onnx.checker)."""
    import onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    _patch_skl2onnx_hist_gbt()
    options = {"zipmap": False} if hasattr(estimator, "predict_proba") else None
    model = convert_sklearn(
        estimator,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        options={id(estimator): options} if options else None,
        target_opset=TARGET_OPSET,
    )
    model.graph.name = "beamops_model"  # skl2onnx picks a random one: keep exports byte-identical
    onnx.checker.check_model(model)
    return model.SerializeToString()


def xgboost_to_onnx(model, n_features: int) -> bytes:
    """A fitted XGBoost scikit-learn model (XGBClassifier, XGBRegressor) as ONNX bytes."""
    import onnx
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    converted = onnxmltools.convert_xgboost(
        model, initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset=XGBOOST_TARGET_OPSET)
    converted.graph.name = "beamops_model"
    onnx.checker.check_model(converted)
    return converted.SerializeToString()


def lightgbm_to_onnx(model, n_features: int) -> bytes:
    """A fitted LightGBM scikit-learn model (LGBMClassifier, LGBMRegressor) as ONNX bytes; a
    classifier gives ``probabilities`` as a tensor (no ZipMap)."""
    import onnx
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    options = {"zipmap": False} if hasattr(model, "predict_proba") else {}
    converted = onnxmltools.convert_lightgbm(
        model, initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset=XGBOOST_TARGET_OPSET, **options)
    converted.graph.name = "beamops_model"
    onnx.checker.check_model(converted)
    return converted.SerializeToString()


class OnnxPredictor:
    """Runs an ONNX model with ONNX Runtime on CPU; predicts like the native model. A model that
    stores tensors as external data is refused (``ExternalDataError``, a ValueError) first."""

    def __init__(self, onnx_bytes: bytes) -> None:
        import onnxruntime as ort

        from .onnx_external import load_self_contained

        load_self_contained(onnx_bytes, "the exported ONNX model")

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        names = [o.name for o in self.session.get_outputs()]
        self.output = "probabilities" if "probabilities" in names else names[0]

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = self.session.run([self.output], {self.input: np.ascontiguousarray(X, dtype=np.float32)})[0]
        out = np.asarray(out)
        return out.reshape(len(X)) if out.ndim == 2 and out.shape[1] == 1 else out


@dataclass(frozen=True)
class OnnxCheck:
    """The outcome of :func:`compare`; ``worst_*`` name the output nearest to (or furthest beyond)
    its allowed difference: its event index, output column, native and ONNX values."""

    events_compared: int
    max_abs_difference: float
    tolerance: float
    passed: bool
    relative_tolerance: float = 0.0
    output_scale: float = 1.0
    worst_event: int = -1
    worst_output: int = 0
    worst_native: float = 0.0
    worst_onnx: float = 0.0

    @property
    def allowed(self) -> float:
        """The difference allowed at the worst output."""
        return self.tolerance * self.output_scale + self.relative_tolerance * abs(self.worst_native)

    def to_dict(self) -> dict:
        return dict(events_compared=self.events_compared, max_abs_difference=self.max_abs_difference,
                    tolerance=self.tolerance, passed=self.passed, relative_tolerance=self.relative_tolerance,
                    output_scale=self.output_scale, worst_event=self.worst_event,
                    worst_output=self.worst_output, worst_native=self.worst_native, worst_onnx=self.worst_onnx)


def compare(native: np.ndarray, onnx_out: np.ndarray, tolerance: float,
            relative_tolerance: float | None = None) -> OnnxCheck:
    """ONNX vs native predictions, numpy.isclose-style with the absolute part scaled to the outputs:
    an output passes when ``|onnx - native| <= tolerance * scale + relative_tolerance * |native|``,
    ``scale`` being the largest ``|native|`` compared (at least 1). ONNX Runtime computes in float32,
    whose rounding grows with the size of the numbers summed (a tree ensemble adds up leaves of the
    size of the outputs), so an absolute tolerance must be in units of the outputs: 1e-5 accepts
    float32 rounding of 90 GeV masses as of probabilities. ``relative_tolerance`` None: the same as
    ``tolerance``."""
    rtol = tolerance if relative_tolerance is None else relative_tolerance
    native = np.asarray(native, dtype=np.float64)
    other = np.asarray(onnx_out, dtype=np.float64)
    if native.ndim == 2 and native.shape[1] == 1:
        native = native.reshape(-1)
    if other.ndim == 2 and other.shape[1] == 1 and native.ndim == 1:
        other = other.reshape(-1)
    if other.shape != native.shape:
        return OnnxCheck(len(native), float("inf"), tolerance, False, rtol)
    if native.size == 0:
        return OnnxCheck(0, 0.0, tolerance, True, rtol)
    finite_native = np.abs(native[np.isfinite(native)])
    scale = max(1.0, float(finite_native.max()) if finite_native.size else 1.0)
    diff = np.abs(other - native)
    allowed = tolerance * scale + rtol * np.abs(native)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(np.isfinite(diff), diff / np.where(allowed > 0, allowed, np.finfo(float).tiny), np.inf)
    ratio = np.where(np.isnan(ratio), np.inf, ratio)
    flat = int(np.argmax(ratio.reshape(-1)))
    row, column = divmod(flat, native.shape[1]) if native.ndim == 2 else (flat, 0)
    passed = bool(np.isfinite(diff).all() and (diff <= allowed).all())
    max_diff = float(np.nanmax(np.where(np.isfinite(diff), diff, np.inf)))
    return OnnxCheck(len(native), max_diff, tolerance, passed, rtol, scale, int(row), int(column),
                     float(native.reshape(-1)[flat]), float(other.reshape(-1)[flat]))
