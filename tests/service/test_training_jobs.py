"""Training jobs through gRPC with a real data service and registry: train on the real Zmumu
events and on generated signal/background events, stream progress, register with lineage."""

from __future__ import annotations

import hashlib

import grpc
import numpy as np
import onnxruntime as ort
import pytest

from beamops.common.v1 import lineage_pb2
from beamops.registry.v1 import registry_service_pb2 as rs
from beamops.training.v1 import job_pb2, training_service_pb2 as ts

from tests.fixtures.training import zmumu_mass_spec


async def test_a_job_on_real_zmumu_events_trains_streams_and_registers_with_lineage(training_env):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    submitted = await env.submit(zmumu_mass_spec(split))
    assert submitted.state == job_pb2.JOB_STATE_QUEUED and submitted.job_id.startswith("job-")
    assert submitted.spec.dataset.content_hash == split.content_hash  # pinned at submit time

    job, events = await env.follow(submitted.job_id)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.failure_message
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    states = [e.state_change.state for e in events if e.WhichOneof("event") == "state_change"]
    assert states == [job_pb2.JOB_STATE_QUEUED, job_pb2.JOB_STATE_RUNNING, job_pb2.JOB_STATE_SUCCEEDED]
    progress = [e.progress for e in events if e.WhichOneof("event") == "progress"]
    assert progress and progress[-1].iteration == 30 and progress[-1].total_iterations == 30
    assert any(e.WhichOneof("event") == "log_line" for e in events)
    test_r2 = {m.name: m.value for m in job.metrics if m.split == "test"}["r2"]
    assert test_r2 > 0.8

    result = job.result
    assert result.onnx_check.passed and result.onnx_check.events_compared > 300
    assert result.seed == 42
    assert [(d.version_id, d.content_hash, d.split) for d in result.datasets] == [
        (split.version_id, split.content_hash, s) for s in ("train", "validation", "test")]

    params = (await env.registry.GetParametersVersion(rs.GetParametersVersionRequest(
        model="zmumu-mass", version=result.parameters.version), metadata=env.md("reader"))).parameters
    assert params.version == "1.0"
    lineage = params.lineage
    assert lineage.training_job.job_id == job.job_id
    assert {(d.dataset, d.version_id, d.content_hash) for d in lineage.datasets} == {
        ("zmumu", split.version_id, split.content_hash)}
    assert lineage.seed == 42 and lineage.hyperparameters["max_iter"] == "30"
    assert "scikit-learn" in lineage.environment.packages and lineage.environment.python_version
    assert lineage.code.WhichOneof("source") in ("git", "package")
    assert params.metrics["r2"] == pytest.approx(test_r2)
    assert [d.feature for d in params.reference_distributions][:8] == list(job.spec.feature_branches)
    assert params.reference_distributions[0].count > 0 and len(params.reference_distributions[0].quantiles) > 3
    assert params.primary_artifact.sha256 == result.onnx_sha256

    # The registered ONNX file predicts like the native model did on the test split.
    data = bytearray()
    async for part in env.registry.DownloadArtifact(rs.DownloadArtifactRequest(
            artifact_id=params.primary_artifact.artifact_id), metadata=env.md("reader")):
        if part.WhichOneof("part") == "chunk":
            data += part.chunk
    assert hashlib.sha256(data).hexdigest() == result.onnx_sha256
    session = ort.InferenceSession(bytes(data), providers=["CPUExecutionProvider"])
    native = np.load(env.settings.jobs_dir / job.job_id / "predictions.npy")
    assert native.shape == (result.onnx_check.events_compared,)
    model_type = (await env.registry.GetModelType(rs.GetModelTypeRequest(model="zmumu-mass", version="1.0.0"),
                                                  metadata=env.md("reader"))).model_type
    assert [(t.name, list(t.shape)) for t in model_type.signature.inputs] == [("input", [-1, 8])]
    assert session.get_inputs()[0].name == "input"


