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
XGBOOST_TARGET_OPSET = 15  # the highest onnxmltools' XGBoost converter supports

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
    events_compared: int
    max_abs_difference: float
    tolerance: float
    passed: bool

    def to_dict(self) -> dict:
        return dict(events_compared=self.events_compared, max_abs_difference=self.max_abs_difference,
                    tolerance=self.tolerance, passed=self.passed)


def compare(native: np.ndarray, onnx_out: np.ndarray, tolerance: float) -> OnnxCheck:
    """ONNX vs native predictions. A value passes when ``|onnx - native| <= tolerance * max(1,
    |native|)``: absolute for probabilities and small values, relative for large regression
    targets (ONNX computes in float32)."""
    native = np.asarray(native, dtype=np.float64)
    other = np.asarray(onnx_out, dtype=np.float64)
    if native.ndim == 2 and native.shape[1] == 1:
        native = native.reshape(-1)
    if other.shape != native.shape:
        return OnnxCheck(len(native), float("inf"), tolerance, False)
    diff = np.abs(other - native)
    allowed = tolerance * np.maximum(1.0, np.abs(native))
    finite = np.isfinite(diff)
    passed = bool(finite.all() and (diff <= allowed).all())
    max_diff = float(diff.max()) if diff.size else 0.0
    return OnnxCheck(len(native), max_diff, tolerance, passed)
