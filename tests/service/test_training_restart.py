"""Restart survival: a training service killed while a job runs comes back with that job FAILED
and the reason, its worker stopped; job state and events survive the restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc

from beamops.training.jobs import RESTART_MESSAGE
from beamops.training.v1 import job_pb2, training_service_pb2 as ts, training_service_pb2_grpc

from tests.fixtures.services import free_port, wait_for_health
from tests.service.test_training_lifecycle import long_mlp_spec, worker_pids


def start_service(env, var_dir: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "beamops.training.server", "--port", str(port), "--var-dir", str(var_dir),
         "--tokens-file", str(env.tokens.path), "--data-address", env.settings.data_address,
         "--registry-address", env.settings.registry_address, "--log-json", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_health(port)
    return proc


async def test_a_job_running_when_the_service_is_killed_is_failed_with_the_reason(training_env, tmp_path):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    var_dir = tmp_path / "restarted-var"
    port = free_port()
    proc = start_service(env, var_dir, port)
    job = None
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = training_service_pb2_grpc.TrainingServiceStub(channel)
            job = (await stub.SubmitJob(ts.SubmitJobRequest(spec=long_mlp_spec(split)),
                                        metadata=env.md("publisher"))).job
            async for response in stub.WatchJob(ts.WatchJobRequest(job_id=job.job_id), metadata=env.md("reader"),
                                                timeout=120):
                if response.event.progress.iteration >= 2:
                    break
        proc.kill()  # no graceful stop: as if the machine or the process died
        proc.wait(timeout=30)
        assert worker_pids(job.job_id), "the worker outlives the killed service (own session)"

        proc = start_service(env, var_dir, port)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = training_service_pb2_grpc.TrainingServiceStub(channel)
            after = (await stub.GetJob(ts.GetJobRequest(job_id=job.job_id), metadata=env.md("reader"))).job
            assert after.state == job_pb2.JOB_STATE_FAILED
            assert after.failure_message == RESTART_MESSAGE
            assert after.HasField("end_time") and after.progress.iteration >= 2
            events = [r.event async for r in stub.WatchJob(ts.WatchJobRequest(job_id=job.job_id),
                                                           metadata=env.md("reader"), timeout=30)]
            assert events[-1].state_change.state == job_pb2.JOB_STATE_FAILED
            assert events[-1].state_change.previous_state == job_pb2.JOB_STATE_RUNNING
            assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        for _ in range(50):
            if not worker_pids(job.job_id):
                break
            await asyncio.sleep(0.1)
        assert worker_pids(job.job_id) == []
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        for pid in worker_pids(job.job_id) if job is not None else []:
            os.kill(pid, signal.SIGKILL)
