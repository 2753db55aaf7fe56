"""Item 3: names with '/', '..', NUL, control characters, odd Unicode (RTL override, zero-width,
look-alikes) or too long are INVALID_ARGUMENT on every service, and nothing is stored.

Names reach URLs, logs, Triton model names and repository folders, so an allowlist holds them:
one rule for every kind (beamops.runtime.names), under which upper case is fine everywhere.
"""

from __future__ import annotations

import grpc

from beamops.common.v1 import lineage_pb2
from beamops.data.v1 import data_service_pb2 as dpb, dataset_pb2
from beamops.inference.v1 import deployment_pb2 as deppb, inference_service_pb2 as ipb
from beamops.registry.v1 import registry_service_pb2 as rs
from beamops.training.v1 import job_pb2

from tests.fixtures.inference import mlp_onnx
from tests.fixtures.training import zmumu_mass_spec

from .assertions import expect_error, files_under

IA = grpc.StatusCode.INVALID_ARGUMENT

BAD_NAMES = [
    "a/b", "../x", "..", "x/..", "a/../b", "/abs", "a\\b", "x\x00y", "x\x00", "x\ny", "abc\n", "x\ty", "x\x1b[31m",
    "x\x7f", "evil\u202egnp.x", "zero\u200bwidth", "bom\ufeff", "\uff4dodel", "mod\u0435l",  # Cyrillic e
    "caf\u00e9", "x" * 300, "", " lead", "trail ", "a b", "a;rm -rf", "a$(id)", "a`id`", "%2e%2e", "a%2fb",
]
# Names with a '..' that is not a path component ("a..b") are refused too, by every service.
DOT_DOT = ["a..b"]


async def test_registry_names_are_invalid_and_nothing_is_stored(registry):
    await registry.create_model("good")
    await registry.create_type("good", "1.0.0")
    art = await registry.upload("good", __import__("tests.fixtures.registry", fromlist=["x"]).make_onnx())
    params = await registry.create_params("good", "1.0.0", primary_artifact_id=art.artifact_id)
    md, dmd = registry.md(), registry.md("deployer")
    audit_before = len((await registry.stub.ListAuditEvents(rs.ListAuditEventsRequest(page_size=1000),
                                                            metadata=registry.md("reader"))).events)
    for bad in BAD_NAMES + DOT_DOT:
        await expect_error(registry.stub.CreateModel(rs.CreateModelRequest(name=bad), metadata=md), IA, echo=[bad])
        await expect_error(registry.stub.SetAlias(rs.SetAliasRequest(model="good", alias=bad, version=params.version),
                                                  metadata=dmd), IA, echo=[bad])
        await expect_error(registry.stub.CreateIovTag(rs.CreateIovTagRequest(name=bad, model="good"), metadata=dmd),
                           IA, echo=[bad])
        await expect_error(registry.stub.CreateGlobalTag(rs.CreateGlobalTagRequest(name=bad), metadata=dmd),
                           IA, echo=[bad])
        await expect_error(registry.stub.UpdateModel(rs.UpdateModelRequest(name="good", tags={bad or "_": "v"}),
                                                     metadata=md), IA, echo=[bad])
        await expect_error(registry.stub.GetModel(rs.GetModelRequest(name=bad), metadata=md), IA, echo=[bad])
    rmd = registry.md("reader")
    assert [m.name for m in (await registry.stub.ListModels(rs.ListModelsRequest(), metadata=rmd)).models] == ["good"]
    assert list((await registry.stub.ListAliases(rs.ListAliasesRequest(model="good"), metadata=rmd)).aliases) == []
    assert list((await registry.stub.ListIovTags(rs.ListIovTagsRequest(), metadata=rmd)).tags) == []
    after = (await registry.stub.ListAuditEvents(rs.ListAuditEventsRequest(page_size=1000), metadata=rmd)).events
    assert len(after) == audit_before


