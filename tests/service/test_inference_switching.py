"""A deployment following an alias switches versions under concurrent load with zero failed
requests; Rollback returns to the previous version; every change is in the registry audit log."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import onnxruntime as ort

from beamops.inference.v1 import deployment_pb2 as dpb, inference_service_pb2 as pb
from beamops.registry.v1 import registry_service_pb2 as rs
from beamops.tensors import from_tensor, to_tensor
from tests.fixtures.inference import N_FEATURES, mlp_onnx


async def _wait_version(stub, md, name: str, version: str) -> dpb.Deployment:
    for _ in range(600):
        dep = (await stub.GetDeployment(pb.GetDeploymentRequest(name=name), metadata=md)).deployment
        if dep.parameters.version == version and dep.state == dpb.DEPLOYMENT_STATE_READY:
            return dep
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} never served {version}: {dep}")


async def test_alias_move_switches_with_zero_failed_requests_then_rollback(inference_stack, via):
    stack = inference_stack
    v1_bytes, v2_bytes = mlp_onnx(seed=1), mlp_onnx(seed=2)
    v1 = await stack.publish("jets", v1_bytes, alias="production")
    v2 = await stack.publish("jets", v2_bytes)
    x = np.random.default_rng(5).normal(size=(4, N_FEATURES)).astype(np.float32)
    expected = {
        v1.version: ort.InferenceSession(v1_bytes).run(None, {"x": x})[0],
        v2.version: ort.InferenceSession(v2_bytes).run(None, {"x": x})[0],
    }
    async with stack.inference(via) as (server, stub):
        await stub.Deploy(pb.DeployRequest(model="jets", target=dpb.DeploymentTarget(alias="production")),
                          metadata=stack.md("deployer"))
        failures: list[str] = []
        served: dict[str, int] = {}
        stop = asyncio.Event()

        async def client() -> None:
            request = pb.PredictRequest(deployment="jets", inputs=[to_tensor("x", x)])
            while not stop.is_set():
                try:
                    reply = await stub.Predict(request, metadata=stack.md("reader"))
                except grpc.aio.AioRpcError as exc:
                    failures.append(f"{exc.code()}: {exc.details()}")
                    continue
                version = reply.parameters.version
                served[version] = served.get(version, 0) + 1
                probabilities = from_tensor(reply.outputs[0])
                if not np.allclose(probabilities, expected[version], rtol=1e-5, atol=1e-6):
                    failures.append(f"wrong outputs for {version}")

        clients = [asyncio.create_task(client()) for _ in range(8)]
        await asyncio.sleep(0.3)
        await stack.set_alias("jets", "production", v2.version)
        dep = await _wait_version(stub, stack.md("reader"), "jets", v2.version)
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*clients)

        assert failures == []
        assert served.get(v1.version, 0) > 0 and served.get(v2.version, 0) > 0
        assert dep.previous_parameters.version == v1.version and dep.following_alias
        assert dep.changed_by == "deployer-user"  # who moved the alias

        rolled = (await stub.Rollback(pb.RollbackRequest(name="jets", expected_parameters_version=v2.version,
                                                         reason="v2 misbehaves"),
                                      metadata=stack.md("deployer"))).deployment
        assert rolled.parameters.version == v1.version and not rolled.following_alias
        assert rolled.state == dpb.DEPLOYMENT_STATE_READY and rolled.change_reason == "v2 misbehaves"
        reply = await stub.Predict(pb.PredictRequest(deployment="jets", inputs=[to_tensor("x", x)]),
                                   metadata=stack.md("reader"))
        assert np.allclose(from_tensor(reply.outputs[0]), expected[v1.version], rtol=1e-5, atol=1e-6)
        # A retried rollback does not roll forward again.
        with __import__("pytest").raises(grpc.aio.AioRpcError) as err:
            await stub.Rollback(pb.RollbackRequest(name="jets", expected_parameters_version=v2.version),
                                metadata=stack.md("deployer"))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

        events = (await stack.registry.stub.ListAuditEvents(
            rs.ListAuditEventsRequest(model="jets", action="deployment."),
            metadata=stack.md("reader"))).events
        actions = [(e.action, e.details.get("version")) for e in reversed(events)]
        assert actions == [("deployment.deploy", v1.version), ("deployment.follow_alias", v2.version),
                           ("deployment.rollback", v1.version)]
        # Only the served version is left in Triton's repository.
        models = sorted(p.name for p in (stack.var_dir / "triton-models").iterdir())
        assert models == [f"jets__{v1.version.replace('.', '_')}"]
