"""Built-in and user model kinds on synthetic data: deterministic, and ONNX predicts like native."""

from __future__ import annotations

import numpy as np
import pytest

from beamops.training import hyperparameters as hp
from beamops.onnx_export import OnnxPredictor, compare
from beamops.training.trainers import (TrainingData, TrainingFailure, UserModel, load_entry_point,
                                       make_trainer)


def synthetic(task: str, n: int = 1500, seed: int = 3) -> TrainingData:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    if task == "classification":
        y = (X[:, 0] + X[:, 1] ** 2 + 0.3 * rng.normal(size=n) > 1).astype(np.int64)
        classes = 2
    else:
        y = 50 * X[:, 0] - 20 * X[:, 2] + 91.0
        classes = 0
    return TrainingData(X, y, ["a", "b", "c", "d"], classes=classes)


def fitted(kind: str, task: str, seed: int = 11, **params):
    data = synthetic(task)
    steps: list[tuple[int, int]] = []
    trainer = make_trainer(kind, "", task, hp.check(kind, {"max_iter": 20, **params}, "h"), seed)
    trainer.fit(data, lambda i, total: steps.append((i, total)))
    return trainer, data, steps


@pytest.mark.parametrize("kind", ["gradient_boosted_trees", "mlp"])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_onnx_predictions_match_the_native_model(kind, task):
    trainer, data, steps = fitted(kind, task)
    assert steps[-1] == (20, 20) and len(steps) >= 2
    held_out = synthetic(task, n=500, seed=99).X
    onnx_bytes = trainer.to_onnx(4)
    native = trainer.predict(held_out)
    check = compare(native, OnnxPredictor(onnx_bytes).predict(held_out), 1e-5)
    assert check.passed, check
    assert check.events_compared == 500
    if task == "classification":
        assert native.shape == (500, 2)
        accuracy = (native.argmax(axis=1) == synthetic(task, n=500, seed=99).y).mean()
        assert accuracy > 0.8
    else:
        assert native.shape == (500,)


@pytest.mark.parametrize("kind", ["gradient_boosted_trees", "mlp"])
def test_same_seed_same_model_other_seed_other_model(kind):
    a, data, _ = fitted(kind, "classification", seed=5, **({"max_features": 0.5} if kind != "mlp" else {}))
    b, _, _ = fitted(kind, "classification", seed=5, **({"max_features": 0.5} if kind != "mlp" else {}))
    c, _, _ = fitted(kind, "classification", seed=6, **({"max_features": 0.5} if kind != "mlp" else {}))
    assert np.array_equal(a.predict(data.X), b.predict(data.X))
    assert not np.array_equal(a.predict(data.X), c.predict(data.X))


def test_a_mismatch_beyond_tolerance_fails_the_check():
    native = np.array([[0.2, 0.8], [0.5, 0.5]])
    assert not compare(native, native + 1e-3, 1e-5).passed
    assert compare(native, native + 1e-6, 1e-5).passed
    assert not compare(native, native[:1], 1e-5).passed  # wrong shape
    # large regression values: relative tolerance
    assert compare(np.array([1000.0]), np.array([1000.004]), 1e-5).passed


def test_stopping_from_the_iteration_callback_stops_training():
    data = synthetic("classification")
    trainer = make_trainer("gradient_boosted_trees", "", "classification",
                           hp.check("gradient_boosted_trees", {"max_iter": 100}, "h"), 1)

    class Stop(Exception):
        pass

    seen = []

    def on_iteration(i, total):
        seen.append(i)
        if i >= 10:
            raise Stop()

    with pytest.raises(Stop):
        trainer.fit(data, on_iteration)
    assert seen[-1] < 100


def test_a_user_model_by_entry_point_trains_and_exports():
    data = synthetic("classification")
    trainer = make_trainer("", "beamops.training.examples.logistic:LogisticModel", "classification",
                           {"C": 0.5}, 3)
    assert isinstance(trainer, UserModel)
    trainer.fit(data, lambda i, t: None)
    onnx_bytes = trainer.to_onnx(4)
    assert compare(trainer.predict(data.X), OnnxPredictor(onnx_bytes).predict(data.X), 1e-5).passed
    params = trainer.export_parameters()
    again = load_entry_point("beamops.training.examples.logistic:LogisticModel")(
        hyperparameters={}, seed=3, task="classification")
    again.load_parameters(params)
    assert np.allclose(again.predict(data.X), trainer.predict(data.X))


@pytest.mark.parametrize("entry_point, words", [
    ("beamops.training.nosuchmodule:X", "cannot import"),
    ("beamops.training.spec:NoSuchClass", "has no class"),
    ("beamops.training.spec:DatasetRef", "does not implement the model interface"),
])
def test_bad_entry_points_fail_with_a_clear_message(entry_point, words):
    with pytest.raises(TrainingFailure) as exc_info:
        load_entry_point(entry_point)
    assert words in str(exc_info.value)
