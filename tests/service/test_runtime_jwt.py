"""JWT bearer tokens through gRPC, on the real registry servicer behind the real interceptors:
the JWT's subject becomes the principal (owner, audit actor, grantee), its claim the role.

The server is built here with the same interceptor chain runtime/server.py builds (errors, then
auth with ``jwt_verifier_for(settings)``); test_runtime_jwks_url.py goes through create_server."""

from __future__ import annotations

import grpc
import pytest

from beamops.common.v1 import auth_pb2
from beamops.registry.server import build_registry
from beamops.registry.servicer import RegistryServicer
from beamops.registry.settings import RegistrySettings
from beamops.registry.v1 import registry_service_pb2 as rs, registry_service_pb2_grpc
from beamops.runtime.auth import TokenStore, jwt_verifier_for, policy_for
from beamops.runtime.interceptors import AuthInterceptor, ErrorInterceptor

from tests.fixtures.jwt_issuer import AUDIENCE, ISSUER
from tests.fixtures.registry import assert_clear


@pytest.fixture
async def stub(tmp_path, tokens, jwt_issuer):
    settings = RegistrySettings(port=0, var_dir=tmp_path / "var", tokens_file=tokens.path,
                                database_url=f"sqlite:///{tmp_path / 'registry.db'}",
                                jwt_jwks_file=jwt_issuer.jwks_path, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    registry = build_registry(settings)
    descriptor = rs.DESCRIPTOR.services_by_name["RegistryService"]
    server = grpc.aio.server(interceptors=[
        ErrorInterceptor(),
        AuthInterceptor(TokenStore(settings.tokens_path), policy_for([descriptor]), jwt=jwt_verifier_for(settings)),
    ])
    registry_service_pb2_grpc.add_RegistryServiceServicer_to_server(RegistryServicer(registry), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield registry_service_pb2_grpc.RegistryServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(1)
        registry.store.dispose()


def bearer(token: str):
    return (("authorization", f"Bearer {token}"),)


async def test_jwt_principals_own_models_and_appear_in_the_audit_log(stub, jwt_issuer, tokens):
    alice = bearer(jwt_issuer.token("alice", "publisher"))
    model = (await stub.CreateModel(rs.CreateModelRequest(name="jet-tagger", restricted=True), metadata=alice)).model
    assert model.owner == "alice"
    # bob (JWT publisher) is not granted: refused; alice grants him: allowed
    bob = bearer(jwt_issuer.token("bob", ["offline_access", "publisher"]))
    type_req = rs.CreateModelTypeRequest(model="jet-tagger", version="1.0.0")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateModelType(type_req, metadata=bob)
    assert_clear(err.value, grpc.StatusCode.PERMISSION_DENIED, "jet-tagger")
    await stub.SetModelPermission(rs.SetModelPermissionRequest(model="jet-tagger", principal="bob",
                                                               role=auth_pb2.ROLE_PUBLISHER), metadata=alice)
    assert (await stub.CreateModelType(type_req, metadata=bob)).model_type.created_by == "bob"
    # the tokens file still works next to JWTs
    events = await stub.ListAuditEvents(rs.ListAuditEventsRequest(model="jet-tagger"),
                                        metadata=tokens.metadata("reader"))
    assert [(e.action, e.actor) for e in events.events] == [
        ("model_type.create", "bob"), ("permission.set", "alice"), ("model.create", "alice")]


@pytest.mark.parametrize("make, code, words", [
    (lambda i: i.token("alice", "admin", lifetime_s=-120), grpc.StatusCode.UNAUTHENTICATED, "expired"),
    (lambda i: i.token("alice", "admin", audience="other-app"), grpc.StatusCode.UNAUTHENTICATED, "audience"),
    (lambda i: i.token("alice", "admin", issuer="https://evil.example.org"), grpc.StatusCode.UNAUTHENTICATED, "issuer"),
    (lambda i: i.token("alice", "admin")[:-4] + "AAAA", grpc.StatusCode.UNAUTHENTICATED, "signature"),
    (lambda i: i.token("alice", "reader"), grpc.StatusCode.PERMISSION_DENIED, "publisher"),
    (lambda i: i.token("alice", "nobody"), grpc.StatusCode.PERMISSION_DENIED, "no beamops role"),
])
async def test_bad_jwts_are_refused_with_a_clear_status(stub, jwt_issuer, make, code, words):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateModel(rs.CreateModelRequest(name="m"), metadata=bearer(make(jwt_issuer)))
    assert_clear(err.value, code, words)
    listed = await stub.ListModels(rs.ListModelsRequest(), metadata=bearer(jwt_issuer.token("r", "reader")))
    assert list(listed.models) == []  # nothing was created
