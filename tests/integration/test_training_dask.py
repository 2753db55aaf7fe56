"""The same training job on a real Dask cluster (a scheduler and 2 worker processes): it trains,
streams its events through the cluster, registers with lineage, and cancels."""

from __future__ import annotations

import pytest

from beamops.registry.v1 import registry_service_pb2 as rs
from beamops.training.v1 import job_pb2, training_service_pb2 as ts

from tests.fixtures.training import zmumu_mass_spec

pytestmark = pytest.mark.integration


@pytest.fixture
def training_overrides(dask_scheduler) -> dict:
    return {"dask_scheduler": dask_scheduler}


async def test_a_job_runs_on_dask_and_registers_like_a_local_one(training_env):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    on_dask, events = await env.follow((await env.submit(zmumu_mass_spec(split, model="dask-mass"))).job_id)
    assert on_dask.executor == job_pb2.EXECUTOR_DASK  # the default when a scheduler is configured
    assert on_dask.state == job_pb2.JOB_STATE_SUCCEEDED, on_dask.failure_message
    kinds = {e.WhichOneof("event") for e in events}
    assert {"state_change", "progress", "metric", "log_line"} <= kinds
    params = (await env.registry.GetParametersVersion(rs.GetParametersVersionRequest(
        model="dask-mass", version=on_dask.result.parameters.version), metadata=env.md("reader"))).parameters
    assert params.lineage.training_job.job_id == on_dask.job_id
    assert {d.version_id for d in params.lineage.datasets} == {split.version_id}
    assert on_dask.result.onnx_check.passed

    # The same spec locally gives the same model: reproducing on the local executor agrees exactly.
    started = (await env.training.ReproduceJob(ts.ReproduceJobRequest(
        job_id=on_dask.job_id, executor=job_pb2.EXECUTOR_LOCAL), metadata=env.md("publisher"))).job
    local, _ = await env.follow(started.job_id)
    assert local.executor == job_pb2.EXECUTOR_LOCAL
    assert local.state == job_pb2.JOB_STATE_SUCCEEDED, local.failure_message
    report = local.reproduction
    assert report.reproduced and report.predictions_identical
    assert [(d.kind, d.field) for d in report.differences] == [(job_pb2.DIFFERENCE_KIND_EXECUTOR, "executor")]


async def test_cancel_stops_a_running_dask_task(training_env):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    spec = zmumu_mass_spec(split, model="", builtin=job_pb2.BUILTIN_MODEL_MLP, max_iter=100_000)
    job = await env.submit(spec)
    async for response in env.training.WatchJob(ts.WatchJobRequest(job_id=job.job_id, exclude_log_lines=True),
                                                metadata=env.md("reader"), timeout=120):
        if response.event.progress.iteration >= 2:
            break
    cancelled = (await env.training.CancelJob(ts.CancelJobRequest(job_id=job.job_id, reason="enough"),
                                              metadata=env.md("publisher"))).job
    assert cancelled.state == job_pb2.JOB_STATE_CANCELLED
    # The cluster is free again: a short job runs to the end right after.
    after, _ = await env.follow((await env.submit(zmumu_mass_spec(split, model="", max_iter=3))).job_id)
    assert after.state == job_pb2.JOB_STATE_SUCCEEDED, after.failure_message
    # and the cancelled task stopped iterating: its progress no longer moves
    final = (await env.training.GetJob(ts.GetJobRequest(job_id=job.job_id), metadata=env.md("reader"))).job
    assert final.progress.iteration == cancelled.progress.iteration
