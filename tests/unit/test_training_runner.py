"""One training run with data from a fake loader: metrics, ONNX check, lineage, distributions."""

from __future__ import annotations

import numpy as np
import pytest

from beamops.training.runner import JobCancelled, run_training
from beamops.training.spec import DatasetRef, ModelChoice, SourceClass, TrainingSpec, validate_spec


def loader():
    n_by_split = {"train": 1200, "validation": 300, "test": 300}
    calls = []

    def load(ref: DatasetRef, split: str, branches: list[str], pad: int):
        calls.append((ref.dataset, split, tuple(branches)))
        rng = np.random.default_rng(hash((ref.dataset, split)) % 2**32)
        n = n_by_split[split]
        shift = 1.0 if ref.dataset == "signal" else 0.0
        cols = {"x": rng.normal(shift, 1, n), "y": rng.normal(size=n).astype(np.float32)}
        cols["label"] = (cols["x"] + cols["y"] > 0.5).astype(np.int32)
        cols["target"] = 3 * cols["x"] - cols["y"]
        return {b: cols[b] for b in branches}, f"hash-{ref.dataset}"

    return load, calls


def make_spec(**changes) -> TrainingSpec:
    base = dict(features=("x", "y"), label_branch="label", dataset=DatasetRef("d", "v1", "hash-d"),
                model=ModelChoice(builtin="gradient_boosted_trees", task="classification",
                                  hyperparameters={"max_iter": 15}), seed=4)
    base.update(changes)
    return validate_spec(TrainingSpec(**base))


def test_a_classification_run_reports_metrics_and_lineage():
    load, calls = loader()
    events = []
    out = run_training("job-1", make_spec(), load, events.append, lambda: False)
    r = out.result
    test_auc = [m for m in r["metrics"] if m["split"] == "test" and m["name"] == "roc_auc"][0]["value"]
    assert test_auc > 0.9
    assert r["onnx_check"]["passed"] and r["onnx_check"]["events_compared"] == 300
    assert [d["split"] for d in r["datasets"]] == ["train", "validation", "test"]
    assert all(d["content_hash"] == "hash-d" for d in r["datasets"])
    assert r["seed"] == 4 and r["hyperparameters"]["max_iter"] == 15
    assert "scikit-learn" in r["environment"]["packages"]
    assert r["code"]  # git commit or package
    names = [d["feature"] for d in r["reference_distributions"]]
    assert names == ["x", "y", "output:probabilities[0]", "output:probabilities[1]"]
    dist = r["reference_distributions"][0]
    assert sum(dist["counts"]) == 1200 and len(dist["bin_edges"]) == len(dist["counts"]) + 1
    assert out.predictions.shape == (300, 2) and out.predictions.dtype == np.float32
    kinds = {e["type"] for e in events}
    assert {"progress", "metric", "log"} <= kinds
    assert calls[0] == ("d", "train", ("x", "y", "label"))


def test_the_same_run_twice_gives_identical_predictions():
    a = run_training("j", make_spec(), loader()[0], lambda e: None, lambda: False)
    b = run_training("j", make_spec(), loader()[0], lambda e: None, lambda: False)
    assert a.result["predictions_sha256"] == b.result["predictions_sha256"]
    assert a.result["onnx_sha256"] == b.result["onnx_sha256"]


def test_regression_with_an_mlp():
    spec = make_spec(label_branch="target", model=ModelChoice(builtin="mlp", task="regression",
                                                              hyperparameters={"max_iter": 30}))
    out = run_training("j", spec, loader()[0], lambda e: None, lambda: False)
    r2 = [m for m in out.result["metrics"] if m["split"] == "test" and m["name"] == "r2"][0]["value"]
    assert r2 > 0.9
    assert out.result["reference_distributions"][-1]["feature"] == "output:variable"


def test_source_classes_label_events_by_dataset():
    spec = make_spec(label_branch="", dataset=None, source_classes=(
        SourceClass(DatasetRef("signal", "v1"), 1, "signal"), SourceClass(DatasetRef("background", "v1"), 0)))
    out = run_training("j", spec, loader()[0], lambda e: None, lambda: False)
    assert len(out.result["datasets"]) == 6
    assert out.predictions.shape == (600, 2)


def test_cancellation_between_iterations():
    asked = {"n": 0}

    def should_stop():
        asked["n"] += 1
        return asked["n"] > 3

    with pytest.raises(JobCancelled):
        run_training("j", make_spec(), loader()[0], lambda e: None, should_stop)


def test_a_label_that_is_not_a_class_index_fails_clearly():
    from beamops.training.trainers import TrainingFailure

    spec = make_spec(label_branch="target")
    with pytest.raises(TrainingFailure) as exc_info:
        run_training("j", spec, loader()[0], lambda e: None, lambda: False)
    assert "class indices" in str(exc_info.value)
