"""YAML job specs: load_job_spec maps YAML onto JobSpec, with short enum names and durations,
and every mistake names the key at fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from beamops.errors import InvalidArgumentError
from beamops.job_spec import JobSpecError, load_job_spec
from beamops.training.v1 import job_pb2

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jobs" / "zmumu_gbt.yaml"

SEARCH = """
dataset: {dataset: sig, version_id: dsv-0123456789abcdef}
feature_branches: [met, ht]
label_branch: is_signal
model:
  builtin: BUILTIN_MODEL_MLP
  task: classification
  hyperparameters: {hidden_layer_sizes: [16, 8], activation: tanh}
metrics: [roc_auc]
timeout: 2h
search:
  algorithm: random
  num_trials: 12
  maxParallelTrials: 3
  direction: maximize
  parameters:
    - name: alpha
      range: {low: 1.0e-5, high: 1.0e-2, log_scale: true}
    - name: hidden_layer_sizes
      values: [[8], [16, 8]]
"""


def test_the_example_file_is_a_complete_spec_for_the_real_zmumu_file():
    spec = load_job_spec(EXAMPLE)
    assert spec.dataset.dataset == "zmumu" and spec.dataset.version_id.startswith("dsv-")
    assert list(spec.feature_branches) == ["E1", "px1", "py1", "pz1", "E2", "px2", "py2", "pz2"]
    assert spec.label_branch == "M"
    assert spec.model.builtin == job_pb2.BUILTIN_MODEL_GRADIENT_BOOSTED_TREES
    assert spec.model.task == job_pb2.TASK_REGRESSION
    assert spec.model.hyperparameters["max_iter"] == 60
    assert spec.executor == job_pb2.EXECUTOR_LOCAL and spec.timeout.seconds == 1800
    assert (spec.publish.model_type.model, spec.publish.model_type.version) == ("zmumu-mass", "1.0.0")
    assert load_job_spec(str(EXAMPLE)) == spec == load_job_spec(EXAMPLE.read_text())


def test_a_search_spec_with_short_enums_camel_case_and_free_form_values():
    spec = load_job_spec(SEARCH)
    assert spec.model.builtin == job_pb2.BUILTIN_MODEL_MLP and spec.model.task == job_pb2.TASK_CLASSIFICATION
    assert list(spec.model.hyperparameters["hidden_layer_sizes"]) == [16, 8]
    assert spec.timeout.seconds == 7200
    s = spec.search
    assert (s.algorithm, s.num_trials, s.max_parallel_trials, s.direction) == (
        job_pb2.SEARCH_ALGORITHM_RANDOM, 12, 3, job_pb2.OBJECTIVE_DIRECTION_MAXIMIZE)
    assert s.parameters[0].WhichOneof("domain") == "range" and s.parameters[0].range.log_scale
    assert [list(v) for v in s.parameters[1].values] == [[8], [16, 8]]
    assert load_job_spec({"feature_branches": ["a"], "seed": 3}).seed == 3  # a loaded mapping


@pytest.mark.parametrize("text, field, words", [
    ("feature_branche: [a]", "feature_branche", "did you mean 'feature_branches'"),
    ("model: {builtin: gbt}", "model.builtin", "choose one of gradient_boosted_trees, mlp"),
    ("model: {task: regresion}", "model.task", "regression"),
    ("search: {parameters: [{name: x, rnage: {low: 1}}]}", "search.parameters[0].rnage", "did you mean 'range'"),
    ("seed: forty-two", "seed", "whole number"),
    ("feature_branches: met", "feature_branches", "must be a list"),
    ("model: {builtin: mlp, entry_point: 'a.b:C'}", "model.entry_point", "set only one of builtin, entry_point"),
    ("timeout: soon", "timeout", "duration like 90s"),
    ("onnx_tolerance: small", "onnx_tolerance", "must be a number"),
    ("dataset: zmumu", "dataset", "mapping of DatasetVersionRef"),
    ("publish: {model_type: {version: 1}}", "publish.model_type.version", "must be text"),
])
def test_mistakes_name_the_key(text, field, words):
    with pytest.raises(JobSpecError) as exc_info:
        load_job_spec(text)
    assert exc_info.value.field == field
    assert words in str(exc_info.value) and str(exc_info.value).startswith(f"{field}: ")
    assert isinstance(exc_info.value, InvalidArgumentError)  # the CLI reports it as bad input


def test_not_yaml_or_not_a_mapping_or_a_missing_file_is_a_clear_error():
    with pytest.raises(JobSpecError, match="not valid YAML at line 3"):
        load_job_spec("seed: 1\nmodel: {builtin: x\n  task: ]\n")
    with pytest.raises(JobSpecError, match="must be a mapping"):
        load_job_spec("- a\n- b\n")
    with pytest.raises(JobSpecError, match="no such file"):
        load_job_spec("examples/jobs/does_not_exist.yaml")
    with pytest.raises(JobSpecError, match="cannot read"):
        load_job_spec(Path("/nonexistent/spec.yaml"))
