"""Intervals of validity through gRPC: append-only tags, resolve by run, global tags."""

from __future__ import annotations

import grpc
import pytest

from beamops.registry.v1 import iov_pb2, registry_service_pb2 as rs
from tests.fixtures.registry import assert_clear


async def _setup(registry, model: str, n: int = 3) -> None:
    await registry.create_model(model)
    await registry.create_type(model, "1.0.0")
    for _ in range(n):
        await registry.create_params(model, "1.0.0")


async def test_append_and_resolve_by_run(registry):
    await _setup(registry, "ecal")
    dep, md = registry.md("deployer"), registry.md("reader")
    tag = (await registry.stub.CreateIovTag(rs.CreateIovTagRequest(name="ecal-calib", model="ecal",
                                                                   kind=iov_pb2.IOV_KIND_RUN), metadata=dep)).tag
    assert (tag.model, tag.kind, tag.created_by) == ("ecal", iov_pb2.IOV_KIND_RUN, "deployer-user")
    for since, version in ((100, "1.0"), (200, "1.1"), (350, "1.2")):
        entry = (await registry.stub.AppendIov(rs.AppendIovRequest(tag="ecal-calib", since=since, version=version,
                                                                   reason=f"run {since}"), metadata=dep)).entry
        assert (entry.since, entry.parameters.version) == (since, version)
    resolve = registry.stub.ResolveIov
    expected = {100: ("1.0", 200), 199: ("1.0", 200), 200: ("1.1", 350), 349: ("1.1", 350),
                350: ("1.2", 0), 10**12: ("1.2", 0)}
    for point, (version, until) in expected.items():
        got = await resolve(rs.ResolveIovRequest(tag="ecal-calib", point=point), metadata=md)
        assert (got.entry.parameters.version, got.until) == (version, until), point
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await resolve(rs.ResolveIovRequest(tag="ecal-calib", point=99), metadata=md)
    assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "99")
    listed = await registry.stub.ListIovs(rs.ListIovsRequest(tag="ecal-calib", page_size=2), metadata=md)
    assert [e.since for e in listed.entries] == [100, 200] and listed.next_page_token
    rest = await registry.stub.ListIovs(rs.ListIovsRequest(tag="ecal-calib", page_token=listed.next_page_token),
                                        metadata=md)
    assert [e.since for e in rest.entries] == [350] and not rest.next_page_token


async def test_entries_are_append_only(registry):
    await _setup(registry, "ecal")
    dep = registry.md("deployer")
    await registry.stub.CreateIovTag(rs.CreateIovTagRequest(name="t", model="ecal", kind=iov_pb2.IOV_KIND_RUN),
                                     metadata=dep)
    await registry.stub.AppendIov(rs.AppendIovRequest(tag="t", since=200, version="1.0"), metadata=dep)
    for since in (200, 150):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await registry.stub.AppendIov(rs.AppendIovRequest(tag="t", since=since, version="1.1"), metadata=dep)
        assert_clear(err.value, grpc.StatusCode.FAILED_PRECONDITION, "greater than 200")
    with pytest.raises(grpc.aio.AioRpcError) as err:  # publishers may not append
        await registry.stub.AppendIov(rs.AppendIovRequest(tag="t", since=300, version="1.1"),
                                      metadata=registry.md("publisher"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.AppendIov(rs.AppendIovRequest(tag="t", since=300, version="7.0"), metadata=dep)
    assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "7.0")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.CreateIovTag(rs.CreateIovTagRequest(name="u", model="ecal"), metadata=dep)
    assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "IOV_KIND_RUN")


async def test_global_tag_resolves_every_model_for_a_run(registry):
    await _setup(registry, "ecal")
    await _setup(registry, "hcal", n=2)
    dep, md = registry.md("deployer"), registry.md("reader")
    for tag, model in (("ecal-calib", "ecal"), ("hcal-calib", "hcal"), ("late", "hcal")):
        await registry.stub.CreateIovTag(rs.CreateIovTagRequest(name=tag, model=model, kind=iov_pb2.IOV_KIND_RUN),
                                         metadata=dep)
    for tag, since, version in (("ecal-calib", 1, "1.0"), ("ecal-calib", 500, "1.2"),
                                ("hcal-calib", 1, "1.0"), ("hcal-calib", 300, "1.1"), ("late", 10_000, "1.0")):
        await registry.stub.AppendIov(rs.AppendIovRequest(tag=tag, since=since, version=version), metadata=dep)
    g = (await registry.stub.CreateGlobalTag(rs.CreateGlobalTagRequest(
        name="GT-2024-v1", tags=["ecal-calib", "hcal-calib", "late"]), metadata=dep)).global_tag
    assert list(g.tags) == ["ecal-calib", "hcal-calib", "late"]
    got = await registry.stub.ResolveGlobalTag(rs.ResolveGlobalTagRequest(name="GT-2024-v1", point=400), metadata=md)
    assert {(e.tag, e.parameters.model, e.parameters.version) for e in got.entries} == {
        ("ecal-calib", "ecal", "1.0"), ("hcal-calib", "hcal", "1.1")}
    assert list(got.unresolved_tags) == ["late"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.CreateGlobalTag(rs.CreateGlobalTagRequest(name="GT2", tags=["nope"]), metadata=dep)
    assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "nope")
