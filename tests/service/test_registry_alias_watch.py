"""WatchAliasEvents: alias moves as they happen, each once and in order, resumable by event id."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from beamops.common.v1 import auth_pb2
from beamops.registry.v1 import registry_service_pb2 as rs
from tests.fixtures.registry import assert_clear


async def _setup(registry) -> None:
    await registry.create_model("jets")
    await registry.create_type("jets", "1.0.0")
    for _ in range(2):
        await registry.create_params("jets", "1.0.0")


async def _moves(registry, *moves: tuple[str, str]) -> None:
    for alias, version in moves:
        await registry.stub.SetAlias(rs.SetAliasRequest(model="jets", alias=alias, version=version, reason="test"),
                                     metadata=registry.md("deployer"))


async def test_a_watcher_gets_every_move_from_now_on_and_can_resume(registry):
    await _setup(registry)
    await _moves(registry, ("production", "1.0"))  # before the watch: not sent
    call = registry.stub.WatchAliasEvents(rs.WatchAliasEventsRequest(), metadata=registry.md("reader"))
    await asyncio.sleep(0.3)  # the watch has started
    await _moves(registry, ("production", "1.1"), ("staging", "1.0"), ("production", "1.0"))
    got = [await asyncio.wait_for(call.read(), 10) for _ in range(3)]
    call.cancel()
    assert [(g.event.alias, g.event.from_version, g.event.to_version) for g in got] == [
        ("production", "1.0", "1.1"), ("staging", "", "1.0"), ("production", "1.1", "1.0")]
    assert [g.event.actor for g in got] == ["deployer-user"] * 3
    ids = [g.event_id for g in got]
    assert ids == sorted(ids) and len(set(ids)) == 3

    resumed = registry.stub.WatchAliasEvents(rs.WatchAliasEventsRequest(after_event_id=ids[0]),
                                             metadata=registry.md("reader"))
    again = [await asyncio.wait_for(resumed.read(), 10) for _ in range(2)]
    resumed.cancel()
    assert [g.event_id for g in again] == ids[1:]


async def test_watching_needs_a_token_and_a_sane_resume_point(registry):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.WatchAliasEvents(rs.WatchAliasEventsRequest()).read()
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.WatchAliasEvents(rs.WatchAliasEventsRequest(after_event_id=-1),
                                             metadata=registry.md("reader")).read()
    assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "after_event_id")


async def test_a_revoked_token_ends_an_open_watch(registry):
    """An idle stream ends by itself with UNAUTHENTICATED once its token is revoked (the runtime's
    auth interceptor checks open streams again when the tokens change): every service's streams."""
    await _setup(registry)
    token = registry.tokens.store.create("night-watch", auth_pb2.ROLE_READER)
    call = registry.stub.WatchAliasEvents(rs.WatchAliasEventsRequest(),
                                          metadata=(("authorization", f"Bearer {token}"),))
    await asyncio.sleep(0.3)  # the watch has started
    await _moves(registry, ("production", "1.0"))
    got = await asyncio.wait_for(call.read(), 10)
    assert got.event.to_version == "1.0"
    other = registry.stub.WatchAliasEvents(rs.WatchAliasEventsRequest(), metadata=registry.md("reader"))
    await asyncio.sleep(0.3)
    registry.tokens.store.revoke("night-watch")
    code = await asyncio.wait_for(call.code(), 30)  # nothing moves: it must end by itself
    assert code == grpc.StatusCode.UNAUTHENTICATED and "revoked" in await call.details()
    # Another reader's watch, open across the revocation, goes on.
    await _moves(registry, ("production", "1.1"))
    assert (await asyncio.wait_for(other.read(), 10)).event.to_version == "1.1"
    other.cancel()
