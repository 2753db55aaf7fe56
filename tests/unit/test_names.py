"""One name rule for every resource kind (beamops.runtime.names): case-sensitive, kept as typed,
1 to 100 ASCII letters, digits, '.', '_', '-', starting with a letter or digit, no '..'."""

from __future__ import annotations

import pytest

from beamops.data.catalog import check_dataset_name
from beamops.inference.control.deployments import _validate
from beamops.inference.domain import DeployCommand, Target, TargetKind
from beamops.inference.triton.repository import is_triton_name_of, triton_name
from beamops.registry.names import check_name as registry_check_name
from beamops.runtime.errors import InvalidArgument
from beamops.runtime.names import check_name, is_name
from beamops.training.spec import DatasetRef, PublishTarget, _check_publish, _check_ref

PHYSICIST_NAMES = ["PHYSLITE", "ttbar_2018", "JetTagger", "DAOD_PHYSLITE.e8514_s4162", "hzz-4mu",
                   "x" * 100, "0trigger", "a.b-c_D"]
BAD = [("", "empty"), ("a/b", "'/'"), ("a..b", '".."'), ("..", '".."'), ("x" * 101, "101 characters"),
       ("-x", "start with a letter or a digit"), (".hidden", "start with"), ("abc\n", "U+000A"),
       ("a b", "U+0020"), ("café", "U+00E9"), ("ｊｅｔ", "U+FF4A"), ("nul\x00", "U+0000")]


def _deploy(model: str, name: str = "") -> None:
    _validate(DeployCommand(model=model, name=name, target=Target(kind=TargetKind.VERSION, value="1.0")),
              name or model)


def _kinds():
    """Each kind's check, as a service calls it: (kind, call, field)."""
    return [
        ("model name", lambda v: registry_check_name(v, "model name", field="name"), "name"),
        ("dataset name", lambda v: check_dataset_name(v), "dataset"),
        ("deployment name", lambda v: _deploy("jets", v), "name"),
        ("model name", lambda v: _deploy(v), "model"),
        ("dataset name", lambda v: _check_ref(DatasetRef(dataset=v, version_id="dsv-0123456789abcdef"),
                                              "spec.dataset"), "spec.dataset.dataset"),
        ("registry model name", lambda v: _check_publish(PublishTarget(model=v, model_type_version="1.0.0")),
         "spec.publish.model_type.model"),
    ]


@pytest.mark.parametrize("name", PHYSICIST_NAMES)
def test_names_physicists_type_are_accepted_by_every_kind_and_kept_as_typed(name):
    assert check_name(name, "dataset name") == name  # returned unchanged: no lower-casing
    assert is_name(name)
    for _kind, call, _field in _kinds():
        call(name)


@pytest.mark.parametrize("name, problem", BAD)
def test_bad_names_are_refused_by_every_kind_with_one_message_format(name, problem):
    assert not is_name(name)
    for kind, call, field in _kinds():
        if not name and kind != "deployment name" and field in ("model", "spec.dataset.dataset"):
            continue  # an empty model / dataset reference has its own "is required" message
        if not name and kind == "deployment name":
            continue  # an empty deployment name means "the model's name"
        with pytest.raises(InvalidArgument) as err:
            call(name)
        message = err.value.message
        assert problem in message, (kind, message)
        assert kind in message and "letters, digits" in message and "case-sensitive" in message, message
        if name:
            assert message.startswith(f"invalid {kind} "), message
        assert err.value.field == field


def test_messages_quote_the_name_in_ascii_and_cut_it_short():
    with pytest.raises(InvalidArgument) as err:
        check_name("evil\u202egnp.x", "dataset name")
    assert "\u202e" not in err.value.message and "\\u202e" in err.value.message
    with pytest.raises(InvalidArgument) as err:
        check_name("y" * 300, "deployment name")
    assert "y" * 41 not in err.value.message and "300 characters" in err.value.message


def test_case_is_not_normalised():
    assert check_name("PHYSLITE", "dataset name") != check_name("physlite", "dataset name")


def test_triton_names_keep_the_case_and_never_collide_ignoring_case():
    assert triton_name("jets", "1.2") == "jets__1_2"  # all lower case: as before
    assert triton_name("jets", "1.2", 3) == "jets__1_2__g3"
    upper = triton_name("JetTagger", "1.0")
    assert upper.startswith("JetTagger__1_0") and upper == "JetTagger__1_0__c9"
    variants = ["JetTagger", "jettagger", "JETTAGGER", "jetTagger", "Jettagger"]
    names = [triton_name(v, version, gen) for v in variants for version in ("1.0", "2.0") for gen in (0, 1)]
    assert len({n.lower() for n in names}) == len(names)
    assert triton_name("JetTagger", "1.0", 2) == "JetTagger__1_0__c9__g2"


def test_the_leftovers_of_a_deployment_are_told_apart_from_other_deployments():
    for dep in ("jets", "JetTagger", "a.b-c_D"):
        for name in (triton_name(dep, "1.0"), triton_name(dep, "12.3", 4)):
            assert is_triton_name_of(name, dep)
    assert not is_triton_name_of(triton_name("jets__v2", "1.0"), "jets")
    assert not is_triton_name_of(triton_name("jets__1", "2.0"), "jets")
    assert not is_triton_name_of(triton_name("jets__1_0", "2.0", 1), "jets")
    assert not is_triton_name_of(triton_name("Jets", "1.0"), "jets")
    assert not is_triton_name_of(triton_name("jets", "1.0"), "Jets")
    assert not is_triton_name_of(triton_name("JETS", "1.0"), "Jets")
    assert not is_triton_name_of("jets__1_0.tmp", "jets")


def test_jobs_are_filtered_by_the_exact_dataset_name(tmp_path):
    """The training job list's dataset filter matches case and all, and '_' is no wildcard."""
    from datetime import datetime, timezone

    from beamops.training.spec import ModelChoice, TrainingSpec
    from beamops.training.store import JobFilter, JobRecord, SqlJobStore

    store = SqlJobStore(tmp_path / "jobs.db")
    try:
        for i, dataset in enumerate(("PHYSLITE", "physlite", "ttbar_2018", "ttbarX2018")):
            spec = TrainingSpec(features=("px",), label_branch="y", dataset=DatasetRef(dataset, "dsv-1"),
                                model=ModelChoice(builtin="mlp", task="regression"))
            store.create(JobRecord(job_id=f"job-{i}", spec=spec, state="QUEUED", executor="local",
                                   submitted_by="alice", submit_time=datetime.now(timezone.utc)),
                         ("submitted", {}))
        for dataset, expected in (("PHYSLITE", ["PHYSLITE"]), ("physlite", ["physlite"]),
                                  ("ttbar_2018", ["ttbar_2018"]), ("Physlite", [])):
            jobs, _token = store.list(JobFilter(dataset=dataset), 100, "")
            assert [j.spec.dataset.dataset for j in jobs] == expected, dataset
        jobs, _token = store.list(JobFilter(dataset="PHYSLITE", dataset_version_id="dsv-1"), 100, "")
        assert [j.job_id for j in jobs] == ["job-0"]
    finally:
        store.close()
