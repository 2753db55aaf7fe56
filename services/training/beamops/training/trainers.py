"""Model kinds the worker trains: built-in scikit-learn models and user models by entry point.

Every kind is used through :class:`Trainer`: ``fit`` (calling ``on_iteration(i, total)`` after
each boosting round chunk or epoch, which may raise to stop), ``predict`` (class probabilities
``(n, classes)`` for classification, values ``(n,)`` for regression), ``to_onnx`` (the ONNX
model bytes, input ``float32 [N, features]``) and ``hyperparameters`` (the values used).

Built-in kinds are deterministic for a given seed and data: the same job gives the same model.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from .spec import check_entry_point

OnIteration = Callable[[int, int], None]


class TrainingFailure(Exception):
    """The job cannot go on; the message is meant for the physicist who submitted it."""


@dataclass
class TrainingData:
    """Inputs of ``fit``: float32 features, labels, optional weights, optional validation set."""

    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    weight: np.ndarray | None = None
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    classes: int = 0  # number of classes (classification), 0 for regression
    extra: dict[str, Any] = field(default_factory=dict)


class Trainer:
    kind: str = ""
    task: str = ""
    framework: str = "sklearn"

    def fit(self, data: TrainingData, on_iteration: OnIteration) -> None:
        raise NotImplementedError

    def predict(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def to_onnx(self, n_features: int) -> bytes:
        raise NotImplementedError

    @property
    def hyperparameters(self) -> dict[str, Any]:
        raise NotImplementedError


class GradientBoostedTrees(Trainer):
    """scikit-learn's histogram gradient boosting, fitted in warm-started chunks of rounds."""

    kind = "gradient_boosted_trees"

    def __init__(self, task: str, hyperparameters: Mapping[str, Any], seed: int) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        self.task = task
        self._params = dict(hyperparameters)
        cls = HistGradientBoostingClassifier if task == "classification" else HistGradientBoostingRegressor
        self.model = cls(**self._params, early_stopping=False, random_state=seed, warm_start=True)

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return dict(self._params)

    def fit(self, data: TrainingData, on_iteration: OnIteration) -> None:
        total = int(self._params["max_iter"])
        step = max(1, math.ceil(total / 20))
        done = 0
        while done < total:
            done = min(total, done + step)
            self.model.set_params(max_iter=done)
            self.model.fit(data.X, data.y, sample_weight=data.weight)
            on_iteration(done, total)

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.task == "classification":
            return self.model.predict_proba(X)
        return self.model.predict(X)

    def to_onnx(self, n_features: int) -> bytes:
        from beamops.onnx_export import sklearn_to_onnx

        return sklearn_to_onnx(self.model, n_features)


class MultilayerPerceptron(Trainer):
    """scikit-learn's MLP behind a StandardScaler, one epoch per warm-started fit."""

    kind = "mlp"

    def __init__(self, task: str, hyperparameters: Mapping[str, Any], seed: int) -> None:
        from sklearn.neural_network import MLPClassifier, MLPRegressor
        from sklearn.preprocessing import StandardScaler

        self.task = task
        self.seed = seed
        self._params = dict(hyperparameters)
        params = dict(self._params)
        self.epochs = int(params.pop("max_iter"))
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        cls = MLPClassifier if task == "classification" else MLPRegressor
        self.scaler = StandardScaler()
        self.mlp = cls(**params, max_iter=1, warm_start=True, random_state=seed, early_stopping=False)
        self.loss = float("nan")

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return dict(self._params)

    def fit(self, data: TrainingData, on_iteration: OnIteration) -> None:
        from sklearn.exceptions import ConvergenceWarning

        Xs = self.scaler.fit_transform(data.X, sample_weight=data.weight).astype(np.float32)
        self.mlp.set_params(batch_size=min(int(self._params["batch_size"]), len(Xs)))
        for epoch in range(1, self.epochs + 1):
            # A new shuffling seed per epoch, derived from the job's seed: deterministic.
            self.mlp.set_params(random_state=(self.seed + epoch - 1) % 2**32)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                self.mlp.fit(Xs, data.y, sample_weight=data.weight)
            self.loss = float(self.mlp.loss_)
            if not math.isfinite(self.loss):
                raise TrainingFailure(f"the MLP diverged at epoch {epoch} (loss is {self.loss}); "
                                      "lower learning_rate_init")
            on_iteration(epoch, self.epochs)

    def pipeline(self):
        from sklearn.pipeline import Pipeline

        return Pipeline([("scale", self.scaler), ("mlp", self.mlp)])

    def predict(self, X: np.ndarray) -> np.ndarray:
        Xs = self.scaler.transform(X).astype(np.float32)
        if self.task == "classification":
            return self.mlp.predict_proba(Xs)
        return self.mlp.predict(Xs)

    def to_onnx(self, n_features: int) -> bytes:
        from beamops.onnx_export import sklearn_to_onnx

        return sklearn_to_onnx(self.pipeline(), n_features)


