"""A hyperparameter search on a real Dask cluster (a scheduler and 2 worker processes): one task
per trial, two at once on the two workers; the best is registered; cancel stops every trial."""

from __future__ import annotations

import pytest

from beamops.registry.v1 import registry_service_pb2 as rs
from beamops.training.v1 import job_pb2, training_service_pb2 as ts

from tests.fixtures.training import zmumu_mass_spec
from tests.service.test_training_search import (
    add_values, most_at_once, start_slow_search_with_two_trials_training, zmumu_grid_search,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def training_overrides(dask_scheduler) -> dict:
    return {"dask_scheduler": dask_scheduler}


async def test_a_search_runs_one_task_per_trial_on_both_workers_and_registers_the_best(training_env):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    job, events = await env.follow((await env.submit(zmumu_grid_search(split))).job_id)
    assert job.executor == job_pb2.EXECUTOR_DASK
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.failure_message
    assert [t.state for t in job.trials] == [job_pb2.JOB_STATE_SUCCEEDED] * 4
    workers = {}
    for e in events:
        if e.WhichOneof("event") == "log_line" and e.log_line.text.startswith("running on Dask worker "):
            workers[e.log_line.trial_index] = e.log_line.text.rsplit(" ", 1)[1]
    assert sorted(workers) == [0, 1, 2, 3]  # one task per trial
    assert len(set(workers.values())) == 2  # spread over both workers
    assert most_at_once(job.trials) == 2  # as many at once as the cluster has threads
    best = [t for t in job.trials if t.best]
    assert len(best) == 1
    params = (await env.registry.GetParametersVersion(rs.GetParametersVersionRequest(
        model="zmumu-search", version=job.result.parameters.version), metadata=env.md("reader"))).parameters
    assert (params.tags["search_job"], params.tags["search_trial"]) == (job.job_id, str(best[0].index))
    assert job.result.onnx_check.passed and params.primary_artifact.sha256 == job.result.onnx_sha256


async def test_cancel_stops_every_trial_task_of_a_search(training_env):
    env = training_env
    split, job = await start_slow_search_with_two_trials_training(env)
    cancelled = (await env.training.CancelJob(ts.CancelJobRequest(job_id=job.job_id, reason="enough"),
                                              metadata=env.md("publisher"))).job
    assert cancelled.state == job_pb2.JOB_STATE_CANCELLED
    assert [t.state for t in cancelled.trials] == [job_pb2.JOB_STATE_CANCELLED] * 3
    # Both workers are free again: a 2-trial search right after runs to the end.
    short = zmumu_mass_spec(split, model="", max_iter=3)
    short.search.algorithm = job_pb2.SEARCH_ALGORITHM_GRID
    add_values(short.search, "max_depth", [2, 3])
    after, _ = await env.follow((await env.submit(short)).job_id)
    assert after.state == job_pb2.JOB_STATE_SUCCEEDED, after.failure_message
    assert [t.state for t in after.trials] == [job_pb2.JOB_STATE_SUCCEEDED] * 2