async def test_generated_signal_and_background_with_source_classes_and_padded_jets(training_env):
    env = training_env
    signal = await env.split_version("signal", ["signal.root"])
    background = await env.split_version("background", ["background.root"])
    spec = job_pb2.JobSpec(
        feature_branches=["met", "ht", "n_jet", "jet_pt"], jagged_pad_length=3, weight_branch="weight",
        seed=7, metrics=["roc_auc", "accuracy"],
        source_classes=job_pb2.SourceClasses(classes=[
            job_pb2.SourceClass(dataset=lineage_pb2.DatasetVersionRef(dataset="signal", version_id=signal.version_id),
                                class_index=1, class_name="signal"),
            job_pb2.SourceClass(dataset=lineage_pb2.DatasetVersionRef(dataset="background",
                                                                      version_id=background.version_id),
                                class_index=0, class_name="background")]),
        model=job_pb2.ModelSpec(builtin=job_pb2.BUILTIN_MODEL_MLP, task=job_pb2.TASK_CLASSIFICATION),
    )
    spec.model.hyperparameters.update({"max_iter": 15, "hidden_layer_sizes": [16, 8]})
    spec.publish.model_type.model = "sig-bkg"
    spec.publish.model_type.version = "1.0.0"
    job, events = await env.follow((await env.submit(spec)).job_id)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.failure_message
    auc = {m.name: m.value for m in job.metrics if m.split == "test"}["roc_auc"]
    assert auc > 0.75
    assert len(job.result.datasets) == 6
    epochs = [e.progress.iteration for e in events if e.WhichOneof("event") == "progress"]
    assert epochs[-1] == 15
    params = (await env.registry.GetParametersVersion(rs.GetParametersVersionRequest(
        model="sig-bkg", version=job.result.parameters.version), metadata=env.md("reader"))).parameters
    features = [d.feature for d in params.reference_distributions]
    assert features[:6] == ["met", "ht", "n_jet", "jet_pt[0]", "jet_pt[1]", "jet_pt[2]"]
    assert "output:probabilities[1]" in features
    assert {d.version_id for d in params.lineage.datasets} == {signal.version_id, background.version_id}


async def test_list_jobs_filters_and_pages_and_idempotency_keys_return_the_same_job(training_env):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    first = await env.submit(zmumu_mass_spec(split, model="", max_iter=3), idempotency_key="k1")
    again = await env.submit(zmumu_mass_spec(split, model="", max_iter=3), idempotency_key="k1")
    assert again.job_id == first.job_id
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.submit(zmumu_mass_spec(split, model="", max_iter=4), idempotency_key="k1")
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    second = await env.submit(zmumu_mass_spec(split, model="", max_iter=3))
    for job_id in (first.job_id, second.job_id):
        job, _ = await env.follow(job_id)
        assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.failure_message
        assert not job.result.parameters.version  # nothing published

    page1 = await env.training.ListJobs(ts.ListJobsRequest(page_size=1), metadata=env.md("reader"))
    page2 = await env.training.ListJobs(ts.ListJobsRequest(page_size=1, page_token=page1.next_page_token),
                                        metadata=env.md("reader"))
    assert [j.job_id for j in [*page1.jobs, *page2.jobs]] == [second.job_id, first.job_id]
    assert page2.next_page_token == ""
    by_dataset = await env.training.ListJobs(ts.ListJobsRequest(dataset="zmumu", dataset_version_id=split.version_id,
                                                                states=[job_pb2.JOB_STATE_SUCCEEDED]),
                                             metadata=env.md("reader"))
    assert len(by_dataset.jobs) == 2
    none = await env.training.ListJobs(ts.ListJobsRequest(dataset="hzz"), metadata=env.md("reader"))
    assert list(none.jobs) == []
    mine = await env.training.ListJobs(ts.ListJobsRequest(submitted_by="publisher-user"), metadata=env.md("reader"))
    assert len(mine.jobs) == 2
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.training.ListJobs(ts.ListJobsRequest(page_token="garbage!"), metadata=env.md("reader"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:  # the token of another query
        await env.training.ListJobs(ts.ListJobsRequest(page_size=1, page_token=page1.next_page_token,
                                                       submitted_by="someone-else"), metadata=env.md("reader"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in err.value.details()
