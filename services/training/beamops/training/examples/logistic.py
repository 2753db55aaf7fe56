"""A user-defined model type: logistic regression with the common model interface.

Use it in a job spec as ``model.entry_point: "beamops.training.examples.logistic:LogisticModel"``.
A model type implements ``fit(data)``, ``predict(inputs)``, ``export_parameters()``,
``load_parameters(params)`` and ``to_onnx(n_features)``, and is built as
``Class(hyperparameters=..., seed=..., task=...)``.
"""

from __future__ import annotations

import numpy as np


class LogisticModel:
    def __init__(self, hyperparameters: dict, seed: int, task: str) -> None:
        if task != "classification":
            raise ValueError("LogisticModel is a classifier")
        self.C = float(hyperparameters.get("C", 1.0))
        self.max_iter = int(hyperparameters.get("max_iter", 200))
        self.seed = seed
        self.model = None

    def _new(self):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        return Pipeline([("scale", StandardScaler()),
                         ("logistic", LogisticRegression(C=self.C, max_iter=self.max_iter,
                                                         random_state=self.seed))])

    def fit(self, data: dict) -> None:
        self.model = self._new()
        self.model.fit(data["X"], data["y"], logistic__sample_weight=data.get("weight"))
        data["report"](1, 1)

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(inputs)

    def export_parameters(self) -> dict:
        scale, logistic = self.model.named_steps["scale"], self.model.named_steps["logistic"]
        return {"mean": scale.mean_.tolist(), "scale": scale.scale_.tolist(),
                "coef": logistic.coef_.tolist(), "intercept": logistic.intercept_.tolist(),
                "classes": logistic.classes_.tolist()}

    def load_parameters(self, params: dict) -> None:
        self.model = self._new()
        scale, logistic = self.model.named_steps["scale"], self.model.named_steps["logistic"]
        scale.mean_, scale.scale_ = np.array(params["mean"]), np.array(params["scale"])
        scale.var_ = scale.scale_ ** 2
        scale.n_features_in_ = len(scale.mean_)
        logistic.coef_, logistic.intercept_ = np.array(params["coef"]), np.array(params["intercept"])
        logistic.classes_ = np.array(params["classes"])
        logistic.n_features_in_ = len(scale.mean_)

    def to_onnx(self, n_features: int) -> bytes:
        from beamops.onnx_export import sklearn_to_onnx

        return sklearn_to_onnx(self.model, n_features)
