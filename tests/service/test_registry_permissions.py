"""Per-model permissions through gRPC: restricted models, grants by the owner, revocation on the
next call, the audit trail of permission changes."""

from __future__ import annotations

import grpc
import pytest

from beamops.common.v1 import auth_pb2
from beamops.registry.v1 import registry_service_pb2 as rs
from tests.fixtures.registry import assert_clear

MODEL = "jet-tagger"


async def _restricted_model(registry, owner: str = "deployer"):
    model = await registry.create_model(MODEL, role=owner, restricted=True)
    await registry.create_type(MODEL, "1.0.0", role=owner)
    return model


async def _grant(registry, principal: str, role: int, by: str = "deployer", reason: str = "joins the team"):
    req = rs.SetModelPermissionRequest(model=MODEL, principal=principal, role=role, reason=reason)
    return (await registry.stub.SetModelPermission(req, metadata=registry.md(by))).permission


async def test_only_owner_grants_and_admins_may_change_a_restricted_model(registry):
    model = await _restricted_model(registry)
    assert (model.owner, model.restricted) == ("deployer-user", True)

    # A publisher with no grant: refused, and the message names the model.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.create_params(MODEL, "1.0.0")
    assert_clear(err.value, grpc.StatusCode.PERMISSION_DENIED, MODEL, "restricted", "publisher-user")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.create_type(MODEL, "1.1.0")
    assert_clear(err.value, grpc.StatusCode.PERMISSION_DENIED, MODEL)

    # The owner grants it publisher on this model: now it may publish.
    granted = await _grant(registry, "publisher-user", auth_pb2.ROLE_PUBLISHER)
    assert (granted.model, granted.principal, granted.role, granted.granted_by) == (
        MODEL, "publisher-user", auth_pb2.ROLE_PUBLISHER, "deployer-user")
    version = await registry.create_params(MODEL, "1.0.0")
    assert (version.version, version.created_by) == ("1.0", "publisher-user")
    staging = rs.SetAliasRequest(model=MODEL, alias="staging", version="1.0", reason="try it")
    assert (await registry.stub.SetAlias(staging, metadata=registry.md())).alias.version == "1.0"
    # A grant never raises the global role: production still needs a deployer.
    production = rs.SetAliasRequest(model=MODEL, alias="production", version="1.0", reason="go live")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.SetAlias(production, metadata=registry.md())
    assert_clear(err.value, grpc.StatusCode.PERMISSION_DENIED, "production")

    # Admins need no grant.
    assert (await registry.create_params(MODEL, "1.0.0", role="admin")).version == "1.1"

    listed = await registry.stub.ListModelPermissions(rs.ListModelPermissionsRequest(model=MODEL),
                                                      metadata=registry.md("reader"))
    assert [(p.principal, p.role) for p in listed.permissions] == [("publisher-user", auth_pb2.ROLE_PUBLISHER)]

    # Revoking is effective on the very next call.
    await registry.stub.RemoveModelPermission(
        rs.RemoveModelPermissionRequest(model=MODEL, principal="publisher-user", reason="left the team"),
        metadata=registry.md("deployer"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.create_params(MODEL, "1.0.0")
    assert_clear(err.value, grpc.StatusCode.PERMISSION_DENIED, MODEL)
    versions = await registry.stub.ListParametersVersions(rs.ListParametersVersionsRequest(model=MODEL),
                                                          metadata=registry.md("reader"))
    assert sorted(v.version for v in versions.parameters) == ["1.0", "1.1"]  # nothing written

    # The audit log shows both permission changes, by whom and why.
    events = await registry.stub.ListAuditEvents(rs.ListAuditEventsRequest(model=MODEL, action="permission."),
                                                 metadata=registry.md("reader"))
    assert [(e.action, e.actor, e.reason, e.details["principal"]) for e in events.events] == [
        ("permission.remove", "deployer-user", "left the team", "publisher-user"),
        ("permission.set", "deployer-user", "joins the team", "publisher-user")]
    assert events.events[1].details["role"] == "publisher"


async def test_a_grant_below_the_needed_role_is_not_enough(registry):
    await _restricted_model(registry)
    await _grant(registry, "publisher-user", auth_pb2.ROLE_READER)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.create_params(MODEL, "1.0.0")
    assert_clear(err.value, grpc.StatusCode.PERMISSION_DENIED, MODEL, "reader")
    # Re-granting replaces the grant.
    assert (await _grant(registry, "publisher-user", auth_pb2.ROLE_PUBLISHER)).role == auth_pb2.ROLE_PUBLISHER
    assert (await registry.create_params(MODEL, "1.0.0")).version == "1.0"


async def test_only_the_owner_or_an_admin_manages_permissions(registry):
    await _restricted_model(registry)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _grant(registry, "publisher-user", auth_pb2.ROLE_PUBLISHER, by="publisher")
    assert_clear(err.value, grpc.StatusCode.PERMISSION_DENIED, MODEL, "owner")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.UpdateModel(rs.UpdateModelRequest(name=MODEL, restricted=False),
                                        metadata=registry.md("publisher"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # An admin may grant on any model; the owner may open the model again.
    assert (await _grant(registry, "reader-user", auth_pb2.ROLE_READER, by="admin")).granted_by == "admin-user"
    opened = await registry.stub.UpdateModel(rs.UpdateModelRequest(name=MODEL, restricted=False, reason="open"),
                                             metadata=registry.md("deployer"))
    assert opened.model.restricted is False
    assert (await registry.create_params(MODEL, "1.0.0")).version == "1.0"  # open: any publisher


async def test_open_models_stay_open_to_every_publisher(registry):
    model = await registry.create_model("open-model", role="deployer")
    assert model.restricted is False
    await registry.create_type("open-model", "1.0.0")
    assert (await registry.create_params("open-model", "1.0.0")).created_by == "publisher-user"


async def test_bad_permission_requests_are_clear(registry):
    await _restricted_model(registry)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _grant(registry, "publisher-user", auth_pb2.ROLE_UNSPECIFIED)
    assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "role")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _grant(registry, "", auth_pb2.ROLE_PUBLISHER)
    assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "principal")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.RemoveModelPermission(
            rs.RemoveModelPermissionRequest(model=MODEL, principal="nobody"), metadata=registry.md("deployer"))
    assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "nobody", MODEL)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.SetModelPermission(
            rs.SetModelPermissionRequest(model="no-such-model", principal="x", role=auth_pb2.ROLE_READER),
            metadata=registry.md("admin"))
    assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "no-such-model")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.SetModelPermission(
            rs.SetModelPermissionRequest(model=MODEL, principal="x", role=auth_pb2.ROLE_READER),
            metadata=registry.md("reader"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
