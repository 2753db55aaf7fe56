"""Hyperparameter search through gRPC with a real data service and registry: trials run in
parallel worker processes, each is recorded, the best is checked and registered with lineage;
failing trials, cancel and bad search specs."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from beamops.common.v1 import lineage_pb2
from beamops.registry.v1 import registry_service_pb2 as rs
from beamops.training.v1 import job_pb2, training_service_pb2 as ts

from tests.fixtures.registry import assert_clear
from tests.fixtures.training import zmumu_mass_spec
from tests.service.test_runtime_errors import details_of
from tests.service.test_training_lifecycle import worker_pids



def add_values(search: job_pb2.SearchSpec, name: str, values: list) -> None:
    search.parameters.add(name=name).values.extend(values)


def zmumu_grid_search(split) -> job_pb2.JobSpec:
    """4 trials: max_depth x learning_rate, boosted trees regressing the real Zmumu dimuon mass."""
    spec = zmumu_mass_spec(split, model="zmumu-search", max_iter=20)
    spec.search.algorithm = job_pb2.SEARCH_ALGORITHM_GRID
    add_values(spec.search, "max_depth", [2, 6])
    add_values(spec.search, "learning_rate", [0.03, 0.3])
    spec.search.objective_metric = "r2"
    return spec


def most_at_once(trials) -> int:
    points = sorted([(t.start_time.ToMicroseconds(), 1) for t in trials] +
                    [(t.end_time.ToMicroseconds(), -1) for t in trials], key=lambda p: (p[0], p[1]))
    running = peak = 0
    for _, step in points:
        running += step
        peak = max(peak, running)
    return peak


async def test_a_grid_search_on_real_zmumu_events_records_every_trial_and_registers_the_best(training_env):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    submitted = await env.submit(zmumu_grid_search(split))
    assert submitted.spec.search.direction == job_pb2.OBJECTIVE_DIRECTION_MAXIMIZE  # r2: higher is better
    job, events = await env.follow(submitted.job_id)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.failure_message

    trials = list(job.trials)
    assert [t.index for t in trials] == [0, 1, 2, 3]
    assert [(t.hyperparameters["max_depth"], t.hyperparameters["learning_rate"]) for t in trials] == [
        (2, 0.03), (2, 0.3), (6, 0.03), (6, 0.3)]
    assert all(t.hyperparameters["max_iter"] == 20 for t in trials)
    assert all(t.state == job_pb2.JOB_STATE_SUCCEEDED for t in trials)
    r2 = {t.index: {m.name: m.value for m in t.metrics}["r2"] for t in trials}
    assert all(m.split == "validation" for t in trials for m in t.metrics)
    best = [t for t in trials if t.best]
    assert len(best) == 1 and r2[best[0].index] == max(r2.values())
    assert most_at_once(trials) == 2  # the local pool: 2 worker processes at once (the setting)

    # Events: a finished-trial event per trial, metrics and log lines carry their trial.
    finished = [e.trial_finished.trial for e in events if e.WhichOneof("event") == "trial_finished"]
    assert sorted(t.index for t in finished) == [0, 1, 2, 3]
    assert all(t.state == job_pb2.JOB_STATE_SUCCEEDED and t.metrics for t in finished)
    assert {e.metric.trial_index for e in events if e.WhichOneof("event") == "metric"} == {0, 1, 2, 3}
    assert {e.log_line.trial_index for e in events if e.WhichOneof("event") == "log_line"} >= {-1, 0, 1, 2, 3}
    progress = [e.progress for e in events if e.WhichOneof("event") == "progress"]
    assert (progress[-1].trials_finished, progress[-1].trials_total) == (4, 4)
    assert events[-1].state_change.message.startswith(f"best of 4 trials (trial {best[0].index})")

    # The job's result is the best trial's, checked against ONNX and registered with lineage.
    result = job.result
    assert result.onnx_check.passed and result.onnx_check.events_compared > 300
    assert dict(result.hyperparameters) == dict(best[0].hyperparameters)
    test_r2 = {m.name: m.value for m in job.metrics if m.split == "test"}["r2"]
    params = (await env.registry.GetParametersVersion(rs.GetParametersVersionRequest(
        model="zmumu-search", version=result.parameters.version), metadata=env.md("reader"))).parameters
    assert params.tags["search_job"] == job.job_id
    assert params.tags["search_trial"] == str(best[0].index)
    assert params.tags["search_objective"].startswith("maximize validation r2 = ")
    assert params.lineage.training_job.job_id == job.job_id
    assert params.lineage.hyperparameters["max_depth"] == str(int(best[0].hyperparameters["max_depth"]))
    assert params.lineage.seed == 42
    assert {d.version_id for d in params.lineage.datasets} == {split.version_id}
    assert params.metrics["r2"] == pytest.approx(test_r2)
    assert params.primary_artifact.sha256 == result.onnx_sha256

    # Reproducing the search re-trains its best trial alone, bit for bit.
    started = (await env.training.ReproduceJob(ts.ReproduceJobRequest(job_id=job.job_id),
                                               metadata=env.md("publisher"))).job
    assert not started.spec.HasField("search")
    assert dict(started.spec.model.hyperparameters) == dict(best[0].hyperparameters)
    again, _ = await env.follow(started.job_id)
    assert again.state == job_pb2.JOB_STATE_SUCCEEDED, again.failure_message
    assert again.reproduction.reproduced and again.reproduction.predictions_identical


def logistic_search(signal, background, values: list) -> job_pb2.JobSpec:
    """A user model (logistic regression) on generated signal/background events, searching C."""
    spec = job_pb2.JobSpec(
        feature_branches=["met", "ht", "n_jet"], seed=3, metrics=["roc_auc"],
        source_classes=job_pb2.SourceClasses(classes=[
            job_pb2.SourceClass(dataset=lineage_pb2.DatasetVersionRef(dataset="signal", version_id=signal.version_id),
                                class_index=1),
            job_pb2.SourceClass(dataset=lineage_pb2.DatasetVersionRef(dataset="background",
                                                                      version_id=background.version_id),
                                class_index=0)]),
        model=job_pb2.ModelSpec(entry_point="beamops.training.examples.logistic:LogisticModel",
                                task=job_pb2.TASK_CLASSIFICATION))
    spec.search.algorithm = job_pb2.SEARCH_ALGORITHM_GRID
    add_values(spec.search, "C", values)
    return spec


async def test_a_failing_trial_is_recorded_and_the_search_goes_on_but_all_failing_fails_the_job(training_env):
    env = training_env
    signal = await env.split_version("signal", ["signal.root"])
    background = await env.split_version("background", ["background.root"])
    some = await env.submit(logistic_search(signal, background, [-1, 0.5]))
    none = await env.submit(logistic_search(signal, background, [-1, -2]))
    (job, _), (failed, failed_events) = await asyncio.gather(env.follow(some.job_id), env.follow(none.job_id))

    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.failure_message
    bad, good = job.trials
    assert bad.state == job_pb2.JOB_STATE_FAILED and "'C' parameter" in bad.failure_message
    assert not bad.best and not bad.metrics
    assert good.state == job_pb2.JOB_STATE_SUCCEEDED and good.best
    assert job.result.hyperparameters["C"] == 0.5 and job.result.onnx_check.passed

    assert failed.state == job_pb2.JOB_STATE_FAILED
    assert failed.failure_message.startswith("all 2 trials of the search failed; trial 0: ")
    assert "'C' parameter" in failed.failure_message
    for leak in ("/work", "/tmp", "Traceback"):
        assert leak not in failed.failure_message
    assert [t.state for t in failed.trials] == [job_pb2.JOB_STATE_FAILED] * 2
    assert failed_events[-1].state_change.state == job_pb2.JOB_STATE_FAILED


async def start_slow_search_with_two_trials_training(env):
    """A 3-trial grid of very long MLP fits, returned once trials 0 and 1 are both training."""
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    spec = zmumu_mass_spec(split, model="", builtin=job_pb2.BUILTIN_MODEL_MLP, max_iter=100_000)
    spec.search.algorithm = job_pb2.SEARCH_ALGORITHM_GRID
    add_values(spec.search, "hidden_layer_sizes", [[8], [16], [32]])
    job = await env.submit(spec)
    training = set()
    async for response in env.training.WatchJob(ts.WatchJobRequest(job_id=job.job_id),
                                                metadata=env.md("reader"), timeout=120):
        line = response.event.log_line
        if line.text.startswith("training mlp"):
            training.add(line.trial_index)
            if training == {0, 1}:
                break
    return split, job


async def test_cancel_stops_every_running_trial_and_starts_no_new_one(training_env):
    env = training_env
    _, job = await start_slow_search_with_two_trials_training(env)
    assert len(worker_pids(job.job_id)) == 2  # two trial workers at once

    cancelled = (await env.training.CancelJob(ts.CancelJobRequest(job_id=job.job_id, reason="enough"),
                                              metadata=env.md("publisher"))).job
    assert cancelled.state == job_pb2.JOB_STATE_CANCELLED
    assert worker_pids(job.job_id) == []
    assert [t.state for t in cancelled.trials] == [job_pb2.JOB_STATE_CANCELLED] * 3
    assert "before the trial started" in cancelled.trials[2].failure_message
    assert not cancelled.trials[2].HasField("start_time")


async def test_bad_searches_are_refused_at_submit_naming_the_field(training_env):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    unknown = zmumu_grid_search(split)
    unknown.search.parameters[1].name = "learnin_rate"
    empty = zmumu_grid_search(split)
    del empty.search.parameters[0].values.values[:]
    too_many = zmumu_grid_search(split)
    too_many.search.algorithm = job_pb2.SEARCH_ALGORITHM_RANDOM
    too_many.search.num_trials = env.settings.max_trials + 1
    bad_metric = zmumu_grid_search(split)
    bad_metric.search.objective_metric = "roc_auc"
    cases = [(unknown, "spec.search.parameters[1].name", "unknown hyperparameter 'learnin_rate'"),
             (empty, "spec.search.parameters[0].values", "empty"),
             (too_many, "spec.search.num_trials", f"limit of {env.settings.max_trials}"),
             (bad_metric, "spec.search.objective_metric", "not one of the job's metrics")]
    for spec, field, words in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await env.submit(spec)
        assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, words)
        assert [v.field for v in details_of(err.value)["BadRequest"].field_violations] == [field]
    jobs = await env.training.ListJobs(ts.ListJobsRequest(), metadata=env.md("reader"))
    assert list(jobs.jobs) == []
