"""Aliases through gRPC: set, move, history, "at time T", protection, optimistic concurrency."""

from __future__ import annotations

import grpc
import pytest

from beamops.registry.v1 import registry_service_pb2 as rs
from tests.fixtures.registry import assert_clear


async def _model_with_versions(registry, name="m", n=3):
    await registry.create_model(name)
    await registry.create_type(name, "1.0.0")
    return [(await registry.create_params(name, "1.0.0")).version for _ in range(n)]


async def test_set_move_history_and_resolve_at_time(registry):
    await _model_with_versions(registry)
    set_ = registry.stub.SetAlias
    first = (await set_(rs.SetAliasRequest(model="m", alias="staging", version="1.0", reason="first try"),
                        metadata=registry.md())).alias
    assert (first.version, first.protected, first.updated_by) == ("1.0", False, "publisher-user")
    moved = (await set_(rs.SetAliasRequest(model="m", alias="staging", version="1.2", reason="better auc"),
                        metadata=registry.md())).alias
    md = registry.md("reader")
    now = await registry.stub.ResolveAlias(rs.ResolveAliasRequest(model="m", alias="staging"), metadata=md)
    assert (now.alias.version, now.parameters.version) == ("1.2", "1.2")
    assert list(now.parameters.aliases) == ["staging"]
    then = await registry.stub.ResolveAlias(rs.ResolveAliasRequest(model="m", alias="staging", at=first.update_time),
                                            metadata=md)
    assert then.alias.version == "1.0"
    later = await registry.stub.ResolveAlias(rs.ResolveAliasRequest(model="m", alias="staging", at=moved.update_time),
                                             metadata=md)
    assert later.alias.version == "1.2"
    before = rs.ResolveAliasRequest(model="m", alias="staging")
    before.at.FromSeconds(first.update_time.seconds - 3600)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.ResolveAlias(before, metadata=md)
    assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "staging")

    history = await registry.stub.ListAliasHistory(rs.ListAliasHistoryRequest(model="m", alias="staging"), metadata=md)
    assert [(e.from_version, e.to_version, e.reason, e.actor) for e in history.events] == [
        ("1.0", "1.2", "better auc", "publisher-user"), ("", "1.0", "first try", "publisher-user")]

    await registry.stub.DeleteAlias(rs.DeleteAliasRequest(model="m", alias="staging", reason="retired"),
                                    metadata=registry.md("deployer"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.ResolveAlias(rs.ResolveAliasRequest(model="m", alias="staging"), metadata=md)
    assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "staging")
    history = await registry.stub.ListAliasHistory(rs.ListAliasHistoryRequest(model="m"), metadata=md)
    assert (history.events[0].from_version, history.events[0].to_version) == ("1.2", "")
    aliases = await registry.stub.ListAliases(rs.ListAliasesRequest(model="m"), metadata=md)
    assert list(aliases.aliases) == []


async def test_production_is_protected(registry):
    await _model_with_versions(registry)
    req = rs.SetAliasRequest(model="m", alias="production", version="1.0", reason="go live")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.SetAlias(req, metadata=registry.md("publisher"))
    assert_clear(err.value, grpc.StatusCode.PERMISSION_DENIED, "production", "deployer")
    alias = (await registry.stub.SetAlias(req, metadata=registry.md("deployer"))).alias
    assert (alias.version, alias.protected, alias.updated_by) == ("1.0", True, "deployer-user")
    move = rs.SetAliasRequest(model="m", alias="production", version="1.1", reason="sneaky")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.SetAlias(move, metadata=registry.md("publisher"))
    assert_clear(err.value, grpc.StatusCode.PERMISSION_DENIED, "protected")
    now = await registry.stub.ResolveAlias(rs.ResolveAliasRequest(model="m", alias="production"),
                                           metadata=registry.md("reader"))
    assert now.alias.version == "1.0"  # the refused move left no trace
    assert (await registry.stub.SetAlias(move, metadata=registry.md("deployer"))).alias.version == "1.1"


async def test_any_alias_can_be_made_protected(registry):
    await _model_with_versions(registry)
    await registry.stub.SetAlias(rs.SetAliasRequest(model="m", alias="trigger-l1", version="1.0", protected=True),
                                 metadata=registry.md("deployer"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.SetAlias(rs.SetAliasRequest(model="m", alias="trigger-l1", version="1.2"),
                                     metadata=registry.md("publisher"))
    assert_clear(err.value, grpc.StatusCode.PERMISSION_DENIED, "trigger-l1")


async def test_expected_version_guards_against_lost_updates(registry):
    await _model_with_versions(registry)
    set_ = registry.stub.SetAlias
    await set_(rs.SetAliasRequest(model="m", alias="staging", version="1.0", expected_version=""),
               metadata=registry.md())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await set_(rs.SetAliasRequest(model="m", alias="staging", version="1.2", expected_version="1.1"),
                   metadata=registry.md())
    assert_clear(err.value, grpc.StatusCode.FAILED_PRECONDITION, "1.0", "1.1")
    ok = await set_(rs.SetAliasRequest(model="m", alias="staging", version="1.2", expected_version="1.0"),
                    metadata=registry.md())
    assert ok.alias.version == "1.2"


async def test_alias_to_unknown_version_or_bad_name(registry):
    await _model_with_versions(registry, n=1)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.SetAlias(rs.SetAliasRequest(model="m", alias="staging", version="9.9"),
                                     metadata=registry.md())
    assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "9.9")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.SetAlias(rs.SetAliasRequest(model="m", alias="../prod", version="1.0"),
                                     metadata=registry.md())
    assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "alias name")


async def test_hot_lookups_return_the_whole_version(registry):
    """ResolveAlias, GetParametersVersion and ResolveIov read one joined row (lookups.py): they
    must return exactly what the create call returned, artifacts, aliases and lineage included."""
    from beamops.common.v1 import lineage_pb2
    from beamops.registry.v1 import iov_pb2, model_pb2
    from tests.fixtures.registry import make_onnx

    await registry.create_model("m")
    await registry.create_type("m", "1.0.0")
    await registry.create_params("m", "1.0.0")
    onnx_art = await registry.upload("m", make_onnx())
    report = await registry.upload("m", b'{"luts": 1200}', fmt=model_pb2.ARTIFACT_FORMAT_FIRMWARE_REPORT,
                                   filename="report.json")
    other = await registry.upload("m", b"hls project", fmt=model_pb2.ARTIFACT_FORMAT_OTHER, filename="p.txt")
    created = await registry.create_params(
        "m", "1.0.0", primary_artifact_id=onnx_art.artifact_id,
        derived_artifact_ids=[other.artifact_id, report.artifact_id], metrics={"auc": 0.91},
        tags={"team": "ecal"}, description="second",
        lineage=model_pb2.Lineage(seed=7, hyperparameters={"depth": "3"},
                                  parents=[lineage_pb2.ParametersRef(model="m", version="1.0")]))
    for alias in ("staging", "candidate"):
        await registry.stub.SetAlias(rs.SetAliasRequest(model="m", alias=alias, version="1.1"),
                                     metadata=registry.md())
    expected = rs.GetParametersVersionResponse(parameters=created).parameters
    del expected.aliases[:]
    expected.aliases.extend(["candidate", "staging"])

    md = registry.md("reader")
    got = await registry.stub.ResolveAlias(rs.ResolveAliasRequest(model="m", alias="staging"), metadata=md)
    assert got.parameters == expected
    assert [a.artifact_id for a in got.parameters.derived_artifacts] == [other.artifact_id, report.artifact_id]
    assert got.parameters.primary_artifact.signature.inputs[0].name == "x"
    assert (got.alias.name, got.alias.version, got.alias.protected) == ("staging", "1.1", False)
    fetched = await registry.stub.GetParametersVersion(rs.GetParametersVersionRequest(model="m", version="1.1"),
                                                       metadata=md)
    assert fetched.parameters == expected
    plain = await registry.stub.GetParametersVersion(rs.GetParametersVersionRequest(model="m", version="1.0"),
                                                     metadata=md)
    assert (list(plain.parameters.aliases), plain.parameters.HasField("primary_artifact")) == ([], False)

    dep = registry.md("deployer")
    await registry.stub.CreateIovTag(rs.CreateIovTagRequest(name="t", model="m", kind=iov_pb2.IOV_KIND_RUN),
                                     metadata=dep)
    await registry.stub.AppendIov(rs.AppendIovRequest(tag="t", since=5, version="1.1", reason="calib"), metadata=dep)
    iov = await registry.stub.ResolveIov(rs.ResolveIovRequest(tag="t", point=2**63 - 1), metadata=md)
    assert (iov.entry.parameters.model, iov.entry.parameters.version, iov.entry.since, iov.until,
            iov.entry.reason) == ("m", "1.1", 5, 0, "calib")

    for bad, code, word in ((rs.ResolveAliasRequest(model="nope", alias="staging"), grpc.StatusCode.NOT_FOUND, "nope"),
                            (rs.ResolveAliasRequest(model="m", alias="gone"), grpc.StatusCode.NOT_FOUND, "gone")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await registry.stub.ResolveAlias(bad, metadata=md)
        assert_clear(err.value, code, word)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.GetParametersVersion(rs.GetParametersVersionRequest(model="m", version="1.9"), metadata=md)
    assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "1.9")
