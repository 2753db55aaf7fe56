"""Token administration through the registry's gRPC API (admins away from the server machine):
a token made here works at once, on this service and on any service sharing the tokens file;
revoked, it stops; only admins may; every change is in the audit log; bad input is refused
clearly and changes nothing."""

from __future__ import annotations

import grpc
import pytest

from beamops.common.v1 import auth_pb2
from beamops.registry.server import create_server
from beamops.registry.settings import RegistrySettings
from beamops.registry.v1 import registry_service_pb2 as rs, registry_service_pb2_grpc
from beamops.runtime.auth import TokenStore

from tests.fixtures.registry import assert_clear
from tests.fixtures.services import running


def bearer(token: str):
    return (("authorization", f"Bearer {token}"),)


async def test_admin_creates_lists_and_revokes_tokens(registry, tokens):
    stub, admin = registry.stub, tokens.metadata("admin")
    made = await stub.CreateToken(rs.CreateTokenRequest(name="operator-ana", role=auth_pb2.ROLE_DEPLOYER,
                                                        reason="night shift"), metadata=admin)
    assert made.token and made.info.name == "operator-ana" and made.info.role == auth_pb2.ROLE_DEPLOYER
    assert made.token not in tokens.path.read_text()  # only its hash is kept
    assert TokenStore(tokens.path).authenticate(made.token).name == "operator-ana"  # other services too
    # the new token works at once, with its role
    model = (await stub.CreateModel(rs.CreateModelRequest(name="orbit-fb"), metadata=bearer(made.token))).model
    assert model.owner == "operator-ana"

    listed = await stub.ListTokens(rs.ListTokensRequest(page_size=2), metadata=admin)
    names = [t.name for t in listed.tokens]
    while listed.next_page_token:
        listed = await stub.ListTokens(rs.ListTokensRequest(page_size=2, page_token=listed.next_page_token),
                                       metadata=admin)
        names += [t.name for t in listed.tokens]
    assert names == sorted(["operator-ana", "reader-user", "publisher-user", "deployer-user", "admin-user"])

    await stub.RevokeToken(rs.RevokeTokenRequest(name="operator-ana", reason="shift over"), metadata=admin)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetModel(rs.GetModelRequest(name="orbit-fb"), metadata=bearer(made.token))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

    events = (await stub.ListAuditEvents(rs.ListAuditEventsRequest(action="token."), metadata=admin)).events
    assert [(e.action, e.resource, e.actor, e.reason) for e in reversed(events)] == [
        ("token.create", "token/operator-ana", "admin-user", "night shift"),
        ("token.revoke", "token/operator-ana", "admin-user", "shift over")]
    assert made.token not in str(events)


async def test_only_admins_manage_tokens(registry, tokens):
    for role in ("reader", "publisher", "deployer"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await registry.stub.CreateToken(rs.CreateTokenRequest(name="sneaky", role=auth_pb2.ROLE_ADMIN),
                                            metadata=tokens.metadata(role))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await registry.stub.ListTokens(rs.ListTokensRequest(), metadata=tokens.metadata(role))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "sneaky" not in TokenStore(tokens.path).names()


@pytest.mark.parametrize("request_, code, words", [
    (rs.CreateTokenRequest(name="x", role=auth_pb2.ROLE_UNSPECIFIED), grpc.StatusCode.INVALID_ARGUMENT, ["role"]),
    (rs.CreateTokenRequest(name="", role=auth_pb2.ROLE_READER), grpc.StatusCode.INVALID_ARGUMENT, ["name"]),
    (rs.CreateTokenRequest(name="bad\nname", role=auth_pb2.ROLE_READER), grpc.StatusCode.INVALID_ARGUMENT, ["name"]),
    (rs.CreateTokenRequest(name="admin-user", role=auth_pb2.ROLE_READER), grpc.StatusCode.ALREADY_EXISTS,
     ["admin-user", "revoke"]),
    (rs.RevokeTokenRequest(name="nobody"), grpc.StatusCode.NOT_FOUND, ["nobody"]),
])
async def test_bad_requests_are_refused_and_change_nothing(registry, tokens, request_, code, words):
    before = tokens.path.read_text()
    method = registry.stub.CreateToken if isinstance(request_, rs.CreateTokenRequest) else registry.stub.RevokeToken
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await method(request_, metadata=tokens.metadata("admin"))
    assert_clear(err.value, code, *words)
    assert tokens.path.read_text() == before
    events = await registry.stub.ListAuditEvents(rs.ListAuditEventsRequest(action="token."),
                                                 metadata=tokens.metadata("admin"))
    assert list(events.events) == []


async def test_without_authentication_there_are_no_tokens_to_manage(tmp_path):
    settings = RegistrySettings(port=0, var_dir=tmp_path / "var", auth_enabled=False,
                                database_url=f"sqlite:///{tmp_path / 'registry.db'}")
    async with running(create_server, settings) as (_server, channel):
        stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListTokens(rs.ListTokensRequest())
        assert_clear(err.value, grpc.StatusCode.FAILED_PRECONDITION, "authentication is off")
