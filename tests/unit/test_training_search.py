"""Hyperparameter search: validation (fields named), grid expansion, reproducible random sampling,
and the choice of the best trial."""

from __future__ import annotations

import pytest

from beamops.runtime.errors import InvalidArgument
from beamops.training.search import (SearchParameter, SearchSpec, best_trial, expand_trials,
                                     validate_search)
from beamops.training.spec import DatasetRef, ModelChoice, TrainingSpec, validate_spec

GBT_METRICS = ("rmse", "r2")


def grid(*params, **kw) -> SearchSpec:
    return SearchSpec(algorithm="grid", parameters=tuple(params), **kw)


def rand(*params, num_trials=8, **kw) -> SearchSpec:
    return SearchSpec(algorithm="random", parameters=tuple(params), num_trials=num_trials, **kw)


def check(search: SearchSpec, builtin="gradient_boosted_trees", metrics=GBT_METRICS, max_trials=256):
    return validate_search(search, builtin=builtin, metrics=metrics, max_trials=max_trials)


def test_a_grid_expands_to_every_combination_in_order_over_the_base_hyperparameters():
    search = check(grid(SearchParameter("max_depth", values=(2.0, 4.0)),
                        SearchParameter("learning_rate", values=(0.05, 0.2, 0.5))))
    base = {"max_iter": 20, "max_depth": None, "learning_rate": 0.1, "l2_regularization": 0.0}
    trials = expand_trials(search, base, seed=1)
    assert [(t["max_depth"], t["learning_rate"]) for t in trials] == [
        (2, 0.05), (2, 0.2), (2, 0.5), (4, 0.05), (4, 0.2), (4, 0.5)]
    assert all(t["max_iter"] == 20 and t["l2_regularization"] == 0.0 for t in trials)
    assert isinstance(trials[0]["max_depth"], int)  # Struct numbers are floats: made ints
    assert search.trial_count == 6
    assert search.objective_metric == "rmse" and search.direction == "minimize"  # defaults


def test_random_sampling_is_reproducible_with_the_seed_and_stays_in_range():
    search = check(rand(SearchParameter("learning_rate", low=1e-3, high=0.5, log_scale=True),
                        SearchParameter("max_leaf_nodes", low=4, high=64),
                        SearchParameter("max_depth", values=(3, 6, None)), num_trials=20),
                   metrics=("roc_auc", "accuracy"))
    first = expand_trials(search, {"max_iter": 10}, seed=42)
    again = expand_trials(search, {"max_iter": 10}, seed=42)
    other = expand_trials(search, {"max_iter": 10}, seed=43)
    assert first == again and len(first) == 20
    assert first != other
    assert all(1e-3 <= t["learning_rate"] <= 0.5 for t in first)
    assert all(isinstance(t["max_leaf_nodes"], int) and 4 <= t["max_leaf_nodes"] <= 64 for t in first)
    assert {t["max_depth"] for t in first} <= {3, 6, None} and len({t["max_depth"] for t in first}) > 1
    assert len({t["learning_rate"] for t in first}) == 20
    assert search.direction == "maximize"  # roc_auc: higher is better


def test_the_first_random_trials_are_pinned_so_a_numpy_change_would_be_noticed():
    search = check(rand(SearchParameter("alpha", low=0.0, high=1.0), num_trials=2), builtin="mlp")
    values = [t["alpha"] for t in expand_trials(search, {}, seed=7)]
    assert values == pytest.approx([0.625095466605, 0.89721380097], abs=1e-11)


def test_a_search_round_trips_through_the_spec_json():
    spec = validate_spec(TrainingSpec(
        features=("x",), label_branch="y", dataset=DatasetRef("d", "v1"), seed=3,
        model=ModelChoice(builtin="mlp", task="regression"),
        search=rand(SearchParameter("hidden_layer_sizes", values=([8], [16, 8])),
                    SearchParameter("alpha", low=1e-5, high=1e-2, log_scale=True), num_trials=4)))
    assert TrainingSpec.from_json(spec.to_json()) == spec
    assert spec.search.parameters[0].values == ([8], [16, 8])


