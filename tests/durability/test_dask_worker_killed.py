"""A Dask worker process killed (SIGKILL) while it runs a training job's task.

Real cluster (tests/fixtures/dask_cluster.py: a scheduler, two worker processes under nannies).
The job must end: either Dask reschedules the task (its nanny restarts the worker; the
scheduler allows a few worker deaths per task) and the job succeeds with one registered version,
or the job fails with a message that says what happened. It is never left RUNNING (bounded poll).

The case of the training service itself being killed is tests/service/test_training_restart.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal

import pytest

from beamops.registry.v1 import registry_service_pb2 as rs
from beamops.training.v1 import job_pb2, training_service_pb2 as ts

from tests.fixtures.training import FINAL, zmumu_mass_spec

pytestmark = pytest.mark.integration

WORKER_LINE = re.compile(r"running on Dask worker (\S+)")


@pytest.fixture
def training_overrides(dask_scheduler) -> dict:
    return {"dask_scheduler": dask_scheduler}


def _worker_pid(scheduler: str, worker: str) -> int:
    from distributed import Client

    with Client(scheduler, timeout=30) as client:
        return client.run(os.getpid, workers=[worker])[worker]


async def test_a_killed_dask_worker_never_leaves_the_job_running(training_env, dask_scheduler):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    spec = zmumu_mass_spec(split, model="dask-killed", builtin=job_pb2.BUILTIN_MODEL_MLP, max_iter=300,
                           hidden_layer_sizes=[64, 64])
    job = await env.submit(spec)
    assert job.executor == job_pb2.EXECUTOR_DASK

    worker = None
    async for response in env.training.WatchJob(ts.WatchJobRequest(job_id=job.job_id), metadata=env.md("reader"),
                                                timeout=180):
        event = response.event
        if event.WhichOneof("event") == "log_line" and (found := WORKER_LINE.search(event.log_line.text)):
            worker = found.group(1)
        if event.WhichOneof("event") == "progress" and event.progress.iteration >= 2 and worker:
            break
    assert worker, "the task never reported its worker"
    pid = await asyncio.to_thread(_worker_pid, dask_scheduler, worker)
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)

    final = None
    for _ in range(600):  # bounded: ~5 minutes at most
        final = (await env.training.GetJob(ts.GetJobRequest(job_id=job.job_id), metadata=env.md("reader"))).job
        if final.state in FINAL:
            break
        await asyncio.sleep(0.5)
    assert final.state in FINAL, f"the job is still {job_pb2.JobState.Name(final.state)}"

    events = [r.event async for r in env.training.WatchJob(ts.WatchJobRequest(job_id=job.job_id),
                                                            metadata=env.md("reader"), timeout=60)]
    print(f"killed worker {worker} (pid {pid}); job {job_pb2.JobState.Name(final.state)} "
          f"{final.failure_message!r}")
    states = [e.state_change.state for e in events if e.WhichOneof("event") == "state_change"]
    assert states[-1] == final.state
    if final.state == job_pb2.JOB_STATE_SUCCEEDED:
        # retried: the task ran again from the start on a live worker, and registered once
        starts = [e for e in events if e.WhichOneof("event") == "log_line" and WORKER_LINE.search(e.log_line.text)]
        assert len(starts) >= 2, "the job succeeded without its task being run again"
        listed = (await env.registry.ListParametersVersions(rs.ListParametersVersionsRequest(
            model="dask-killed"), metadata=env.md("reader"))).parameters
        assert [p.version for p in listed] == [final.result.parameters.version]
        assert final.result.onnx_check.passed
    else:
        assert final.state == job_pb2.JOB_STATE_FAILED, job_pb2.JobState.Name(final.state)
        assert "Dask" in final.failure_message, final.failure_message
        assert "Traceback" not in final.failure_message and "/tmp" not in final.failure_message


async def test_a_task_whose_workers_keep_dying_fails_the_job_with_the_reason(training_env, dask_scheduler):
    """Every worker that picks the task up is killed, until the scheduler gives up on it
    (``distributed.scheduler.allowed-failures``): the job is FAILED and says why."""
    from distributed import Client

    def allowed_failures() -> int:
        with Client(dask_scheduler, timeout=30) as client:
            return client.run_on_scheduler(
                lambda dask_scheduler=None: __import__("dask").config.get("distributed.scheduler.allowed-failures"))

    allowed = await asyncio.to_thread(allowed_failures)
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    job = await env.submit(zmumu_mass_spec(split, model="", builtin=job_pb2.BUILTIN_MODEL_MLP, max_iter=100_000,
                                           hidden_layer_sizes=[64, 64]))
    kills = 0
    async for response in env.training.WatchJob(ts.WatchJobRequest(job_id=job.job_id), metadata=env.md("reader"),
                                                timeout=300):
        event = response.event
        if event.WhichOneof("event") == "log_line" and (found := WORKER_LINE.search(event.log_line.text)):
            pid = await asyncio.to_thread(_worker_pid, dask_scheduler, found.group(1))
            os.kill(pid, signal.SIGKILL)
            kills += 1
    final = None
    for _ in range(600):  # bounded: ~5 minutes at most
        final = (await env.training.GetJob(ts.GetJobRequest(job_id=job.job_id), metadata=env.md("reader"))).job
        if final.state in FINAL:
            break
        await asyncio.sleep(0.5)
    print(f"{kills} workers killed (allowed failures {allowed}): {final.failure_message!r}")
    assert final.state == job_pb2.JOB_STATE_FAILED, job_pb2.JobState.Name(final.state)
    assert kills == allowed + 1
    assert "Dask workers running this job died" in final.failure_message, final.failure_message
    assert "tcp://" not in final.failure_message
    assert "Traceback" not in final.failure_message and "/tmp" not in final.failure_message
