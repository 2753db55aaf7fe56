"""Lineage in one call, "trained on dataset X", and the audit log of every mutation."""

from __future__ import annotations

import grpc
import pytest

from beamops.common.v1 import lineage_pb2
from beamops.registry.v1 import iov_pb2, model_pb2, registry_service_pb2 as rs
from tests.fixtures.registry import assert_clear


def _lineage(dataset_version: str, parents=()) -> model_pb2.Lineage:
    return model_pb2.Lineage(
        datasets=[lineage_pb2.DatasetVersionRef(dataset="zmumu", version_id=dataset_version,
                                                content_hash="ab" * 32, split="train")],
        training_job=lineage_pb2.JobRef(job_id="job-7"), hyperparameters={"max_depth": "6"}, seed=42,
        code=lineage_pb2.CodeRef(git=lineage_pb2.GitSource(repository="https://git.example/ml", commit="abc123")),
        environment=lineage_pb2.SoftwareEnvironment(python_version="3.11.9", packages={"xgboost": "2.1.0"}),
        parents=[lineage_pb2.ParametersRef(model=m, version=v) for m, v in parents])


async def test_whole_lineage_in_one_call(registry):
    await registry.create_model("m")
    await registry.create_type("m", "1.0.0")
    await registry.create_params("m", "1.0.0", lineage=_lineage("dsv-1"))
    await registry.create_params("m", "1.0.0", lineage=_lineage("dsv-2", [("m", "1.0")]))
    await registry.create_params("m", "1.0.0", lineage=_lineage("dsv-2", [("m", "1.1")]), metrics={"auc": 0.93})
    await registry.stub.SetAlias(rs.SetAliasRequest(model="m", alias="staging", version="1.2", reason="best"),
                                 metadata=registry.md())
    dep = registry.md("deployer")
    await registry.stub.CreateIovTag(rs.CreateIovTagRequest(name="t", model="m", kind=iov_pb2.IOV_KIND_RUN),
                                     metadata=dep)
    await registry.stub.AppendIov(rs.AppendIovRequest(tag="t", since=10, version="1.2"), metadata=dep)

    md = registry.md("reader")
    got = await registry.stub.GetLineage(rs.GetLineageRequest(model="m", version="1.2"), metadata=md)
    assert [p.version for p in got.chain] == ["1.2", "1.1", "1.0"]
    top = got.chain[0].lineage
    assert (top.seed, top.training_job.job_id, top.hyperparameters["max_depth"]) == (42, "job-7", "6")
    assert (top.code.git.commit, top.environment.packages["xgboost"]) == ("abc123", "2.1.0")
    assert [(d.version_id, d.content_hash) for d in top.datasets] == [("dsv-2", "ab" * 32)]
    assert [(e.alias, e.to_version) for e in got.alias_events] == [("staging", "1.2")]
    assert [(e.tag, e.since) for e in got.iov_entries] == [("t", 10)]

    trained = await registry.stub.ListParametersVersions(
        rs.ListParametersVersionsRequest(dataset_version_id="dsv-2"), metadata=md)
    assert [p.version for p in trained.parameters] == ["1.2", "1.1"]
    staged = await registry.stub.ListParametersVersions(rs.ListParametersVersionsRequest(alias="staging"),
                                                        metadata=md)
    assert [p.version for p in staged.parameters] == ["1.2"]

    with pytest.raises(grpc.aio.AioRpcError) as err:  # a parent must exist
        await registry.create_params("m", "1.0.0", lineage=_lineage("dsv-3", [("m", "5.5")]))
    assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "5.5")