async def test_dataset_names_are_invalid_and_nothing_is_stored(data_client, data_settings):
    for bad in BAD_NAMES + DOT_DOT:
        await expect_error(data_client.register(bad, ["uproot-Zmumu.root"]), IA, echo=[bad])
    good = (await data_client.register("zmumu", ["uproot-Zmumu.root"])).version
    for bad in BAD_NAMES:
        await expect_error(data_client.stub.DeriveDatasetVersion(dpb.DeriveDatasetVersionRequest(
            parent=lineage_pb2.DatasetVersionRef(dataset="zmumu", version_id=good.version_id), dataset=bad or "_",
            selection=dataset_pb2.SelectionDerivation(cut="M > 1")), metadata=data_client.md()), IA, echo=[bad])
    listed = await data_client.stub.ListDatasets(dpb.ListDatasetsRequest(), metadata=data_client.md("reader"))
    assert [d.name for d in listed.datasets] == ["zmumu"]
    versions = await data_client.stub.ListDatasetVersions(dpb.ListDatasetVersionsRequest(dataset="zmumu"),
                                                          metadata=data_client.md("reader"))
    assert [v.version_id for v in versions.versions] == [good.version_id]


async def test_deployment_names_are_invalid_and_nothing_is_deployed(inference_stack):
    stack = inference_stack
    params = await stack.publish("jets", mlp_onnx(), alias="staging")
    async with stack.inference() as (_server, stub):
        repository = stack.settings().var_dir
        before = files_under(repository)
        md = stack.md("deployer")
        for bad in BAD_NAMES[:-8] + DOT_DOT:  # the shell-ish ones are covered by test_shell
            if not bad:
                continue  # an empty name means "the model's name"
            if not bad.endswith("\n"):  # see test_a_trailing_newline_in_a_deployment_name...
                await expect_error(stub.Deploy(ipb.DeployRequest(
                    model="jets", name=bad, target=deppb.DeploymentTarget(parameters_version=params.version)),
                    metadata=md), IA, echo=[bad])
            await expect_error(stub.Deploy(ipb.DeployRequest(
                model=bad, target=deppb.DeploymentTarget(parameters_version=params.version)), metadata=md),
                IA, echo=[bad])
            await expect_error(stub.Deploy(ipb.DeployRequest(
                model="jets", name="jets", target=deppb.DeploymentTarget(alias=bad)), metadata=md), IA, echo=[bad])
        listed = await stub.ListDeployments(ipb.ListDeploymentsRequest(), metadata=stack.md("reader"))
        assert list(listed.deployments) == []
        new = {p for p in files_under(repository) - before if "triton-models" in p.parts}
        assert not new, new


async def test_a_trailing_newline_in_a_deployment_name_is_invalid_and_not_stored(inference_stack):
    stack = inference_stack
    params = await stack.publish("jets", mlp_onnx())
    async with stack.inference() as (_server, stub):
        await expect_error(stub.Deploy(ipb.DeployRequest(
            model="jets", name="abc\n", target=deppb.DeploymentTarget(parameters_version=params.version)),
            metadata=stack.md("deployer")), IA, echo=["abc\n"])
        listed = await stub.ListDeployments(ipb.ListDeploymentsRequest(), metadata=stack.md("reader"))
        assert list(listed.deployments) == []


async def test_training_names_are_invalid_and_no_job_is_stored(training_env):
    env = training_env
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    for bad in BAD_NAMES + DOT_DOT:
        spec = zmumu_mass_spec(split)
        spec.publish.model_type.model = bad
        if not bad:
            continue  # no publish target is allowed
        await expect_error(env.training.SubmitJob(
            __import__("beamops.training.v1.training_service_pb2", fromlist=["x"]).SubmitJobRequest(spec=spec),
            metadata=env.md()), IA, echo=[bad])
        spec = zmumu_mass_spec(split)
        spec.dataset.dataset = bad
        await expect_error(env.training.SubmitJob(
            __import__("beamops.training.v1.training_service_pb2", fromlist=["x"]).SubmitJobRequest(spec=spec),
            metadata=env.md()), IA, echo=[bad])
    from beamops.training.v1 import training_service_pb2 as ts

    jobs = await env.training.ListJobs(ts.ListJobsRequest(), metadata=env.md("reader"))
    assert list(jobs.jobs) == []
    assert job_pb2.JOB_STATE_QUEUED  # the enum exists (a job would be QUEUED first)
