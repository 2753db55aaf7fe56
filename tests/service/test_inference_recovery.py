"""Faults: killing the bundled Triton gives UNAVAILABLE, then the supervisor restarts it and the
deployments come back; restarting the inference service restores its deployments.

Through the gateway, Triton runs inside the gateway's process: killing it kills the gateway, whose
callers then get UNAVAILABLE from their own gRPC library until the service has restarted it; the
service's own port says why meanwhile."""

from __future__ import annotations

import asyncio
import os
import signal

import grpc
import numpy as np
import onnxruntime as ort

from beamops.inference.v1 import (
    deployment_pb2 as dpb, inference_service_pb2 as pb, inference_service_pb2_grpc,
)
from beamops.tensors import from_tensor, to_tensor
from tests.fixtures.inference import N_FEATURES, mlp_onnx
from tests.fixtures.triton import live_children


async def _predict_until(stub, md, request, want_ok: bool):
    for _ in range(1200):
        try:
            reply = await stub.Predict(request, metadata=md, timeout=60)
            if want_ok:
                return reply
        except grpc.aio.AioRpcError as exc:
            if not want_ok:
                return exc
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, (exc.code(), exc.details())
        await asyncio.sleep(0.05)
    raise AssertionError("Predict never reached the wanted outcome")


async def _published(stack, seed: int, rows: int):
    """Publishes an MLP as jets@production: a Predict request for deployment jets, and the
    probabilities ONNX Runtime gives for it."""
    data = mlp_onnx(seed=seed)
    await stack.publish("jets", data, alias="production")
    x = np.random.default_rng(seed).normal(size=(rows, N_FEATURES)).astype(np.float32)
    expected = ort.InferenceSession(data).run(None, {"x": x})[0]
    return pb.PredictRequest(deployment="jets", inputs=[to_tensor("x", x)]), expected


async def _deploy(stack, stub, request) -> None:
    """Deploys jets following production, and checks that it answers."""
    # Deadlines on the test's own calls: a hang fails naming the call (seen once, not reproduced).
    await stub.Deploy(pb.DeployRequest(model="jets", target=dpb.DeploymentTarget(alias="production")),
                      metadata=stack.md("deployer"), timeout=120)
    await stub.Predict(request, metadata=stack.md("reader"), timeout=60)


async def test_killed_triton_is_unavailable_then_recovers(inference_stack, via):
    stack = inference_stack
    request, expected = await _published(stack, seed=4, rows=3)
    async with stack.inference(via) as (server, stub):
        await _deploy(stack, stub, request)
        pid = int((stack.var_dir / "triton" / "tritonserver.pid").read_text())
        os.kill(pid, signal.SIGKILL)

        err = await _predict_until(stub, stack.md("reader"), request, want_ok=False)
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        if via == "gateway":
            assert server.gateway.embedded is not None  # Triton ran in the gateway's process
            assert pid == server.gateway.pid
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                service = inference_service_pb2_grpc.InferenceServiceStub(channel)
                err = await _predict_until(service, stack.md("reader"), request, want_ok=False)
            assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert ("Triton" in err.details() or "gateway" in err.details()) and "/" not in err.details()
        assert "127.0.0.1" not in err.details()

        reply = await _predict_until(stub, stack.md("reader"), request, want_ok=True)
        assert np.allclose(from_tensor(reply.outputs[0]), expected, rtol=1e-5, atol=1e-6)
        assert int((stack.var_dir / "triton" / "tritonserver.pid").read_text()) != pid
        assert server.metrics.get_sample_value("beamops_inference_triton_restarts_total") >= 1
        alerts = (await stub.ListAlerts(pb.ListAlertsRequest(), metadata=stack.md("reader"))).alerts
        backend = [a for a in alerts if a.kind == dpb.ALERT_KIND_BACKEND_UNAVAILABLE]
        assert backend and backend[0].state == dpb.ALERT_STATE_RESOLVED


async def test_killed_model_process_is_unavailable_then_reloaded(inference_stack, via):
    """The process running the model's code (a Python-backend stub) dies, as it would in an
    out-of-memory kill or a crash in ONNX Runtime: Triton itself stays up but answers for that
    model that its stub is not healthy, forever. Predict says UNAVAILABLE, the service reloads
    the model (a new stub) and Predict answers again."""
    stack = inference_stack
    request, expected = await _published(stack, seed=7, rows=2)
    async with stack.inference(via) as (server, stub):
        await _deploy(stack, stub, request)
        triton_pid = int((stack.var_dir / "triton" / "tritonserver.pid").read_text())
        stubs = live_children(triton_pid)
        assert len(stubs) == 1, stubs  # one model instance
        os.kill(stubs[0], signal.SIGKILL)

        err = await _predict_until(stub, stack.md("reader"), request, want_ok=False)
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert err.details() == ("the model's process in Triton ended (running the model); it is "
                                 "being restarted, retry shortly"), err.details()
        reply = await _predict_until(stub, stack.md("reader"), request, want_ok=True)
        assert np.allclose(from_tensor(reply.outputs[0]), expected, rtol=1e-5, atol=1e-6)

        assert int((stack.var_dir / "triton" / "tritonserver.pid").read_text()) == triton_pid
        assert live_children(triton_pid) and stubs[0] not in live_children(triton_pid)  # a new stub
        assert server.metrics.get_sample_value("beamops_inference_model_restarts_total",
                                               {"deployment": "jets"}) == 1
        assert not server.metrics.get_sample_value("beamops_inference_triton_restarts_total")
        alerts = (await stub.ListAlerts(pb.ListAlertsRequest(), metadata=stack.md("reader"))).alerts
        backend = [a for a in alerts if a.kind == dpb.ALERT_KIND_BACKEND_UNAVAILABLE]
        assert len(backend) == 1 and backend[0].deployment == "jets"
        assert backend[0].state == dpb.ALERT_STATE_RESOLVED


async def test_restarted_service_restores_deployments(inference_stack):
    stack = inference_stack
    data = mlp_onnx(seed=6)
    params = await stack.publish("jets", data, alias="production")
    x = np.random.default_rng(3).normal(size=(2, N_FEATURES)).astype(np.float32)
    request = pb.PredictRequest(deployment="jets", inputs=[to_tensor("x", x)])
    async with stack.inference() as (_, stub):
        await stub.Deploy(pb.DeployRequest(model="jets", target=dpb.DeploymentTarget(alias="production")),
                          metadata=stack.md("deployer"))
        before = from_tensor((await stub.Predict(request, metadata=stack.md("reader"))).outputs[0])
    async with stack.inference() as (_, stub):  # a new process would see the same var_dir
        reply = await _predict_until(stub, stack.md("reader"), request, want_ok=True)
        assert np.array_equal(from_tensor(reply.outputs[0]), before)
        dep = (await stub.GetDeployment(pb.GetDeploymentRequest(name="jets"),
                                        metadata=stack.md("reader"))).deployment
        assert dep.state == dpb.DEPLOYMENT_STATE_READY and dep.parameters.version == params.version
        assert dep.following_alias and dep.created_by == "deployer-user"
