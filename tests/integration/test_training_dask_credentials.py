"""No submitter's token reaches the Dask cluster (docs/security.md, threat 13), and the
submitter's rights still decide: real cluster (tests/fixtures/dask_cluster.py), real data service
and registry. The workers read with their own reader token; the submitter's token is checked
again when the job starts, and registration uses it."""

from __future__ import annotations

import asyncio

import pytest

from beamops.common.v1 import auth_pb2
from beamops.training.v1 import job_pb2, training_service_pb2 as ts

from tests.fixtures.training import FINAL, zmumu_mass_spec

pytestmark = pytest.mark.integration


@pytest.fixture
def training_overrides(dask_scheduler) -> dict:
    return {"dask_scheduler": dask_scheduler, "max_concurrent_jobs": 1}


@pytest.fixture
def submitted(monkeypatch) -> list[str]:
    """What the training service hands the cluster: every ``Client.submit`` call, as text."""
    from distributed import Client

    calls: list[str] = []
    original = Client.submit

    def recording(self, func, *args, **kwargs):
        calls.append(repr((func, args, kwargs)))
        return original(self, func, *args, **kwargs)

    monkeypatch.setattr(Client, "submit", recording)
    return calls


async def test_no_user_token_is_a_task_argument(training_env, submitted, dask_worker_token):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    job, events = await env.follow((await env.submit(zmumu_mass_spec(split, model="dask-creds", max_iter=3))).job_id)
    assert job.executor == job_pb2.EXECUTOR_DASK
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.failure_message
    assert job.result.parameters.version  # registered, with the submitter's token
    assert len(submitted) == 1
    for token in (env.tokens.reader, env.tokens.publisher, env.tokens.deployer, env.tokens.admin,
                  dask_worker_token):
        assert token not in submitted[0]
    texts = [e.log_line.text for e in events if e.WhichOneof("event") == "log_line"]
    assert not any("no data credential" in t for t in texts)


async def test_a_submitter_revoked_while_the_job_waits_cannot_start_it(training_env):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    alice = env.tokens.store.create("alice", auth_pb2.ROLE_PUBLISHER)
    md = (("authorization", f"Bearer {alice}"),)
    # A long job holds the only slot, so alice's job waits QUEUED.
    blocker = await env.submit(zmumu_mass_spec(split, model="", builtin=job_pb2.BUILTIN_MODEL_MLP, max_iter=100_000))
    queued = (await env.training.SubmitJob(ts.SubmitJobRequest(spec=zmumu_mass_spec(split, model="", max_iter=3)),
                                           metadata=md)).job
    assert queued.state == job_pb2.JOB_STATE_QUEUED
    env.tokens.store.revoke("alice")
    await env.training.CancelJob(ts.CancelJobRequest(job_id=blocker.job_id), metadata=env.md("publisher"))
    for _ in range(240):
        job = (await env.training.GetJob(ts.GetJobRequest(job_id=queued.job_id), metadata=env.md("reader"))).job
        if job.state in FINAL:
            break
        await asyncio.sleep(0.5)
    assert job.state == job_pb2.JOB_STATE_FAILED
    assert job.failure_message.startswith("the job did not start: the data service did not accept the credentials")
    _, events = await env.follow(queued.job_id)
    texts = [e.log_line.text for e in events if e.WhichOneof("event") == "log_line"]
    assert not any(t.startswith("running on Dask worker") for t in texts)  # no task was submitted
