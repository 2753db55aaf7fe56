"""The memory limit on a real Dask cluster whose worker declares a MEMORY resource: the job's task
requests job_memory_limit_bytes of it; a limit no worker offers fails the job before it starts,
naming the setting (instead of leaving the task waiting forever)."""

from __future__ import annotations

from typing import Iterator

import pytest

from beamops.training.v1 import job_pb2

from tests.fixtures.training import zmumu_mass_spec

pytestmark = pytest.mark.integration

GiB = 1024**3


@pytest.fixture(scope="module")
def memory_cluster_address(dask_worker_token_file) -> Iterator[str]:
    """One single-threaded worker process declaring MEMORY=2 GiB."""
    from distributed import LocalCluster

    from beamops.training.worker import WORKER_TOKEN_ENV

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                           host="127.0.0.1", resources={"MEMORY": 2 * GiB},
                           env={WORKER_TOKEN_ENV: str(dask_worker_token_file)})
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture
def memory_scheduler(memory_cluster_address: str, dask_worker_token: str) -> str:
    return memory_cluster_address


@pytest.fixture
def training_overrides(memory_scheduler, request) -> dict:
    return {"dask_scheduler": memory_scheduler, "job_memory_limit_bytes": request.param}


@pytest.mark.parametrize("training_overrides", [GiB], indirect=True)
async def test_a_job_within_the_workers_memory_resource_runs_and_says_what_it_requested(training_env):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    job, events = await env.follow((await env.submit(zmumu_mass_spec(split, model="", max_iter=5))).job_id)
    assert job.executor == job_pb2.EXECUTOR_DASK
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.failure_message
    lines = [e.log_line.text for e in events if e.WhichOneof("event") == "log_line"]
    assert any("memory 1 GiB of the Dask workers' MEMORY resource requested" in t for t in lines), lines


@pytest.mark.parametrize("training_overrides", [4 * GiB], indirect=True)
async def test_a_memory_limit_no_worker_offers_fails_the_job_before_it_starts_naming_it(training_env):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    job, _ = await env.follow((await env.submit(zmumu_mass_spec(split, model="", max_iter=5))).job_id)
    assert job.state == job_pb2.JOB_STATE_FAILED
    message = job.failure_message
    assert "no Dask worker offers the 4 GiB" in message and "job_memory_limit_bytes" in message, message
    assert "2 GiB" in message and "tcp://" not in message and "127.0.0.1" not in message
