"""Cancel (the worker process really stops), permissions, reproduce, watch resume."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from beamops.common.v1 import auth_pb2
from beamops.training.v1 import job_pb2, training_service_pb2 as ts

from tests.fixtures.registry import assert_clear
from tests.fixtures.training import zmumu_mass_spec


def worker_pids(job_id: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"beamops.training.worker" in cmdline and job_id.encode() in cmdline:
                pids.append(int(proc.name))
    return pids


def long_mlp_spec(split):
    return zmumu_mass_spec(split, model="", builtin=job_pb2.BUILTIN_MODEL_MLP, max_iter=100_000,
                           hidden_layer_sizes=[64, 64])


async def wait_for_progress(env, job_id: str) -> None:
    async for response in env.training.WatchJob(ts.WatchJobRequest(job_id=job_id, exclude_log_lines=True),
                                                metadata=env.md("reader"), timeout=120):
        if response.event.WhichOneof("event") == "progress" and response.event.progress.iteration >= 2:
            return
    raise AssertionError("the job ended before it made progress")


async def test_cancel_really_stops_the_worker_process(training_env):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    job = await env.submit(long_mlp_spec(split))
    await wait_for_progress(env, job.job_id)
    assert worker_pids(job.job_id), "the worker should be running"

    other = env.tokens.store.create("other-publisher", auth_pb2.ROLE_PUBLISHER)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.training.CancelJob(ts.CancelJobRequest(job_id=job.job_id),
                                     metadata=(("authorization", f"Bearer {other}"),))
    assert_clear(err.value, grpc.StatusCode.PERMISSION_DENIED, "admin")

    cancelled = (await env.training.CancelJob(ts.CancelJobRequest(job_id=job.job_id, reason="wrong features"),
                                              metadata=env.md("publisher"))).job
    assert cancelled.state == job_pb2.JOB_STATE_CANCELLED
    assert cancelled.cancel_requested_by == "publisher-user" and cancelled.cancel_reason == "wrong features"
    assert worker_pids(job.job_id) == []
    final, events = await env.follow(job.job_id)
    last = events[-1]
    assert last.state_change.state == job_pb2.JOB_STATE_CANCELLED
    assert last.state_change.message == "cancelled by publisher-user: wrong features"
    again = (await env.training.CancelJob(ts.CancelJobRequest(job_id=job.job_id), metadata=env.md("admin"))).job
    assert again.state == job_pb2.JOB_STATE_CANCELLED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.training.ReproduceJob(ts.ReproduceJobRequest(job_id=job.job_id), metadata=env.md("publisher"))
    assert_clear(err.value, grpc.StatusCode.FAILED_PRECONDITION, "SUCCEEDED")


async def test_a_succeeded_job_cannot_be_cancelled_and_watch_resumes_after_a_sequence(training_env):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    job, events = await env.follow((await env.submit(zmumu_mass_spec(split, model="", max_iter=5))).job_id)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED
    assert job.last_event_sequence == events[-1].sequence
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.training.CancelJob(ts.CancelJobRequest(job_id=job.job_id), metadata=env.md("publisher"))
    assert_clear(err.value, grpc.StatusCode.FAILED_PRECONDITION, "SUCCEEDED")
    _, tail = await env.follow(job.job_id, after=events[-3].sequence)
    assert [e.sequence for e in tail] == [e.sequence for e in events[-2:]]
    _, nothing = await env.follow(job.job_id, after=job.last_event_sequence)
    assert nothing == []


async def test_reproduce_gives_identical_predictions_and_reports_no_difference(training_env):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    original, _ = await env.follow((await env.submit(zmumu_mass_spec(split, max_iter=10, model="repro"))).job_id)
    assert original.state == job_pb2.JOB_STATE_SUCCEEDED, original.failure_message
    started = (await env.training.ReproduceJob(ts.ReproduceJobRequest(job_id=original.job_id, reason="audit"),
                                               metadata=env.md("publisher"))).job
    assert started.reproduces.job_id == original.job_id
    assert started.spec.seed == original.result.seed
    assert not started.spec.publish.model_type.model  # nothing registered unless asked
    job, _ = await env.follow(started.job_id)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.failure_message
    report = job.reproduction
    assert report.original_job.job_id == original.job_id
    assert report.reproduced and report.metrics_agree and report.predictions_agree
    assert report.predictions_identical and report.max_prediction_difference == 0.0
    assert report.events_compared == original.result.onnx_check.events_compared
    assert list(report.differences) == []
    assert {m.name for m in report.metrics} == {"rmse", "r2"}
    assert job.result.predictions_sha256 == original.result.predictions_sha256
    assert "Reproduced" in report.summary
