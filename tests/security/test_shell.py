"""Item 6: job specs with shell metacharacters never reach a shell (Ray CVE-2023-48022).

The training service starts one worker per job as ``[sys.executable, "-m",
"beamops.training.worker", <job file>]`` without a shell, and every string of a spec is either
checked against an allowlist (names, branches, entry points, metrics) or carried as data
(descriptions). Checked three ways: an ast scan finds no shell use in our code; every process the
services start during the tests is recorded (audit hooks) and none is a shell; and a job whose
every string field carries ``; touch <canary>`` patterns runs to the end without any canary file
appearing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grpc

from beamops.common.v1 import lineage_pb2
from beamops.data.v1 import data_service_pb2 as dpb, dataset_pb2
from beamops.training.v1 import job_pb2, training_service_pb2 as ts

from tests.fixtures.training import zmumu_mass_spec

from . import codescan
from .assertions import expect_error, shells, spawned_processes

IA = grpc.StatusCode.INVALID_ARGUMENT


def injections(canary: Path) -> list[str]:
    c = str(canary)
    return [f"; touch {c}", f"x; touch {c}", f"$(touch {c})", f"`touch {c}`", f"| touch {c}", f"&& touch {c}",
            f"\ntouch {c}", f"x' ; touch {c} ; '", f'x" ; touch {c} ; "', f"${{IFS}}touch${{IFS}}{c}",
            f"__import__('os').system('touch {c}')"]


def spec_with(split, field: str, value: str) -> job_pb2.JobSpec:
    spec = zmumu_mass_spec(split, model="shell-model", max_iter=5)
    if field == "entry_point":
        spec.model.entry_point = value
    elif field == "feature_branches":
        spec.feature_branches.append(value)
    elif field == "label_branch":
        spec.label_branch = value
    elif field == "weight_branch":
        spec.weight_branch = value
    elif field == "metrics":
        spec.metrics.append(value)
    elif field == "dataset":
        spec.dataset.dataset = value
    elif field == "version_id":
        spec.dataset.version_id = value
    elif field == "splits.train":
        spec.splits.train = value
    elif field == "publish.model":
        spec.publish.model_type.model = value
    elif field == "publish.version":
        spec.publish.model_type.version = value
    elif field == "hyperparameter name":
        spec.model.hyperparameters.update({value: 1})
    elif field == "hyperparameter value":
        spec.model.builtin = job_pb2.BUILTIN_MODEL_MLP
        spec.model.hyperparameters.Clear()
        spec.model.hyperparameters.update({"activation": value})
    else:
        raise AssertionError(field)
    return spec


CHECKED_FIELDS = ["entry_point", "feature_branches", "label_branch", "weight_branch", "metrics", "dataset",
                  "version_id", "splits.train", "publish.model", "publish.version", "hyperparameter name",
                  "hyperparameter value"]


async def test_shell_metacharacters_in_checked_fields_are_invalid(training_env, tmp_path):
    env = training_env
    canary = tmp_path / "pwned"
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    with spawned_processes() as spawned:
        for field in CHECKED_FIELDS:
            for value in injections(canary):
                await expect_error(env.training.SubmitJob(ts.SubmitJobRequest(spec=spec_with(split, field, value)),
                                                          metadata=env.md()), IA, echo=[value])
    assert spawned == []  # refused before any worker
    assert shells(spawned) == []
    jobs = await env.training.ListJobs(ts.ListJobsRequest(), metadata=env.md("reader"))
    assert list(jobs.jobs) == []
    assert not canary.exists()


async def test_a_job_with_shell_text_in_free_text_fields_runs_without_a_shell(training_env, tmp_path):
    env = training_env
    canary = tmp_path / "pwned"
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    text = " ".join(injections(canary))
    spec = zmumu_mass_spec(split, model="shell-model", max_iter=5)
    spec.description = text
    spec.publish.description = text
    with spawned_processes() as spawned:
        job = await env.submit(spec)
        final, _events = await env.follow(job.job_id)
    assert final.state == job_pb2.JOB_STATE_SUCCEEDED, final.failure_message
    assert final.spec.description == text  # carried as data, unchanged
    assert not canary.exists()
    assert shells(spawned) == [], spawned
    starts = [args for event, args in spawned if event == "subprocess.Popen"]
    assert starts, "the local executor starts a worker process"
    for executable, argv, *_ in starts:
        assert Path(executable or argv[0]).resolve() == Path(sys.executable).resolve(), (executable, argv)
        assert list(argv[1:3]) == ["-m", "beamops.training.worker"], argv
        assert all(text not in str(a) for a in argv)


async def test_cut_expressions_cannot_run_code(data_client, tmp_path):
    canary = tmp_path / "pwned"
    md = data_client.md()
    for value in injections(canary) + ["M.__class__.__mro__", "open('/etc/passwd')", "lambda: 1",
                                       "[x for x in ().__class__.__base__.__subclasses__()]", "M if 1 else exec('1')"]:
        await expect_error(data_client.register("cuts", ["uproot-Zmumu.root"], cut=value), IA, echo=[value])
    version = (await data_client.register("cuts", ["uproot-Zmumu.root"])).version
    ref = lineage_pb2.DatasetVersionRef(dataset="cuts", version_id=version.version_id)
    for value in injections(canary):
        await expect_error(data_client.stub.ReadDatasetVersion(dpb.ReadDatasetVersionRequest(version=ref, cut=value),
                                                               metadata=data_client.md("reader")), IA, echo=[value])
        await expect_error(data_client.stub.DeriveDatasetVersion(dpb.DeriveDatasetVersionRequest(
            parent=ref, selection=dataset_pb2.SelectionDerivation(cut=value)), metadata=md), IA, echo=[value])
    assert not canary.exists()


def test_no_shell_in_our_code():
    files = codescan.python_files("services", "sdk")
    found = codescan.scan(files, codescan.shell_use)
    assert not found, "\n".join(map(str, found))


def test_the_shell_scan_catches_shell_use(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import os, subprocess, asyncio\nfrom subprocess import run as r\n"
        "os.system('ls')\nsubprocess.run('ls', shell=True)\nr(['ls'], shell=flag)\n"
        "asyncio.create_subprocess_shell('ls')\nos.popen('ls')\nsubprocess.check_output('ls -l')\n"
        "subprocess.run(['ls'])\nsubprocess.Popen(['ls'], shell=False)\n")
    found = codescan.scan([bad], codescan.shell_use)
    assert sorted(f.line for f in found) == [3, 4, 5, 6, 7, 8], [str(f) for f in found]
