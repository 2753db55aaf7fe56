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
    rounds = "n_estimators" if kind in ("xgboost", "lightgbm") else "max_iter"
    trainer = make_trainer(kind, "", task, hp.check(kind, {rounds: 20, **params}, "h"), seed)
    trainer.fit(data, lambda i, total: steps.append((i, total)))
    return trainer, data, steps


@pytest.mark.parametrize("kind", ["gradient_boosted_trees", "mlp", "xgboost", "lightgbm"])
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


RANDOMISED = {"gradient_boosted_trees": {"max_features": 0.5}, "mlp": {},
              "xgboost": {"subsample": 0.5, "colsample_bytree": 0.5},
              "lightgbm": {"subsample": 0.5, "colsample_bytree": 0.5}}


@pytest.mark.parametrize("kind", ["gradient_boosted_trees", "mlp", "xgboost", "lightgbm"])
def test_same_seed_same_model_other_seed_other_model(kind):
    a, data, _ = fitted(kind, "classification", seed=5, **RANDOMISED[kind])
    b, _, _ = fitted(kind, "classification", seed=5, **RANDOMISED[kind])
    c, _, _ = fitted(kind, "classification", seed=6, **RANDOMISED[kind])
    assert np.array_equal(a.predict(data.X), b.predict(data.X))
    assert not np.array_equal(a.predict(data.X), c.predict(data.X))


def test_a_mismatch_beyond_tolerance_fails_the_check():
    native = np.array([[0.2, 0.8], [0.5, 0.5]])
    assert not compare(native, native + 1e-3, 1e-5).passed
    assert compare(native, native + 1e-6, 1e-5).passed
    assert not compare(native, native[:1], 1e-5).passed  # wrong shape
    # large regression values: relative tolerance
    assert compare(np.array([1000.0]), np.array([1000.004]), 1e-5).passed


def test_float32_rounding_of_large_outputs_passes_and_a_real_difference_names_the_worst_event():
    # A tree ensemble summed in float32: the rounding is in units of the outputs (~90 GeV), also
    # on events whose own output is small. Absolute 1e-5 per event would refuse it.
    native = np.array([91.2, 88.7, 3.1, 120.4])
    rounded = native + np.array([2e-5, -3e-5, 5.87e-5, 1e-5])
    check = compare(native, rounded, 1e-5, 1e-5)
    assert check.passed and check.output_scale == pytest.approx(120.4)
    wrong = native.copy()
    wrong[2] = 3.9  # a truly different answer for one event
    check = compare(native, wrong, 1e-5, 1e-5)
    assert not check.passed
    assert (check.worst_event, check.worst_native, check.worst_onnx) == (2, 3.1, 3.9)
    probabilities = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    other = probabilities.copy()
    other[1] = [0.7, 0.3]
    check = compare(probabilities, other, 1e-5)
    assert not check.passed and (check.worst_event, check.worst_output) == (1, 1)


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