async def test_audit_log_records_every_mutation(registry):
    pub, dep, adm, md = (registry.md(r) for r in ("publisher", "deployer", "admin", "reader"))
    await registry.create_model("m", reason="new tagger")
    await registry.stub.UpdateModel(rs.UpdateModelRequest(name="m", description="b-tagging", reason="doc"),
                                    metadata=pub)
    await registry.create_type("m", "1.0.0")
    art = await registry.upload("m", b"{}", fmt=model_pb2.ARTIFACT_FORMAT_OTHER, filename="config.json")
    await registry.create_params("m", "1.0.0", derived_artifact_ids=[art.artifact_id], reason="trained")
    await registry.stub.SetAlias(rs.SetAliasRequest(model="m", alias="production", version="1.0", reason="go"),
                                 metadata=dep)
    await registry.stub.CreateIovTag(rs.CreateIovTagRequest(name="t", model="m", kind=iov_pb2.IOV_KIND_RUN),
                                     metadata=dep)
    await registry.stub.AppendIov(rs.AppendIovRequest(tag="t", since=1, version="1.0", reason="run 1"), metadata=dep)
    await registry.stub.CreateGlobalTag(rs.CreateGlobalTagRequest(name="gt", tags=["t"]), metadata=dep)
    await registry.stub.DeleteAlias(rs.DeleteAliasRequest(model="m", alias="production", reason="rollback"),
                                    metadata=dep)
    recorded = await registry.stub.RecordAuditEvent(rs.RecordAuditEventRequest(  # as the inference service does
        action="deployment.deploy", model="m", resource="deployments/m-1", details={"version": "1.0"}), metadata=dep)
    assert recorded.event.actor == "deployer-user"

    events = (await registry.stub.ListAuditEvents(rs.ListAuditEventsRequest(), metadata=md)).events
    assert [e.action for e in reversed(events)] == [
        "model.create", "model.update", "model_type.create", "artifact.upload", "parameters.create",
        "alias.create", "iov_tag.create", "iov.append", "global_tag.create", "alias.delete", "deployment.deploy"]
    assert [e.event_id for e in events] == sorted((e.event_id for e in events), reverse=True)
    by_action = {e.action: e for e in events}
    assert by_action["model.create"].reason == "new tagger"
    assert by_action["alias.delete"].actor == "deployer-user"
    assert by_action["parameters.create"].resource == "m/parameters/1.0"
    assert all(e.request_id for e in events)

    aliases_only = await registry.stub.ListAuditEvents(rs.ListAuditEventsRequest(action="alias."), metadata=md)
    assert [e.action for e in aliases_only.events] == ["alias.delete", "alias.create"]
    deployer = await registry.stub.ListAuditEvents(rs.ListAuditEventsRequest(actor="deployer-user"), metadata=md)
    assert [e.action for e in deployer.events] == ["deployment.deploy", "alias.delete", "global_tag.create",
                                                  "iov.append", "iov_tag.create", "alias.create"]
    page = await registry.stub.ListAuditEvents(rs.ListAuditEventsRequest(page_size=4), metadata=md)
    rest = await registry.stub.ListAuditEvents(rs.ListAuditEventsRequest(page_token=page.next_page_token),
                                               metadata=md)
    assert [e.event_id for e in page.events] + [e.event_id for e in rest.events] == [e.event_id for e in events]
    window = rs.ListAuditEventsRequest(start_time=by_action["iov.append"].event_time,
                                       end_time=by_action["alias.delete"].event_time)
    assert {e.action for e in (await registry.stub.ListAuditEvents(window, metadata=md)).events} >= {
        "iov.append", "global_tag.create"}

    await registry.stub.DeleteModel(rs.DeleteModelRequest(name="m", force=True, reason="cleanup"), metadata=adm)
    latest = (await registry.stub.ListAuditEvents(rs.ListAuditEventsRequest(page_size=1), metadata=md)).events[0]
    assert (latest.action, latest.actor, latest.reason) == ("model.delete", "admin-user", "cleanup")

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.RecordAuditEvent(rs.RecordAuditEventRequest(action="Drop Table"), metadata=pub)
    assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "action")


async def test_failed_mutations_leave_no_audit_event(registry):
    await registry.create_model("m")
    with pytest.raises(grpc.aio.AioRpcError):
        await registry.create_model("m")
    with pytest.raises(grpc.aio.AioRpcError):
        await registry.create_params("m", "1.0.0")
    events = (await registry.stub.ListAuditEvents(rs.ListAuditEventsRequest(model="m"),
                                                  metadata=registry.md("reader"))).events
    assert [e.action for e in events] == ["model.create"]


async def test_delete_model_refuses_while_aliases_point_at_it(registry):
    await registry.create_model("m")
    await registry.create_type("m", "1.0.0")
    await registry.create_params("m", "1.0.0")
    await registry.stub.SetAlias(rs.SetAliasRequest(model="m", alias="staging", version="1.0"), metadata=registry.md())
    adm = registry.md("admin")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.DeleteModel(rs.DeleteModelRequest(name="m"), metadata=adm)
    assert_clear(err.value, grpc.StatusCode.FAILED_PRECONDITION, "alias", "force")
    await registry.stub.DeleteModel(rs.DeleteModelRequest(name="m", force=True), metadata=adm)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.GetModel(rs.GetModelRequest(name="m"), metadata=registry.md("reader"))
    assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "'m'")
