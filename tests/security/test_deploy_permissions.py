"""Items 8 and 4 of the security review: serving obeys per-model permissions, every deployment
change and its audit record are one unit, and the internal credentials are the least they can be.

- A deployer without a grant on a *restricted* model may not Deploy, Undeploy, Roll back or
  replace it (PERMISSION_DENIED, as for moving its alias), and nothing changes: not the
  deployments, not Triton's repository, not the audit log. With a grant (or as its owner or an
  admin) it works. The rule has one home, the registry: the inference service records each change
  (RecordAuditEvent) before it makes it, and the registry checks the right to change the model
  there. A switch for an alias move of a restricted model (recorded with the service's own token,
  the move itself authorised by the registry) still happens.
- No audit, no change: while the registry cannot record the event, an Undeploy is UNAVAILABLE and
  changes nothing; a switch for an alias move waits (WARNING alert) and happens once recorded.
- The gateway's token is confined to GatewayService: it cannot deploy, undeploy or list anything.
- No token is in the environment of Triton or of the processes running model code
  (/proc/<pid>/environ of the process running Triton and of its Python-backend stubs).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import numpy as np
import pytest

from beamops.common.v1 import auth_pb2
from beamops.inference.v1 import deployment_pb2 as dpb, gateway_service_pb2 as gpb, gateway_service_pb2_grpc
from beamops.inference.v1 import inference_service_pb2 as pb, inference_service_pb2_grpc
from beamops.registry.v1 import registry_service_pb2 as rs
from beamops.runtime.errors import Unavailable

from beamops.tensors import to_tensor

from tests.fixtures.inference import N_FEATURES, mlp_onnx
from tests.fixtures.triton import live_children

from .assertions import expect_error

PD, UN = grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAVAILABLE


async def _deployment_events(registry, model: str) -> list[tuple[str, str]]:
    events = (await registry.stub.ListAuditEvents(rs.ListAuditEventsRequest(
        model=model, action="deployment.", page_size=1000), metadata=registry.md("reader"))).events
    return [(e.action, e.actor) for e in reversed(events)]


async def _restrict(registry, model: str, by: str = "publisher") -> None:
    await registry.stub.UpdateModel(rs.UpdateModelRequest(name=model, restricted=True, reason="embargo"),
                                    metadata=registry.md(by))


async def _grant(registry, model: str, principal: str, role: int, by: str = "publisher") -> None:
    await registry.stub.SetModelPermission(rs.SetModelPermissionRequest(
        model=model, principal=principal, role=role, reason="test"), metadata=registry.md(by))


async def _revoke(registry, model: str, principal: str, by: str = "publisher") -> None:
    await registry.stub.RemoveModelPermission(rs.RemoveModelPermissionRequest(
        model=model, principal=principal, reason="test"), metadata=registry.md(by))


# ---- the registry's rule, through RecordAuditEvent (no Triton) ------------------------------------

async def test_recording_a_deployment_of_a_restricted_model_needs_the_right_to_change_it(registry):
    await registry.create_model("m", role="publisher", restricted=True)  # owner: publisher-user
    await registry.create_model("open")
    before = await _deployment_events(registry, "m")
    dep = registry.md("deployer")
    for action in ("deployment.deploy", "deployment.undeploy", "deployment.rollback", "deployment.replace"):
        await expect_error(registry.stub.RecordAuditEvent(rs.RecordAuditEventRequest(
            action=action, model="m", resource="deployments/m"), metadata=dep),
            PD, "'m'", "restricted", "deployer-user")
    assert await _deployment_events(registry, "m") == before  # a refusal stores nothing

    # An open model, a model that no longer exists, and a switch for an alias move (the service's
    # publisher token; the move was authorised when it was made) need the role alone.
    for model in ("open", "gone"):
        await registry.stub.RecordAuditEvent(rs.RecordAuditEventRequest(
            action="deployment.undeploy", model=model, resource=f"deployments/{model}"), metadata=dep)
    await registry.stub.RecordAuditEvent(rs.RecordAuditEventRequest(
        action="deployment.follow_alias", model="m", resource="deployments/m"), metadata=registry.md("publisher"))

    # A grant of publisher is not enough; one of deployer is; an admin needs none.
    await _grant(registry, "m", "deployer-user", auth_pb2.ROLE_PUBLISHER)
    await expect_error(registry.stub.RecordAuditEvent(rs.RecordAuditEventRequest(
        action="deployment.deploy", model="m", resource="deployments/m"), metadata=dep),
        PD, "'m'", "granted only publisher", "deployer")
    await _grant(registry, "m", "deployer-user", auth_pb2.ROLE_DEPLOYER)
    await registry.stub.RecordAuditEvent(rs.RecordAuditEventRequest(
        action="deployment.deploy", model="m", resource="deployments/m"), metadata=dep)
    await registry.stub.RecordAuditEvent(rs.RecordAuditEventRequest(
        action="deployment.undeploy", model="m", resource="deployments/m"), metadata=registry.md("admin"))
    assert await _deployment_events(registry, "m") == [
        ("deployment.follow_alias", "publisher-user"), ("deployment.deploy", "deployer-user"),
        ("deployment.undeploy", "admin-user")]


# ---- end to end: the inference service --------------------------------------------------------------

def _entries(stack) -> list[str]:
    root = stack.var_dir / "triton-models"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


async def _state(stub, md) -> list[tuple]:
    deps = (await stub.ListDeployments(pb.ListDeploymentsRequest(), metadata=md)).deployments
    return [(d.name, d.state, d.parameters.version, d.previous_parameters.version, d.following_alias)
            for d in deps]


async def _wait_version(stub, md, name: str, version: str, timeout_s: float = 60.0) -> dpb.Deployment:
    for _ in range(int(timeout_s / 0.1)):
        dep = (await stub.GetDeployment(pb.GetDeploymentRequest(name=name), metadata=md)).deployment
        if dep.parameters.version == version and dep.state == dpb.DEPLOYMENT_STATE_READY:
            return dep
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} did not switch to {version}: {dep}")


async def test_a_deployer_without_a_grant_cannot_change_what_a_restricted_model_serves(inference_stack):
    stack = inference_stack
    v1 = await stack.publish("jets", mlp_onnx(seed=1))
    v2 = await stack.publish("jets", mlp_onnx(seed=2))
    await _restrict(stack.registry, "jets")  # by its owner, publisher-user
    dep, reader = stack.md("deployer"), stack.md("reader")
    async with stack.inference() as (_server, stub):
        # No grant: Deploy refused, nothing deployed, nothing in Triton, nothing recorded.
        message = await expect_error(stub.Deploy(pb.DeployRequest(
            model="jets", target=dpb.DeploymentTarget(parameters_version=v1.version)), metadata=dep),
            PD, "'jets'", "restricted", "deployer-user", "nothing was changed")
        assert "deploying" in message
        assert await _state(stub, reader) == [] and _entries(stack) == []
        assert await _deployment_events(stack.registry, "jets") == []

        # A grant of deployer on it: deploys, and replaces (a switch to v2), following an alias.
        await _grant(stack.registry, "jets", "deployer-user", auth_pb2.ROLE_DEPLOYER)
        await stub.Deploy(pb.DeployRequest(model="jets", target=dpb.DeploymentTarget(
            parameters_version=v1.version)), metadata=dep)
        await stack.registry.stub.SetAlias(rs.SetAliasRequest(model="jets", alias="candidate", version=v2.version),
                                           metadata=stack.md("publisher"))
        await stub.Deploy(pb.DeployRequest(model="jets", replace=True, target=dpb.DeploymentTarget(
            alias="candidate")), metadata=dep)
        await _wait_version(stub, reader, "jets", v2.version)

        # The grant removed: Undeploy, Rollback and a replace are refused and change nothing.
        await _revoke(stack.registry, "jets", "deployer-user")
        state, entries = await _state(stub, reader), _entries(stack)
        assert state == [("jets", dpb.DEPLOYMENT_STATE_READY, v2.version, v1.version, True)]
        events = await _deployment_events(stack.registry, "jets")
        await expect_error(stub.Undeploy(pb.UndeployRequest(name="jets", reason="r"), metadata=dep),
                           PD, "undeploying 'jets'", "restricted", "deployer-user", "nothing was changed")
        await expect_error(stub.Rollback(pb.RollbackRequest(name="jets", reason="r"), metadata=dep),
                           PD, "rolling back 'jets'", "restricted", "deployer-user", "nothing was changed")
        await expect_error(stub.Deploy(pb.DeployRequest(model="jets", replace=True, target=dpb.DeploymentTarget(
            parameters_version=v1.version)), metadata=dep), PD, "'jets'", "restricted", "nothing was changed")
        assert await _state(stub, reader) == state and _entries(stack) == entries
        assert await _deployment_events(stack.registry, "jets") == events

        # An alias move the registry authorised (its owner moves "candidate") is still followed:
        # the switch is recorded with the service's own token, which holds no grant.
        v3 = await stack.publish("jets", mlp_onnx(seed=3))
        await stack.registry.stub.SetAlias(rs.SetAliasRequest(model="jets", alias="candidate", version=v3.version),
                                           metadata=stack.md("publisher"))
        await _wait_version(stub, reader, "jets", v3.version)

        # A grant never raises a role: its owner, a publisher, may not undeploy; an admin needs no grant.
        await expect_error(stub.Undeploy(pb.UndeployRequest(name="jets"), metadata=stack.md("publisher")),
                           PD, "deployer")
        await stub.Rollback(pb.RollbackRequest(name="jets", reason="back"), metadata=stack.md("admin"))
        await stub.Undeploy(pb.UndeployRequest(name="jets", reason="done"), metadata=stack.md("admin"))
        assert await _state(stub, reader) == []
        assert [a for a, _ in await _deployment_events(stack.registry, "jets")] == [
            "deployment.deploy", "deployment.replace", "deployment.follow_alias", "deployment.rollback",
            "deployment.undeploy"]


async def test_no_audit_no_change(inference_stack, monkeypatch):
    """While the registry cannot record the event, an Undeploy changes nothing (UNAVAILABLE), and
    a switch for an alias move waits until it can be recorded."""
    from beamops.registry.registry import Registry

    stack = inference_stack
    v1 = await stack.publish("jets", mlp_onnx(seed=1), alias="candidate")
    v2 = await stack.publish("jets", mlp_onnx(seed=2))
    dep, reader = stack.md("deployer"), stack.md("reader")
    record = Registry.record_audit_event
    async with stack.inference() as (_server, stub):
        await stub.Deploy(pb.DeployRequest(model="jets", target=dpb.DeploymentTarget(alias="candidate")),
                          metadata=dep)
        state, entries = await _state(stub, reader), _entries(stack)

        def down(*args, **kwargs):
            raise Unavailable("the registry's database is not reachable; retry shortly")

        monkeypatch.setattr(Registry, "record_audit_event", down)
        await expect_error(stub.Undeploy(pb.UndeployRequest(name="jets", reason="r"), metadata=dep),
                           UN, "undeploying 'jets'", "nothing was changed", "audit log", "retry")
        assert await _state(stub, reader) == state and _entries(stack) == entries

        await stack.set_alias("jets", "candidate", v2.version)  # recorded by the registry itself
        for _ in range(100):
            alerts = (await stub.ListAlerts(pb.ListAlertsRequest(deployment="jets"), metadata=reader)).alerts
            if any("audit log" in a.summary for a in alerts):
                break
            await asyncio.sleep(0.1)
        assert any("audit log" in a.summary and v1.version in a.summary for a in alerts), alerts
        assert await _state(stub, reader) == state and _entries(stack) == entries  # still v1

        monkeypatch.setattr(Registry, "record_audit_event", record)  # the registry is back
        await _wait_version(stub, reader, "jets", v2.version)
        alerts = (await stub.ListAlerts(pb.ListAlertsRequest(deployment="jets"), metadata=reader)).alerts
        assert [a.state for a in alerts if "audit log" in a.summary] == [dpb.ALERT_STATE_RESOLVED]
        await stub.Undeploy(pb.UndeployRequest(name="jets", reason="done"), metadata=dep)
        assert await _state(stub, reader) == []
        assert [a for a, _ in await _deployment_events(stack.registry, "jets")] == [
            "deployment.deploy", "deployment.follow_alias", "deployment.undeploy"]


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(e.split("=", 1) for e in raw.decode(errors="replace").split("\0") if "=" in e)


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        children = live_children(todo.pop())
        found += children
        todo += children
    return found


@pytest.mark.parametrize("triton_in_gateway", [True, False], ids=["triton-in-gateway", "tritonserver"])
async def test_internal_credentials_are_least_and_out_of_model_processes(inference_stack, monkeypatch,
                                                                        triton_in_gateway):
    import beamops.inference.server as inference_server

    stack = inference_stack
    await stack.publish("jets", mlp_onnx(seed=1), alias="production")
    # As `make up` and compose pass it: the service's registry token in its environment.
    monkeypatch.setenv("BEAMOPS_INFERENCE_REGISTRY_TOKEN", stack.service_token)
    made, original = {}, inference_server.authenticator_for

    def spy(settings, extra=None):  # the tokens valid in the inference service alone
        made.update(extra or {})
        return original(settings, extra=extra)

    monkeypatch.setattr(inference_server, "authenticator_for", spy)
    async with stack.inference(triton_in_gateway=triton_in_gateway) as (server, stub):
        ((gateway_token, principal),) = made.items()
        assert principal.name == "inference-gateway"
        gw = (("authorization", f"Bearer {gateway_token}"),)
        await stub.Deploy(pb.DeployRequest(model="jets", target=dpb.DeploymentTarget(alias="production")),
                          metadata=stack.md("deployer"))

        # The gateway's token: GatewayService, and nothing else.
        for call in (stub.Deploy(pb.DeployRequest(model="jets", name="other", target=dpb.DeploymentTarget(
                         alias="production")), metadata=gw),
                     stub.Undeploy(pb.UndeployRequest(name="jets"), metadata=gw),
                     stub.Rollback(pb.RollbackRequest(name="jets"), metadata=gw),
                     stub.ListDeployments(pb.ListDeploymentsRequest(), metadata=gw)):
            await expect_error(call, PD, "inference-gateway", "internal credential", "GatewayService",
                               secrets=[gateway_token])
        assert [d.name for d in (await stub.ListDeployments(pb.ListDeploymentsRequest(),
                                                            metadata=stack.md("reader"))).deployments] == ["jets"]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            routes = gateway_service_pb2_grpc.GatewayServiceStub(channel).WatchRoutes(
                gpb.WatchRoutesRequest(), metadata=gw)
            table = await asyncio.wait_for(routes.read(), 30)
            assert [r.deployment for r in table.routes] == ["jets"]
            routes.cancel()

        # Neither Triton's process nor the stubs running the model's code hold a token.
        triton_pid = int((stack.var_dir / "triton" / "tritonserver.pid").read_text())
        stubs = _descendants(triton_pid)
        assert stubs, "no Python-backend stub runs the deployed model"
        if triton_in_gateway:
            assert triton_pid == server.gateway.pid
        for pid in (triton_pid, *stubs):
            env = _environ(pid)
            assert not [k for k in env if k.startswith("BEAMOPS_")], (pid, sorted(env))
            values = "\0".join(env.values())
            for secret in (gateway_token, stack.service_token, stack.tokens.admin, stack.tokens.deployer):
                assert secret not in values, pid
        # The gateway got its token all the same (on stdin): a Predict through it is answered.
        async with grpc.aio.insecure_channel(server.gateway_address) as channel:
            reply = await inference_service_pb2_grpc.InferenceServiceStub(channel).Predict(
                pb.PredictRequest(deployment="jets", inputs=[to_tensor("x", np.zeros((2, N_FEATURES), np.float32))]),
                metadata=stack.md("reader"))
        assert reply.outputs
