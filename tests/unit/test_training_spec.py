"""Job spec validation: every bad input is INVALID_ARGUMENT naming the field, before anything runs."""

from __future__ import annotations

import pytest

from beamops.runtime.errors import InvalidArgument
from beamops.training.spec import (BranchInfo, DatasetInfo, DatasetRef, ModelChoice, PublishTarget,
                                   SourceClass, TrainingSpec, check_against_data, check_entry_point,
                                   validate_spec)

REF = DatasetRef("zmumu", "v1")


def spec(**changes) -> TrainingSpec:
    base = dict(features=("px1", "py1"), label_branch="Q1", dataset=REF,
                model=ModelChoice(builtin="gradient_boosted_trees", task="classification",
                                  hyperparameters={"max_iter": 10.0}), seed=7)
    base.update(changes)
    return TrainingSpec(**base)


def info(**changes) -> DatasetInfo:
    base = dict(dataset="zmumu", version_id="v1", content_hash="sha256:abc",
                branches={"px1": BranchInfo("px1", "float64", "flat"),
                          "py1": BranchInfo("py1", "float64", "flat"),
                          "Q1": BranchInfo("Q1", "int32", "flat"),
                          "name": BranchInfo("name", "", "flat"),
                          "Muon_Px": BranchInfo("Muon_Px", "float32", "jagged")},
                splits={"train": 800, "validation": 100, "test": 100})
    base.update(changes)
    return DatasetInfo(**base)


def field_of(exc_info) -> str:
    return exc_info.value.field


def test_a_good_spec_gets_defaults_and_keeps_the_seed():
    out = validate_spec(spec())
    assert out.seed == 7
    assert out.model.hyperparameters["max_iter"] == 10 and isinstance(out.model.hyperparameters["max_iter"], int)
    assert out.model.hyperparameters["learning_rate"] == 0.1
    assert out.metrics == ("roc_auc", "accuracy", "log_loss")
    assert out.onnx_tolerance == 1e-5


def test_seed_zero_means_the_service_picks_one_and_records_it():
    out = validate_spec(spec(seed=0))
    assert 0 < out.seed < 2**31


@pytest.mark.parametrize("changes, field", [
    (dict(features=()), "spec.feature_branches"),
    (dict(features=("px1", "px1")), "spec.feature_branches[1]"),
    (dict(features=("px1; rm -rf /",)), "spec.feature_branches[0]"),
    (dict(seed=-1), "spec.seed"),
    (dict(metrics=("rmse",)), "spec.metrics[0]"),
    (dict(label_branch="", dataset=REF), "spec.label"),
    (dict(label_branch="px1"), "spec.label_branch"),
    (dict(dataset=DatasetRef("zmumu", "")), "spec.dataset.version_id"),
    (dict(model=ModelChoice(builtin="random_forest", task="classification")), "spec.model.builtin"),
    (dict(model=ModelChoice(builtin="mlp", task="")), "spec.model.task"),
    (dict(model=ModelChoice(task="classification")), "spec.model.kind"),
    (dict(model=ModelChoice(builtin="mlp", task="regression", hyperparameters={"max_depht": 3})),
     "spec.model.hyperparameters.max_depht"),
    (dict(model=ModelChoice(builtin="mlp", task="regression", hyperparameters={"max_iter": 2.5})),
     "spec.model.hyperparameters.max_iter"),
    (dict(model=ModelChoice(builtin="gradient_boosted_trees", task="regression",
                            hyperparameters={"learning_rate": -1})), "spec.model.hyperparameters.learning_rate"),
    (dict(model=ModelChoice(builtin="mlp", task="regression", hyperparameters={"activation": "gelu"})),
     "spec.model.hyperparameters.activation"),
    (dict(publish=PublishTarget("bad name", "1.0.0")), "spec.publish.model_type.model"),
    (dict(publish=PublishTarget("zmm", "1.0")), "spec.publish.model_type.version"),
])
def test_bad_specs_name_the_field(changes, field):
    with pytest.raises(InvalidArgument) as exc_info:
        validate_spec(spec(**changes))
    assert field_of(exc_info) == field
    assert "/" not in exc_info.value.message.replace("'px1; rm -rf /'", "")


def test_source_classes_need_indices_zero_to_n_minus_one():
    classes = (SourceClass(DatasetRef("sig", "v1"), 0), SourceClass(DatasetRef("bkg", "v1"), 2))
    with pytest.raises(InvalidArgument) as exc_info:
        validate_spec(spec(label_branch="", dataset=None, source_classes=classes))
    assert field_of(exc_info) == "spec.source_classes.classes"


@pytest.mark.parametrize("entry_point", ["os.system", "os:system('ls')", "a b:C", "../x:Y", "pkg.mod:",
                                         ":Cls", "pkg.mod:Cls;rm", "pkg-mod:Cls", "x" * 300 + ":Y"])
def test_entry_points_must_be_dotted_identifiers_and_a_class(entry_point):
    with pytest.raises(InvalidArgument) as exc_info:
        check_entry_point(entry_point)
    assert field_of(exc_info) == "spec.model.entry_point"


def test_a_valid_entry_point_that_is_not_installed_is_refused():
    model = ModelChoice(entry_point="nosuchpackage_xyz.models:Net", task="classification")
    with pytest.raises(InvalidArgument) as exc_info:
        validate_spec(spec(model=model), entry_point_exists=lambda ep: False)
    assert "not installed" in exc_info.value.message
    assert check_entry_point("beamops.training.examples.logistic:LogisticModel")


def test_check_against_data_pins_the_content_hash():
    out = check_against_data(validate_spec(spec()), {("zmumu", "v1"): info()})
    assert out.dataset == DatasetRef("zmumu", "v1", "sha256:abc")
    assert out.splits.use_validation


@pytest.mark.parametrize("changes, data, field, words", [
    (dict(features=("px1", "nope")), {}, "spec.feature_branches[1]", "no branch 'nope'"),
    (dict(features=("px1", "name")), {}, "spec.feature_branches[1]", "not numeric"),
    (dict(label_branch="name"), {}, "spec.label_branch", "not numeric"),
    (dict(features=("Muon_Px",)), {}, "spec.feature_branches[0]", "jagged"),
    (dict(), dict(splits={}), "spec.dataset.version_id", "not split"),
    (dict(), dict(splits={"train": 10, "validation": 0, "test": 0}), "spec.splits.test", "is empty"),
])
def test_check_against_data_refuses_unknown_or_non_numeric_branches_and_empty_splits(changes, data, field, words):
    with pytest.raises(InvalidArgument) as exc_info:
        check_against_data(validate_spec(spec(**changes)), {("zmumu", "v1"): info(**data)})
    assert field_of(exc_info) == field
    assert words in exc_info.value.message


def test_an_implicit_validation_split_may_be_missing_but_a_named_one_may_not():
    data = {("zmumu", "v1"): info(splits={"train": 10, "test": 5})}
    out = check_against_data(validate_spec(spec()), data)
    assert not out.splits.use_validation
    with pytest.raises(InvalidArgument) as exc_info:
        check_against_data(validate_spec(spec()), data, splits_named=(False, True, False))
    assert field_of(exc_info) == "spec.splits.validation"


def test_the_spec_round_trips_through_json():
    out = check_against_data(validate_spec(spec(publish=PublishTarget("zmm", "1.0.0"))),
                             {("zmumu", "v1"): info()})
    assert TrainingSpec.from_json(out.to_json()) == out
