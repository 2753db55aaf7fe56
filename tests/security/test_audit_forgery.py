"""Item 12: the audit log cannot be forged, and its free text cannot drive a terminal.

RecordAuditEvent (for the other services' changes) refuses the registry's own actions to every
caller, admins included (PERMISSION_DENIED), records the other services' namespaces only with the
role of the change they record, always with the authenticated caller as actor, and refuses details
keys that could pass for who did it. Reasons, resources and details anywhere in the registry refuse
control and bidi characters (INVALID_ARGUMENT), as names do. Each refusal stores nothing.
(`beamops audit` printing stored text literally: tests/integration/test_cli_audit.py.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import grpc
import pytest

from beamops.common.v1 import auth_pb2
from beamops.inference.v1 import deployment_pb2 as deppb, inference_service_pb2 as ipb
from beamops.registry.v1 import iov_pb2, registry_service_pb2 as rs
from beamops.runtime.auth import Principal

from tests.fixtures.inference import mlp_onnx

from .assertions import expect_error

IA, PD = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED
ROOT = Path(__file__).resolve().parents[2]
REGISTRY_SRC = ROOT / "services" / "registry" / "beamops" / "registry"

# Every action the registry writes itself (registry.py, token_admin.py; checked by the scan below).
SERVER_ACTIONS = [
    "token.create", "token.revoke", "alias.create", "alias.move", "alias.delete", "permission.set",
    "permission.remove", "model.create", "model.update", "model.delete", "model_type.create",
    "artifact.upload", "parameters.create", "iov_tag.create", "iov.append", "global_tag.create",
]
# Characters that drive a terminal or reorder what is shown, each in a reason or details value.
CONTROL = ["\x1b[31mred", "a\x1b]8;;http://x\x1b\\y", "\x00", "\x07", "\x08", "a\rb", "a\nb", "\t", "\x7f",
           "\x85", "\x9b2J", "\x9d8;;http://x", "evil\u202egnp", "\u202a", "\u2066x\u2069", "\u200f", "\u2028"]


async def _events(registry) -> list:
    return list((await registry.stub.ListAuditEvents(rs.ListAuditEventsRequest(page_size=1000),
                                                     metadata=registry.md("reader"))).events)


async def test_no_caller_may_record_the_registrys_own_actions(registry):
    """A publisher recording `token.revoke` (or an admin, or any registry action) is refused and
    nothing is stored: an event in a registry namespace is always one the registry wrote."""
    await registry.create_model("m")
    before = await _events(registry)
    for role in ("publisher", "deployer", "admin"):
        for action in SERVER_ACTIONS + ["token.revoke_all", "alias.anything", "token.x.y"]:
            message = await expect_error(registry.stub.RecordAuditEvent(rs.RecordAuditEventRequest(
                action=action, model="m", resource="token/admin", reason="rotated",
                details={"role": "admin"}), metadata=registry.md(role)), PD, "registry", echo=[action])
            assert action in message
    assert await _events(registry) == before


async def test_deployment_events_need_the_deployers_role(registry):
    await registry.create_model("m")
    before = await _events(registry)
    pub = registry.md("publisher")
    for action in ("deployment.deploy", "deployment.rollback", "deployment.undeploy", "deployment.replace",
                   "deployment.other"):
        await expect_error(registry.stub.RecordAuditEvent(rs.RecordAuditEventRequest(
            action=action, model="m", resource="deployments/m"), metadata=pub), PD, "deployer", "publisher")
    for action in ("system.reset", "admin.grant", "tokens.revoke", "token_admin.revoke", "registry.audit"):
        await expect_error(registry.stub.RecordAuditEvent(rs.RecordAuditEventRequest(action=action),
                                                          metadata=registry.md("admin")),
                           IA, "deployment.", echo=[action])
    assert await _events(registry) == before

    # What the inference service does: a deploy with the deployer's token, a switch for an alias
    # move with its own publisher token; the actor is the token's name, whatever the details say.
    dep = (await registry.stub.RecordAuditEvent(rs.RecordAuditEventRequest(
        action="deployment.deploy", model="m", resource="deployments/m", details={"version": "1.0"}),
        metadata=registry.md("deployer"))).event
    follow = (await registry.stub.RecordAuditEvent(rs.RecordAuditEventRequest(
        action="deployment.follow_alias", model="m", resource="deployments/m"), metadata=pub)).event
    assert (dep.actor, follow.actor) == ("deployer-user", "publisher-user")
    assert [e.action for e in await _events(registry)][:2] == ["deployment.follow_alias", "deployment.deploy"]


async def test_details_cannot_name_who_did_it(registry):
    before = await _events(registry)
    dep = registry.md("deployer")
    for key in ("by", "By", "actor", "ACTOR", "request_id", "event_time", "action", "reason"):
        await expect_error(registry.stub.RecordAuditEvent(rs.RecordAuditEventRequest(
            action="deployment.deploy", details={key: "admin-user"}), metadata=dep), IA, "reserved", echo=[key])
    assert await _events(registry) == before


async def test_control_characters_in_audit_text_are_refused_and_nothing_is_stored(registry):
    await registry.create_model("m")
    await registry.create_type("m", "1.0.0")
    version = (await registry.create_params("m", "1.0.0")).version
    await registry.stub.SetAlias(rs.SetAliasRequest(model="m", alias="staging", version=version),
                                 metadata=registry.md("deployer"))
    before = await _events(registry)
    pub, dep, adm = registry.md("publisher"), registry.md("deployer"), registry.md("admin")
    for bad in CONTROL:
        for request in (rs.RecordAuditEventRequest(action="deployment.deploy", reason=bad),
                        rs.RecordAuditEventRequest(action="deployment.deploy", resource=bad),
                        rs.RecordAuditEventRequest(action="deployment.deploy", details={"note": bad}),
                        rs.RecordAuditEventRequest(action="deployment.deploy", details={bad: "x"})):
            await expect_error(registry.stub.RecordAuditEvent(request, metadata=dep), IA, "U+", echo=[bad])
        # and the reason of every change the registry records itself
        for call in (
            registry.stub.CreateModel(rs.CreateModelRequest(name="n", reason=bad), metadata=pub),
            registry.stub.UpdateModel(rs.UpdateModelRequest(name="m", description="new", reason=bad), metadata=pub),
            registry.stub.SetAlias(rs.SetAliasRequest(model="m", alias="staging", version=version, reason=bad),
                                   metadata=dep),
            registry.stub.DeleteAlias(rs.DeleteAliasRequest(model="m", alias="staging", reason=bad), metadata=dep),
            registry.stub.CreateIovTag(rs.CreateIovTagRequest(name="t", model="m", kind=iov_pb2.IOV_KIND_RUN,
                                                                           reason=bad), metadata=dep),
            registry.stub.CreateToken(rs.CreateTokenRequest(name="eve", role=auth_pb2.ROLE_ADMIN, reason=bad),
                                      metadata=adm),
            registry.stub.RevokeToken(rs.RevokeTokenRequest(name="reader-user", reason=bad), metadata=adm),
            registry.stub.DeleteModel(rs.DeleteModelRequest(name="m", force=True, reason=bad), metadata=adm),
        ):
            await expect_error(call, IA, "reason", echo=[bad])
    # descriptions are multi-line (tab and line feed), but nothing else
    for bad in ("\x1b[2J", "a\rb", "\x9b", "\u202e"):
        await expect_error(registry.stub.UpdateModel(rs.UpdateModelRequest(name="m", description=bad),
                                                     metadata=pub), IA, "description", echo=[bad])
    assert await _events(registry) == before
    rmd = registry.md("reader")
    assert (await registry.stub.GetModel(rs.GetModelRequest(name="m"), metadata=rmd)).model.description == ""
    assert [m.name for m in (await registry.stub.ListModels(rs.ListModelsRequest(), metadata=rmd)).models] == ["m"]
    assert {t.name for t in (await registry.stub.ListTokens(rs.ListTokensRequest(), metadata=adm)).tokens} == {
        "reader-user", "publisher-user", "deployer-user", "admin-user"}

    await registry.stub.UpdateModel(rs.UpdateModelRequest(name="m", description="line 1\n\tline 2",
                                                          reason="plain text, [bold] and all"), metadata=pub)
    latest = (await _events(registry))[0]
    assert (latest.action, latest.reason) == ("model.update", "plain text, [bold] and all")


def _audit_actions_written_in(path: Path) -> set[str]:
    """The action strings passed to the registry's own audit writers in ``path`` (string
    constants, or a local variable assigned from them)."""
    tree = ast.parse(path.read_text())
    writers = {"_audit": 2, "_audit_values": 1, "record_server_event": 1}
    forwarders = {"_audit", "_audit_values", "record_audit_event", "record_server_event"}  # pass `action` on
    found: set[str] = set()
    functions = [f for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
    # A forwarder's own nested functions (a transaction's body) pass `action` on too.
    inside_forwarders = {id(node) for f in functions if f.name in forwarders for node in ast.walk(f)}
    for func in functions:
        if id(func) in inside_forwarders:
            continue
        assigned = {t.id: node.value for node in ast.walk(func) if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)}
        for call in ast.walk(func):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and call.func.attr in writers and len(call.args) > writers[call.func.attr]):
                continue
            arg = call.args[writers[call.func.attr]]
            if isinstance(arg, ast.Name) and arg.id in assigned:
                arg = assigned[arg.id]
            strings = {n.value for n in ast.walk(arg) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
            assert strings, f"{path.name}:{call.lineno}: an audit action the scan cannot read"
            found |= strings
    return found


def test_every_action_the_registry_writes_is_reserved():
    from beamops.registry import audit_actions

    written = set().union(*(_audit_actions_written_in(REGISTRY_SRC / f) for f in ("registry.py", "token_admin.py")))
    assert written == set(SERVER_ACTIONS)
    assert {a.split(".")[0] for a in written} <= audit_actions.REGISTRY_NAMESPACES
    for action in written:
        with pytest.raises(Exception) as refused:
            audit_actions.check_recordable(Principal("root", auth_pb2.ROLE_ADMIN), action)
        assert refused.value.reason == "PERMISSION_DENIED"


def test_the_inference_services_actions_are_recordable_with_the_tokens_it_sends():
    from beamops.registry import audit_actions

    source = (ROOT / "services" / "inference" / "beamops" / "inference" / "control" / "deployments.py").read_text()
    actions = {n.value for n in ast.walk(ast.parse(source))
               if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith("deployment.")}
    assert actions == {"deployment.deploy", "deployment.replace", "deployment.undeploy", "deployment.rollback",
                       "deployment.follow_alias"}
    deployer = Principal("ana", auth_pb2.ROLE_DEPLOYER)
    service = Principal("inference-service", auth_pb2.ROLE_PUBLISHER)
    for action in actions:
        audit_actions.check_recordable(deployer, action)  # Deploy, Undeploy, Rollback forward the deployer's token
    audit_actions.check_recordable(service, "deployment.follow_alias")  # the service's own token
    assert not {"by", "actor"} & {n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant)}


async def test_a_deploy_with_a_bad_reason_is_refused_before_anything_is_deployed(inference_stack):
    """The inference service checks reasons at its input: otherwise the deployment would happen
    and its audit event (refused by the registry) be missing."""
    stack = inference_stack
    params = await stack.publish("jets", mlp_onnx())
    async with stack.inference() as (_server, stub):
        md = stack.md("deployer")
        target = deppb.DeploymentTarget(parameters_version=params.version)
        for bad in ("\x1b[31mred", "\u202e", "a\nb"):
            await expect_error(stub.Deploy(ipb.DeployRequest(model="jets", target=target, reason=bad), metadata=md),
                               IA, "reason", echo=[bad])
            await expect_error(stub.Undeploy(ipb.UndeployRequest(name="jets", reason=bad), metadata=md),
                               IA, "reason", echo=[bad])
            await expect_error(stub.Rollback(ipb.RollbackRequest(name="jets", reason=bad), metadata=md),
                               IA, "reason", echo=[bad])
        listed = await stub.ListDeployments(ipb.ListDeploymentsRequest(), metadata=stack.md("reader"))
        assert list(listed.deployments) == []
