"""The physicist's own models through gRPC, with a real data service and registry: signal and
background samples with different branch names and weights, XGBoost and LightGBM, the ONNX check
scaled to the outputs, and quality gates."""

from __future__ import annotations

import grpc
import pytest

from beamops.common.v1 import lineage_pb2
from beamops.registry.v1 import registry_service_pb2 as rs
from beamops.training.v1 import job_pb2, training_service_pb2 as ts

from tests.fixtures.training import zmumu_mass_spec

FEATURES = ["px", "py", "pz", "E"]


def ref(version) -> lineage_pb2.DatasetVersionRef:
    return lineage_pb2.DatasetVersionRef(dataset=version.dataset, version_id=version.version_id)


def hzz_vs_zmumu_spec(hzz, zmumu, *, signal_px: str = "Muon_Px[0]", model: str = "hzz-vs-zmumu",
                      builtin: int = job_pb2.BUILTIN_MODEL_GRADIENT_BOOSTED_TREES, **hyper) -> job_pb2.JobSpec:
    """Leading muon of the HZZ sample (jagged Muon_* branches) against muon 1 of Z->mumu (px1...)."""
    signal = job_pb2.Sample(dataset=ref(hzz), feature_branches={
        "px": signal_px, "py": "Muon_Py[0]", "pz": "Muon_Pz[0]", "E": "Muon_E[0]"},
        cross_section=job_pb2.CrossSection(cross_section=0.05, luminosity=3000.0, generated_events=2421))
    background = job_pb2.Sample(dataset=ref(zmumu), feature_branches={
        "px": "px1", "py": "py1", "pz": "pz1", "E": "E1"}, event_weight=2.5)
    spec = job_pb2.JobSpec(
        feature_branches=FEATURES, seed=3, metrics=["roc_auc", "accuracy"],
        source_classes=job_pb2.SourceClasses(classes=[
            job_pb2.SourceClass(class_index=1, class_name="signal", samples=[signal]),
            job_pb2.SourceClass(class_index=0, class_name="background", samples=[background])]),
        model=job_pb2.ModelSpec(builtin=builtin, task=job_pb2.TASK_CLASSIFICATION))
    spec.model.hyperparameters.update(hyper or {"max_iter": 20})
    if model:
        spec.publish.model_type.model = model
        spec.publish.model_type.version = "1.0.0"
    return spec


async def real_samples(env):
    return (await env.split_version("hzz", ["uproot-HZZ.root"]),
            await env.split_version("zmumu", ["uproot-Zmumu.root"]))


async def test_hzz_signal_against_zmumu_background_reads_each_samples_branches_and_registers(training_env):
    env = training_env
    hzz, zmumu = await real_samples(env)
    submitted = await env.submit(hzz_vs_zmumu_spec(hzz, zmumu))
    samples = [c.samples[0] for c in submitted.spec.source_classes.classes]
    assert [s.dataset.content_hash for s in samples] == [hzz.content_hash, zmumu.content_hash]  # pinned
    assert samples[0].feature_branches["px"] == "Muon_Px[0]"

    job, events = await env.follow(submitted.job_id)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.failure_message
    test = {m.name: m.value for m in job.metrics if m.split == "test"}
    assert test["roc_auc"] > 0.7
    logs = [e.log_line.text for e in events if e.WhichOneof("event") == "log_line"]
    # weight = cross_section * luminosity / generated_events for the signal, the plain weight for the background
    assert any("class 'signal', weight 0.0619579 per event" in t for t in logs), logs
    assert any("class 'background', weight 2.5 per event" in t for t in logs), logs
    assert [(d.dataset, d.split) for d in job.result.datasets] == [
        (name, split) for split in ("train", "validation", "test") for name in ("hzz", "zmumu")]

    params = (await env.registry.GetParametersVersion(rs.GetParametersVersionRequest(
        model="hzz-vs-zmumu", version=job.result.parameters.version), metadata=env.md("reader"))).parameters
    assert [d.feature for d in params.reference_distributions][:4] == FEATURES
    assert {d.version_id for d in params.lineage.datasets} == {hzz.version_id, zmumu.version_id}
    model_type = (await env.registry.GetModelType(rs.GetModelTypeRequest(model="hzz-vs-zmumu", version="1.0.0"),
                                                  metadata=env.md("reader"))).model_type
    assert [list(t.shape) for t in model_type.signature.inputs] == [[-1, 4]]


