"""Item 7: calls without credentials or with a revoked token are UNAUTHENTICATED; a reader (or a
publisher) deploying or moving ``production`` is PERMISSION_DENIED, and nothing changes
(MLflow auth bypass CVE-2026-0545 and kin).

Every RPC of every service without a token, with a bogus token and with a role below the one it
requires is covered in tests/service/test_runtime_auth.py (driven by the protos' required_role
options, so a new RPC is covered when it is added); this module adds the revoked-token case on
each service and the production-alias and deployment rules end to end.
"""

from __future__ import annotations

import grpc

from beamops.inference.v1 import deployment_pb2 as deppb, inference_service_pb2 as ipb
from beamops.registry.v1 import registry_service_pb2 as rs
from beamops.runtime.auth import TokenStore

from tests.fixtures.inference import mlp_onnx
from tests.service import test_runtime_auth
from tests.protos import public_services, services

from .assertions import expect_error

PD, UA = grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED


def test_every_rpc_is_covered_by_the_runtime_auth_tests():
    """The per-RPC tests exist and iterate over every service of the protos."""
    assert {s.name for s in services()} == set(test_runtime_auth.SERVICE_MODULES)
    assert callable(test_runtime_auth.test_every_rpc_without_a_token_is_unauthenticated)
    assert callable(test_runtime_auth.test_a_role_below_the_required_one_is_denied)


async def test_a_revoked_token_is_refused_by_every_service_on_the_next_call(tmp_path, tokens):
    from tests.fixtures.services import running

    store = TokenStore(tokens.path)
    from beamops.common.v1 import auth_pb2

    token = store.create("short-lived", auth_pb2.ROLE_ADMIN)
    md = (("authorization", f"Bearer {token}"),)
    for service in public_services():  # GatewayService: test_inference_gateway_control.py
        create_server, settings = test_runtime_auth.settings_for(service.name, tmp_path / "revoked", tokens.path)
        method = next(m for m in service.methods if not m.client_streaming and not m.server_streaming
                      and m.name.startswith(("Get", "List")))
        async with running(create_server, settings) as (_, channel):
            assert await test_runtime_auth.call(channel, method, md) not in (UA, PD), method.full_name
            store.revoke("short-lived")
            assert await test_runtime_auth.call(channel, method, md) == UA, method.full_name
            token = store.create("short-lived", auth_pb2.ROLE_ADMIN)  # for the next service
            md = (("authorization", f"Bearer {token}"),)


async def test_only_deployers_move_production_or_deploy(inference_stack):
    stack = inference_stack
    reg = stack.registry
    v1 = await stack.publish("jets", mlp_onnx(seed=1), alias="production")
    v2 = await stack.publish("jets", mlp_onnx(seed=2))
    rmd = stack.md("reader")
    history = (await reg.stub.ListAliasHistory(rs.ListAliasHistoryRequest(model="jets", alias="production"),
                                               metadata=rmd)).events
    for role in ("reader", "publisher"):
        await expect_error(reg.stub.SetAlias(rs.SetAliasRequest(model="jets", alias="production", version=v2.version),
                                             metadata=stack.md(role)), PD)
        await expect_error(reg.stub.DeleteAlias(rs.DeleteAliasRequest(model="jets", alias="production"),
                                                metadata=stack.md(role)), PD)
    await expect_error(reg.stub.SetAlias(rs.SetAliasRequest(model="jets", alias="staging", version=v2.version,
                                                            protected=True), metadata=stack.md("publisher")), PD)
    resolved = await reg.stub.ResolveAlias(rs.ResolveAliasRequest(model="jets", alias="production"), metadata=rmd)
    assert resolved.parameters.version == v1.version
    after = (await reg.stub.ListAliasHistory(rs.ListAliasHistoryRequest(model="jets", alias="production"),
                                             metadata=rmd)).events
    assert len(after) == len(history)

    async with stack.inference() as (_server, stub):
        target = deppb.DeploymentTarget(alias="production")
        for role in ("reader", "publisher"):
            await expect_error(stub.Deploy(ipb.DeployRequest(model="jets", target=target), metadata=stack.md(role)), PD)
        await expect_error(stub.Deploy(ipb.DeployRequest(model="jets", target=target)), UA)
        await expect_error(stub.Deploy(ipb.DeployRequest(model="jets", target=target),
                                       metadata=(("authorization", "Bearer bmo_forged"),)), UA)
        assert list((await stub.ListDeployments(ipb.ListDeploymentsRequest(), metadata=rmd)).deployments) == []
        await stub.Deploy(ipb.DeployRequest(model="jets", target=target), metadata=stack.md("deployer"))
        for role in ("reader", "publisher"):
            await expect_error(stub.Rollback(ipb.RollbackRequest(name="jets"), metadata=stack.md(role)), PD)
            await expect_error(stub.Undeploy(ipb.UndeployRequest(name="jets"), metadata=stack.md(role)), PD)
        listed = (await stub.ListDeployments(ipb.ListDeploymentsRequest(), metadata=rmd)).deployments
        assert [(d.name, d.parameters.version) for d in listed] == [("jets", v1.version)]