@pytest.mark.parametrize("search, builtin, field, words", [
    (grid(SearchParameter("max_depht", values=(3,))), "gradient_boosted_trees",
     "spec.search.parameters[0].name", "unknown hyperparameter 'max_depht'"),
    (grid(SearchParameter("max_depth", values=())), "gradient_boosted_trees",
     "spec.search.parameters[0].values", "empty"),
    (grid(), "gradient_boosted_trees", "spec.search.parameters", "search space is empty"),
    (grid(SearchParameter("max_depth", values=(2,)), SearchParameter("max_depth", values=(3,))),
     "gradient_boosted_trees", "spec.search.parameters[1].name", "twice"),
    (grid(SearchParameter("learning_rate", values=(0.1, -1.0))), "gradient_boosted_trees",
     "spec.search.parameters[0].values[1]", "learning_rate"),
    (grid(SearchParameter("learning_rate", low=0.01, high=0.1)), "gradient_boosted_trees",
     "spec.search.parameters[0].values", "explicit values"),
    (rand(SearchParameter("learning_rate", low=0.0, high=0.1, log_scale=True)), "gradient_boosted_trees",
     "spec.search.parameters[0].range", "low > 0"),
    (rand(SearchParameter("learning_rate", low=0.5, high=0.1)), "gradient_boosted_trees",
     "spec.search.parameters[0].range", "above high"),
    (rand(SearchParameter("activation", low=0, high=1)), "mlp",
     "spec.search.parameters[0].range", "explicit values"),
    (rand(SearchParameter("max_bins", low=2, high=1000)), "gradient_boosted_trees",
     "spec.search.parameters[0].range", "max_bins"),
    (rand(SearchParameter("max_depth", values=(2,)), num_trials=0), "gradient_boosted_trees",
     "spec.search.num_trials", "needs num_trials"),
    (rand(SearchParameter("max_depth", values=(2,)), num_trials=300), "gradient_boosted_trees",
     "spec.search.num_trials", "limit of 256"),
    (grid(*(SearchParameter(n, values=tuple(range(2, 9))) for n in ("max_depth", "max_leaf_nodes", "max_bins"))),
     "gradient_boosted_trees", "spec.search.parameters", "343 combinations"),
    (grid(SearchParameter("max_depth", values=(2, 3, 4)), num_trials=2), "gradient_boosted_trees",
     "spec.search.num_trials", "more than num_trials"),
    (grid(SearchParameter("max_depth", values=(2,)), objective_metric="roc_auc"), "gradient_boosted_trees",
     "spec.search.objective_metric", "not one of the job's metrics"),
    (SearchSpec(algorithm="", parameters=(SearchParameter("max_depth", values=(2,)),)), "gradient_boosted_trees",
     "spec.search.algorithm", "choose the search algorithm"),
])
def test_bad_searches_name_the_field(search, builtin, field, words):
    with pytest.raises(InvalidArgument) as exc_info:
        check(search, builtin=builtin)
    assert exc_info.value.field == field
    assert words in exc_info.value.message


def test_user_models_may_search_their_own_hyperparameter_names():
    search = check(grid(SearchParameter("C", values=(0.5, 2.0))), builtin="", metrics=("roc_auc",))
    assert [t["C"] for t in expand_trials(search, {"max_iter": 50}, 1)] == [0.5, 2]


def test_a_search_on_a_spec_is_validated_with_the_spec():
    base = dict(features=("x",), label_branch="y", dataset=DatasetRef("d", "v1"), seed=3,
                model=ModelChoice(builtin="gradient_boosted_trees", task="regression"))
    with pytest.raises(InvalidArgument) as exc_info:
        validate_spec(TrainingSpec(**base, search=grid(SearchParameter("max_iter", values=(5, 10)),
                                                       SearchParameter("nope", values=(1,)))))
    assert exc_info.value.field == "spec.search.parameters[1].name"
    with pytest.raises(InvalidArgument) as exc_info:
        validate_spec(TrainingSpec(**base, search=rand(SearchParameter("max_iter", values=(5, 10)), num_trials=9)),
                      max_trials=8)
    assert exc_info.value.field == "spec.search.num_trials" and "limit of 8" in exc_info.value.message


def test_the_best_trial_follows_the_direction_and_skips_trials_without_the_metric():
    results = {0: {"rmse": 2.0}, 1: {"rmse": 1.5}, 2: {"r2": 0.9}, 3: {"rmse": 1.5}, 4: {"rmse": float("nan")}}
    assert best_trial(results, "rmse", "minimize") == 1  # ties: the first
    assert best_trial(results, "rmse", "maximize") == 0
    assert best_trial({0: {"r2": 0.1}}, "rmse", "minimize") is None
