"""Bad training requests: INVALID_ARGUMENT (or the right code) at submit time, before anything runs,
with a clear message naming what is wrong and no server path."""

from __future__ import annotations

import grpc
import pytest

from beamops.data.v1 import data_service_pb2 as dpb
from beamops.training.v1 import job_pb2, training_service_pb2 as ts

from tests.fixtures.registry import assert_clear
from tests.fixtures.training import zmumu_mass_spec


async def submit_error(env, spec, role="publisher", **kw) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.submit(spec, role=role, **kw)
    return err.value


async def test_bad_specs_are_refused_before_anything_runs(training_env):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    unsplit = (await env.data.GetDatasetVersion(dpb.GetDatasetVersionRequest(
        dataset="zmumu", version_id=split.parents[0].version_id), metadata=env.md("reader"))).version

    def spec(**changes):
        s = zmumu_mass_spec(split, model="")
        for name, value in changes.items():
            if name == "dataset_version":
                s.dataset.version_id = value
            elif name in ("features", "metrics"):
                target = s.feature_branches if name == "features" else s.metrics
                del target[:]
                target.extend(value)
            elif name == "hyper":
                s.model.hyperparameters.update(value)
            else:
                setattr(s, name, value)
        return s

    cases = [
        (spec(dataset_version="dsv-0000000000000000"), "does not exist"),
        (spec(dataset_version="v-bad"), "is not valid"),
        (spec(dataset_version=unsplit.version_id), "not split"),
        (spec(features=["E1", "no_such_branch"]), "no branch 'no_such_branch'"),
        (spec(features=[]), "feature_branches is empty"),
        (spec(label_branch="Type"), "Type"),
        (spec(hyper={"max_depht": 3}), "unknown hyperparameter 'max_depht'"),
        (spec(seed=-5), "seed"),
        (spec(metrics=["roc_auc"]), "unknown metric 'roc_auc'"),
    ]
    entry = spec()
    entry.model.entry_point = "os:system; rm -rf /"
    cases.append((entry, "invalid entry point"))
    missing = spec()
    missing.model.entry_point = "beamops.training.examples.not_installed:Net"
    cases.append((missing, "not installed"))
    no_kind = spec()
    no_kind.model.ClearField("builtin")
    cases.append((no_kind, "choose the model"))
    split_set = spec()
    split_set.dataset.split = "train"
    cases.append((split_set, "split empty"))
    named_split = spec()
    named_split.splits.test = "holdout"
    cases.append((named_split, "'holdout'"))
    for bad, words in cases:
        err = await submit_error(env, bad)
        assert_clear(err, grpc.StatusCode.INVALID_ARGUMENT, words)
    jobs = await env.training.ListJobs(ts.ListJobsRequest(), metadata=env.md("reader"))
    assert list(jobs.jobs) == []  # nothing was queued


async def test_a_feature_count_that_does_not_fit_the_model_type_is_refused(training_env):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    job, _ = await env.follow((await env.submit(zmumu_mass_spec(split, model="mass", max_iter=3))).job_id)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.failure_message
    fewer = zmumu_mass_spec(split, model="mass", max_iter=3)
    del fewer.feature_branches[4:]
    err = await submit_error(env, fewer)
    assert_clear(err, grpc.StatusCode.INVALID_ARGUMENT, "takes 8 inputs", "4")


async def test_roles_and_unknown_jobs(training_env):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    err = await submit_error(env, zmumu_mass_spec(split, model=""), role="reader")
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    foreign = zmumu_mass_spec(split, model="")
    foreign.model.entry_point = "os.path:join"  # importing a module runs its code: allowlisted only
    err = await submit_error(env, foreign)
    assert_clear(err, grpc.StatusCode.PERMISSION_DENIED, "entry_point_modules", "os.path")
    for call, request in ((env.training.GetJob, ts.GetJobRequest(job_id="job-nope")),
                          (env.training.CancelJob, ts.CancelJobRequest(job_id="job-nope")),
                          (env.training.ReproduceJob, ts.ReproduceJobRequest(job_id="job-nope"))):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await call(request, metadata=env.md("publisher"))
        assert_clear(e.value, grpc.StatusCode.NOT_FOUND, "job-nope")
    with pytest.raises(grpc.aio.AioRpcError) as e:
        async for _ in env.training.WatchJob(ts.WatchJobRequest(job_id="job-nope"), metadata=env.md("reader")):
            pass
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


async def test_validate_only_checks_everything_and_queues_nothing(training_env):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    job = await env.submit(zmumu_mass_spec(split, model=""), validate_only=True)
    assert job.job_id == "" and job.spec.dataset.content_hash == split.content_hash
    jobs = await env.training.ListJobs(ts.ListJobsRequest(), metadata=env.md("reader"))
    assert list(jobs.jobs) == []
