"""Intervals of validity through gRPC: append-only tags whose later entries correct earlier ones,
resolve by run (or run and lumi section) now or at a snapshot time, global tags."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from beamops.api.iov import pack_run_lumi, unpack_run_lumi
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


async def test_entries_are_never_edited_but_a_later_entry_corrects_an_earlier_since(registry):
    await _setup(registry, "ecal")
    dep, md = registry.md("deployer"), registry.md("reader")
    await registry.stub.CreateIovTag(rs.CreateIovTagRequest(name="t", model="ecal", kind=iov_pb2.IOV_KIND_RUN),
                                     metadata=dep)
    first = (await registry.stub.AppendIov(rs.AppendIovRequest(tag="t", since=200, version="1.0"),
                                           metadata=dep)).entry
    again = (await registry.stub.AppendIov(rs.AppendIovRequest(tag="t", since=200, version="1.1",
                                                               reason="1.0 was a bad fit"), metadata=dep)).entry
    earlier = (await registry.stub.AppendIov(rs.AppendIovRequest(tag="t", since=150, version="1.2"),
                                             metadata=dep)).entry
    assert [e.since for e in (first, again, earlier)] == [200, 200, 150]
    inserted = [e.create_time.ToNanoseconds() for e in (first, again, earlier)]
    assert inserted == sorted(set(inserted))  # strictly increasing within the tag
    resolve = registry.stub.ResolveIov
    got = {p: await resolve(rs.ResolveIovRequest(tag="t", point=p), metadata=md) for p in (150, 199, 200, 10**6)}
    assert {p: (r.entry.parameters.version, r.until) for p, r in got.items()} == {
        150: ("1.2", 200), 199: ("1.2", 200), 200: ("1.1", 0), 10**6: ("1.1", 0)}
    assert got[200].entry.reason == "1.0 was a bad fit" and got[200].entry.create_time == again.create_time
    at_first = await resolve(rs.ResolveIovRequest(tag="t", point=200, snapshot_time=first.create_time), metadata=md)
    assert (at_first.entry.parameters.version, at_first.until) == ("1.0", 0)  # as the tag stood then
    listed = (await registry.stub.ListIovs(rs.ListIovsRequest(tag="t"), metadata=md)).entries
    assert [(e.since, e.parameters.version) for e in listed] == [(150, "1.2"), (200, "1.0"), (200, "1.1")]
    assert [e.create_time for e in listed] == [earlier.create_time, first.create_time, again.create_time]
    with pytest.raises(grpc.aio.AioRpcError) as err:  # publishers may not append
        await registry.stub.AppendIov(rs.AppendIovRequest(tag="t", since=300, version="1.1"),
                                      metadata=registry.md("publisher"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.AppendIov(rs.AppendIovRequest(tag="t", since=300, version="7.0"), metadata=dep)
    assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "7.0")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.CreateIovTag(rs.CreateIovTagRequest(name="u", model="ecal"), metadata=dep)
    assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "IOV_KIND_RUN", "IOV_KIND_RUN_LUMI")
    assert len((await registry.stub.ListIovs(rs.ListIovsRequest(tag="t"), metadata=md)).entries) == 3  # refused: none


async def test_a_wrong_interval_for_past_runs_is_corrected_while_a_snapshot_keeps_the_old_answer(registry):
    await _setup(registry, "ecal")
    dep, md = registry.md("deployer"), registry.md("reader")
    await registry.stub.CreateIovTag(rs.CreateIovTagRequest(name="ecal-calib", model="ecal",
                                                            kind=iov_pb2.IOV_KIND_RUN), metadata=dep)
    for since, version in ((1, "1.0"), (300, "1.1")):
        last = (await registry.stub.AppendIov(rs.AppendIovRequest(tag="ecal-calib", since=since, version=version),
                                              metadata=dep)).entry
    await registry.stub.CreateGlobalTag(rs.CreateGlobalTagRequest(name="GT-v1", tags=["ecal-calib"]), metadata=dep)
    job_time = last.create_time  # a reconstruction job ran then and used 1.0 for run 200

    # Runs 150..299 needed 1.2, not 1.0: the correction starts at an older since than the last entry.
    fix = (await registry.stub.AppendIov(rs.AppendIovRequest(tag="ecal-calib", since=150, version="1.2",
                                                             reason="1.0 wrong for runs 150-299"),
                                         metadata=dep)).entry
    assert fix.create_time.ToNanoseconds() > job_time.ToNanoseconds()

    async def resolve(point, snapshot=None):
        got = await registry.stub.ResolveIov(rs.ResolveIovRequest(tag="ecal-calib", point=point,
                                                                  snapshot_time=snapshot), metadata=md)
        return got.entry.parameters.version, got.until

    async def global_tag(point, snapshot=None):
        got = await registry.stub.ResolveGlobalTag(rs.ResolveGlobalTagRequest(name="GT-v1", point=point,
                                                                              snapshot_time=snapshot), metadata=md)
        return [(e.tag, e.since, e.parameters.version) for e in got.entries]

    for snapshot in (None, fix.create_time):  # now, and as of the correction
        assert [await resolve(p, snapshot) for p in (100, 150, 200, 299, 300)] == [
            ("1.0", 150), ("1.2", 300), ("1.2", 300), ("1.2", 300), ("1.1", 0)]
        assert await global_tag(200, snapshot) == [("ecal-calib", 150, "1.2")]
    assert [await resolve(p, job_time) for p in (100, 150, 200, 299, 300)] == [  # what the job got
        ("1.0", 300), ("1.0", 300), ("1.0", 300), ("1.0", 300), ("1.1", 0)]
    assert await global_tag(200, job_time) == [("ecal-calib", 1, "1.0")]
    # the cache is not in the way: the same snapshot again, after a now-query, is still the old answer
    assert await resolve(200) == ("1.2", 300) and await resolve(200, job_time) == ("1.0", 300)

    listed = (await registry.stub.ListIovs(rs.ListIovsRequest(tag="ecal-calib"), metadata=md)).entries
    assert [(e.since, e.parameters.version) for e in listed] == [(1, "1.0"), (150, "1.2"), (300, "1.1")]
    assert listed[1].create_time == fix.create_time and listed[1].reason == "1.0 wrong for runs 150-299"
    before = await registry.stub.ListIovs(rs.ListIovsRequest(tag="ecal-calib", snapshot_time=job_time,
                                                             page_size=1), metadata=md)
    rest = await registry.stub.ListIovs(rs.ListIovsRequest(tag="ecal-calib", snapshot_time=job_time,
                                                           page_token=before.next_page_token), metadata=md)
    assert [e.since for e in [*before.entries, *rest.entries]] == [1, 300] and not rest.next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as err:  # a page token is bound to its snapshot
        await registry.stub.ListIovs(rs.ListIovsRequest(tag="ecal-calib", page_token=before.next_page_token),
                                     metadata=md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    events = (await registry.stub.ListAuditEvents(rs.ListAuditEventsRequest(action="iov.append"),
                                                  metadata=md)).events
    assert [(e.details["since"], e.details["version"]) for e in events] == [("150", "1.2"), ("300", "1.1"),
                                                                          ("1", "1.0")]  # newest first
    assert events[0].reason == "1.0 wrong for runs 150-299" and events[0].details["until"] == "300"
    assert "entry since 1 " in events[0].details["covers"] and "covers" not in events[1].details
    with pytest.raises(grpc.aio.AioRpcError) as err:  # before the tag's first entry existed
        await registry.stub.ResolveIov(rs.ResolveIovRequest(tag="ecal-calib", point=200,
                                                            snapshot_time=Timestamp(seconds=0)), metadata=md)
    assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "1970-01-01")


async def test_a_snapshot_in_the_future_or_out_of_range_is_refused(registry):
    await _setup(registry, "ecal", n=1)
    dep, md = registry.md("deployer"), registry.md("reader")
    await registry.stub.CreateIovTag(rs.CreateIovTagRequest(name="t", model="ecal", kind=iov_pb2.IOV_KIND_RUN),
                                     metadata=dep)
    await registry.stub.AppendIov(rs.AppendIovRequest(tag="t", since=1, version="1.0"), metadata=dep)
    await registry.stub.CreateGlobalTag(rs.CreateGlobalTagRequest(name="g", tags=["t"]), metadata=dep)
    year_9999 = Timestamp(seconds=253_402_300_000)
    for bad, words in ((year_9999, ("later than the registry's clock", "unset")),
                       (Timestamp(seconds=-62_135_596_801), ("out of range",)),  # before year 1
                       (Timestamp(seconds=1, nanos=-1), ("nanos",))):
        for call in (registry.stub.ResolveIov(rs.ResolveIovRequest(tag="t", point=5, snapshot_time=bad), metadata=md),
                     registry.stub.ResolveGlobalTag(rs.ResolveGlobalTagRequest(name="g", point=5, snapshot_time=bad),
                                                    metadata=md),
                     registry.stub.ListIovs(rs.ListIovsRequest(tag="t", snapshot_time=bad), metadata=md)):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "snapshot_time", *words)


async def test_run_lumi_tags_pack_run_and_lumi_section_and_check_every_since(registry):
    await _setup(registry, "ecal")
    dep, md = registry.md("deployer"), registry.md("reader")
    for name, kind in (("lumi", iov_pb2.IOV_KIND_RUN_LUMI), ("runs", iov_pb2.IOV_KIND_RUN),
                       ("times", iov_pb2.IOV_KIND_TIMESTAMP)):
        tag = (await registry.stub.CreateIovTag(rs.CreateIovTagRequest(name=name, model="ecal", kind=kind),
                                                metadata=dep)).tag
        assert tag.kind == kind
    assert unpack_run_lumi(pack_run_lumi(362000, 120)) == (362000, 120)
    assert pack_run_lumi(362000, 120) == 362000 * 2**32 + 120
    for since, version in ((1, "1.0"), (pack_run_lumi(362000, 120), "1.1"), (pack_run_lumi(362001, 1), "1.2")):
        await registry.stub.AppendIov(rs.AppendIovRequest(tag="lumi", since=since, version=version), metadata=dep)
    lumi_120, next_run = pack_run_lumi(362000, 120), pack_run_lumi(362001, 1)
    expected = {(361999, 7): ("1.0", lumi_120), (362000, 119): ("1.0", lumi_120), (362000, 120): ("1.1", next_run),
                (362000, 2**32 - 1): ("1.1", next_run), (362001, 1): ("1.2", 0), (2**31 - 1, 2**32 - 1): ("1.2", 0)}
    for (run, lumi), want in expected.items():
        got = await registry.stub.ResolveIov(rs.ResolveIovRequest(tag="lumi", point=pack_run_lumi(run, lumi)),
                                             metadata=md)
        assert (got.entry.parameters.version, got.until) == want, (run, lumi)
        assert unpack_run_lumi(got.entry.since)[0] <= run
    for tag, since, words in (("lumi", 362000, ("run 0", str(pack_run_lumi(362000, 1)))),  # a plain run number
                              ("runs", pack_run_lumi(362000, 1), ("at most 4294967295", "IOV_KIND_RUN_LUMI")),
                              ("times", 1_767_225_600_000, ("Unix time in seconds", "milliseconds")),
                              ("runs", 2**63, ("at most",))):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await registry.stub.AppendIov(rs.AppendIovRequest(tag=tag, since=since, version="1.0"), metadata=dep)
        assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, *words)
    assert len((await registry.stub.ListIovs(rs.ListIovsRequest(tag="lumi"), metadata=md)).entries) == 3
    for tag in ("runs", "times"):
        assert not (await registry.stub.ListIovs(rs.ListIovsRequest(tag=tag), metadata=md)).entries
    events = (await registry.stub.ListAuditEvents(rs.ListAuditEventsRequest(action="iov.append"), metadata=md)).events
    assert events[0].details["since_run_lumi"] == "run 362001, lumi 1" and len(events) == 3


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