class _BoostingLibrary(Trainer):
    """XGBoost and LightGBM through their scikit-learn API: progress and cancellation from a
    callback after each boosting round, sample weights passed on."""

    def __init__(self, task: str, hyperparameters: Mapping[str, Any], seed: int) -> None:
        self.task = task
        self.seed = seed
        self._params = dict(hyperparameters)
        self.model = self._make(task, dict(self._params), seed)
        self._live = None  # the library's booster while fit runs (progress metrics predict with it)
        self._fitted = False

    def _make(self, task: str, params: dict[str, Any], seed: int):
        raise NotImplementedError

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return dict(self._params)

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not self._fitted and self._live is not None:
            return self._live_predict(X)
        if self.task == "classification":
            return np.asarray(self.model.predict_proba(X))
        return np.asarray(self.model.predict(X))

    def _live_predict(self, X: np.ndarray) -> np.ndarray:
        out = np.asarray(self._raw_live_predict(X), dtype=np.float64)
        if self.task == "classification" and out.ndim == 1:  # binary: probability of class 1
            return np.column_stack([1.0 - out, out])
        return out

    def _raw_live_predict(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class XGBoostTrees(_BoostingLibrary):
    """``xgboost.XGBClassifier`` / ``XGBRegressor`` (hist), deterministic for a seed."""

    kind = "xgboost"
    framework = "xgboost"

    def _make(self, task: str, params: dict[str, Any], seed: int):
        import xgboost

        cls = xgboost.XGBClassifier if task == "classification" else xgboost.XGBRegressor
        return cls(**params, tree_method="hist", random_state=seed, n_jobs=1)

    def fit(self, data: TrainingData, on_iteration: OnIteration) -> None:
        import xgboost

        total = int(self._params["n_estimators"])

        trainer = self

        class Report(xgboost.callback.TrainingCallback):
            def after_iteration(self, model, epoch, evals_log) -> bool:
                trainer._live = model
                on_iteration(epoch + 1, total)
                return False

        self.model.set_params(callbacks=[Report()])
        try:
            self.model.fit(data.X, data.y, sample_weight=data.weight, verbose=False)
        finally:
            self.model.set_params(callbacks=None)
            self._live = None
        self._fitted = True

    def _raw_live_predict(self, X: np.ndarray) -> np.ndarray:
        return self._live.inplace_predict(X)

    def to_onnx(self, n_features: int) -> bytes:
        from beamops.onnx_export import xgboost_to_onnx

        return xgboost_to_onnx(self.model, n_features)


class LightGBMTrees(_BoostingLibrary):
    """``lightgbm.LGBMClassifier`` / ``LGBMRegressor``, deterministic for a seed (one thread,
    LightGBM's deterministic mode)."""

    kind = "lightgbm"
    framework = "lightgbm"

    def _make(self, task: str, params: dict[str, Any], seed: int):
        import lightgbm

        params["max_depth"] = -1 if params.get("max_depth") is None else params["max_depth"]
        if params.get("subsample", 1.0) < 1.0:
            params["subsample_freq"] = 1  # LightGBM bags only with a frequency set
        cls = lightgbm.LGBMClassifier if task == "classification" else lightgbm.LGBMRegressor
        return cls(**params, random_state=seed, n_jobs=1, deterministic=True, force_row_wise=True, verbose=-1)

    def fit(self, data: TrainingData, on_iteration: OnIteration) -> None:
        total = int(self._params["n_estimators"])

        def report(env) -> None:
            self._live = env.model
            on_iteration(env.iteration + 1, total)

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "X does not have valid feature names"
                self.model.fit(data.X, data.y, sample_weight=data.weight, callbacks=[report])
        finally:
            self._live = None
        self._fitted = True

    def _raw_live_predict(self, X: np.ndarray) -> np.ndarray:
        return self._live.predict(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return super().predict(X)

    def to_onnx(self, n_features: int) -> bytes:
        from beamops.onnx_export import lightgbm_to_onnx

        return lightgbm_to_onnx(self.model, n_features)


BUILTINS: dict[str, type[Trainer]] = {
    GradientBoostedTrees.kind: GradientBoostedTrees,
    MultilayerPerceptron.kind: MultilayerPerceptron,
    XGBoostTrees.kind: XGBoostTrees,
    LightGBMTrees.kind: LightGBMTrees,
}

USER_MODEL_METHODS = ("fit", "predict", "export_parameters", "load_parameters", "to_onnx")


class UserModel(Trainer):
    """A model type implementing the common interface, loaded by its ``package.module:Class``.

    The class is built as ``Class(hyperparameters=..., seed=..., task=...)``. ``fit(data)`` gets a
    dict with ``X``, ``y``, ``weight``, ``X_validation``, ``y_validation``, ``feature_names``,
    ``classes`` and ``report(iteration, total)`` (call it to report progress; it raises when the
    job is cancelled). ``predict(inputs)`` returns what ``to_onnx(n_features)``'s first output
    returns (for classification: class probabilities).
    """

    framework = "onnx"

    def __init__(self, entry_point: str, task: str, hyperparameters: Mapping[str, Any], seed: int) -> None:
        self.kind = entry_point
        self.task = task
        self._params = dict(hyperparameters)
        cls = load_entry_point(entry_point)
        try:
            self.model = cls(hyperparameters=dict(hyperparameters), seed=seed, task=task)
        except Exception as exc:  # noqa: BLE001 - user code: report what it said
            raise TrainingFailure(f"{entry_point} could not be created: {type(exc).__name__}: {exc}") from exc

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return dict(self._params)

    def fit(self, data: TrainingData, on_iteration: OnIteration) -> None:
        self.model.fit({
            "X": data.X, "y": data.y, "weight": data.weight, "X_validation": data.X_val,
            "y_validation": data.y_val, "feature_names": list(data.feature_names),
            "classes": data.classes, "report": on_iteration,
        })

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(X))

    def to_onnx(self, n_features: int) -> bytes:
        onnx_model = self.model.to_onnx(n_features)
        return onnx_model if isinstance(onnx_model, bytes) else onnx_model.SerializeToString()

    def export_parameters(self) -> Any:
        return self.model.export_parameters()


def load_entry_point(entry_point: str) -> type:
    """Import ``package.module:Class`` (importlib only) and check it has the interface."""
    check_entry_point(entry_point)
    module_name, _, class_name = entry_point.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TrainingFailure(f"cannot import {module_name!r} for entry point {entry_point!r}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise TrainingFailure(f"module {module_name!r} has no class {class_name!r}")
    missing = [m for m in USER_MODEL_METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise TrainingFailure(f"{entry_point} does not implement the model interface: missing "
                              f"{', '.join(missing)}")
    return cls


def entry_point_module_exists(entry_point: str) -> bool:
    """Whether the entry point's module can be found (its parent packages are imported)."""
    module_name = entry_point.partition(":")[0]
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False


def make_trainer(kind: str, entry_point: str, task: str, hyperparameters: Mapping[str, Any],
                 seed: int) -> Trainer:
    if entry_point:
        return UserModel(entry_point, task, hyperparameters, seed)
    return BUILTINS[kind](task, hyperparameters, seed)