async def test_a_mapping_to_a_missing_branch_is_refused_at_submit_naming_the_class_and_branches(training_env):
    env = training_env
    hzz, zmumu = await real_samples(env)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.submit(hzz_vs_zmumu_spec(hzz, zmumu, signal_px="Muon_Pxx[0]"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = err.value.details()
    assert "class 'signal'" in details and "no branch 'Muon_Pxx'" in details, details
    assert "did you mean 'Muon_Px'" in details and "Its branches: " in details and "NMuon" in details, details

    # a feature the background does not map is read by its own name, which Z->mumu lacks
    spec = hzz_vs_zmumu_spec(hzz, zmumu)
    del spec.source_classes.classes[1].samples[0].feature_branches["E"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.submit(spec)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "class 'background'" in err.value.details() and "no branch 'E'" in err.value.details()
    assert "E1" in err.value.details()
    jobs = (await env.training.ListJobs(ts.ListJobsRequest(), metadata=env.md("reader"))).jobs
    assert list(jobs) == []  # nothing queued


@pytest.mark.parametrize("builtin, package", [(job_pb2.BUILTIN_MODEL_XGBOOST, "xgboost"),
                                              (job_pb2.BUILTIN_MODEL_LIGHTGBM, "lightgbm")])
async def test_xgboost_and_lightgbm_classify_and_regress_register_and_their_onnx_answers_like_them(
        training_env, builtin, package):
    env = training_env
    hzz, zmumu = await real_samples(env)
    classify = hzz_vs_zmumu_spec(hzz, zmumu, model=f"{package}-sig", builtin=builtin, n_estimators=25)
    regress = zmumu_mass_spec(zmumu, model=f"{package}-mass", builtin=builtin)
    regress.model.hyperparameters.Clear()
    regress.model.hyperparameters.update({"n_estimators": 40, "learning_rate": 0.2})
    first = [await env.submit(spec) for spec in (classify, regress, classify)]
    jobs = [(await env.follow(j.job_id))[0] for j in first]
    for job in jobs:
        assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.failure_message
        check = job.result.onnx_check
        assert check.passed and check.events_compared > 400
        assert check.max_abs_difference <= check.tolerance * check.output_scale + check.relative_tolerance * 200
        assert any(name.startswith(package) for name in job.result.environment.packages)  # xgboost(-cpu)
    sig, mass, sig_again = jobs
    assert {m.name: m.value for m in sig.metrics if m.split == "test"}["roc_auc"] > 0.7
    assert {m.name: m.value for m in mass.metrics if m.split == "test"}["r2"] > 0.6
    assert sig_again.result.predictions_sha256 == sig.result.predictions_sha256  # same seed, same model
    assert sig_again.result.onnx_sha256 == sig.result.onnx_sha256
    for job, model in ((sig, f"{package}-sig"), (mass, f"{package}-mass")):
        params = (await env.registry.GetParametersVersion(rs.GetParametersVersionRequest(
            model=model, version=job.result.parameters.version), metadata=env.md("reader"))).parameters
        assert params.primary_artifact.sha256 == job.result.onnx_sha256


async def test_float32_rounding_of_masses_passes_the_scaled_tolerance_and_a_tighter_one_names_the_event(
        training_env):
    env = training_env
    zmumu = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    job, _ = await env.follow((await env.submit(zmumu_mass_spec(zmumu, model="", max_iter=200))).job_id)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.failure_message
    check = job.result.onnx_check
    assert check.passed and check.max_abs_difference > 0  # float32 rounding, inside the scaled tolerance
    assert check.output_scale > 50 and check.tolerance == 1e-5 and check.relative_tolerance == 1e-5

    strict = zmumu_mass_spec(zmumu, model="", max_iter=200)
    strict.onnx_tolerance = strict.onnx_relative_tolerance = 1e-12
    job, _ = await env.follow((await env.submit(strict)).job_id)
    assert job.state == job_pb2.JOB_STATE_FAILED
    message = job.failure_message
    assert "does not predict like the trained model: test event " in message, message
    assert "natively and" in message and "in ONNX Runtime" in message
    assert "raise onnx_tolerance or onnx_relative_tolerance" in message


async def test_a_model_below_its_quality_gate_is_rejected_and_registers_nothing(training_env):
    env = training_env
    zmumu = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    spec = zmumu_mass_spec(zmumu, model="gated-mass", max_iter=5)
    spec.quality_gates.extend(["test/r2 >= 0.2", "test/rmse <= 0.5"])
    job, events = await env.follow((await env.submit(spec)).job_id)
    assert job.state == job_pb2.JOB_STATE_REJECTED, job.failure_message
    states = [e.state_change.state for e in events if e.WhichOneof("event") == "state_change"]
    assert states[-1] == job_pb2.JOB_STATE_REJECTED
    rmse = {m.name: m.value for m in job.metrics if m.split == "test"}["rmse"]
    assert rmse > 0.5
    assert "test/rmse <= 0.5" in job.failure_message and f"{rmse:.6g}" in job.failure_message
    assert "test/r2" not in job.failure_message  # that one passed
    assert [(g.gate, g.passed) for g in job.result.quality_gates] == [("test/r2 >= 0.2", True),
                                                                      ("test/rmse <= 0.5", False)]
    assert not job.result.parameters.version
    with pytest.raises(grpc.aio.AioRpcError) as err:  # nothing registered, not even the model type
        await env.registry.GetModelType(rs.GetModelTypeRequest(model="gated-mass", version="1.0.0"),
                                        metadata=env.md("reader"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("gate, words", [
    ("test/roc_auc >= 0.8", "does not compute 'roc_auc'"),
    ("train/rmse <= 5", "unknown split 'train'"),
    ("test/rmse about 5", "is not 'split/metric OP value'"),
])
async def test_a_quality_gate_on_an_unknown_metric_or_split_is_refused_at_submit(training_env, gate, words):
    env = training_env
    zmumu = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    spec = zmumu_mass_spec(zmumu, model="", max_iter=3)
    spec.quality_gates.append(gate)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.submit(spec, validate_only=True)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in err.value.details(), err.value.details()
