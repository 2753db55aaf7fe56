"""Triton SIGKILLed while 8 clients call Predict on two deployments at once.

tests/service/test_inference_recovery.py covers the same fault with one caller at a time; this is
the concurrent case: while Triton is down every failed Predict is UNAVAILABLE with a clear
message (never INTERNAL, UNKNOWN or a hang), the supervisor restarts Triton, both deployments
come back, and every client gets correct answers again. Through the gateway, Triton runs inside
the gateway's process, so the kill takes the gateway down with it: its callers get UNAVAILABLE from
their own gRPC library (connection reset or refused) until the service has restarted both.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter

import grpc
import numpy as np
import onnxruntime as ort
import pytest

from beamops.inference.v1 import deployment_pb2 as dpb, inference_service_pb2 as pb
from beamops.tensors import from_tensor, to_tensor

from tests.fixtures.inference import N_FEATURES, mlp_onnx

pytestmark = pytest.mark.integration

CLIENTS = 8
DEPLOYMENTS = ["load-a", "load-b"]


async def test_concurrent_predicts_see_unavailable_then_recover_with_deployments_restored(inference_stack, via):
    stack = inference_stack
    x = np.random.default_rng(5).normal(size=(4, N_FEATURES)).astype(np.float32)
    expected = {}
    for seed, name in enumerate(DEPLOYMENTS, start=10):
        data = mlp_onnx(seed=seed)
        await stack.publish(name, data, alias="production")
        expected[name] = ort.InferenceSession(data).run(None, {"x": x})[0]  # probabilities
    requests = {name: pb.PredictRequest(deployment=name, inputs=[to_tensor("x", x)]) for name in DEPLOYMENTS}

    async with stack.inference(via) as (server, stub):
        for name in DEPLOYMENTS:
            await stub.Deploy(pb.DeployRequest(model=name, target=dpb.DeploymentTarget(alias="production")),
                              metadata=stack.md("deployer"))
        pid_file = stack.var_dir / "triton" / "tritonserver.pid"
        stop = asyncio.Event()
        outcomes: list[list[tuple[float, str, str]]] = [[] for _ in range(CLIENTS)]  # (time, code, detail)
        wrong: list[str] = []
        durations: list[tuple[float, str]] = []  # (seconds, code) of each failed call

        async def client(i: int) -> None:
            name = DEPLOYMENTS[i % len(DEPLOYMENTS)]
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    reply = await stub.Predict(requests[name], metadata=stack.md("reader"), timeout=60)
                except grpc.aio.AioRpcError as exc:
                    outcomes[i].append((time.monotonic(), exc.code().name, exc.details() or ""))
                    durations.append((time.monotonic() - t0, exc.code().name))
                    await asyncio.sleep(0.05)
                    continue
                outcomes[i].append((time.monotonic(), "OK", ""))
                probabilities = {t.name: t for t in reply.outputs}["probabilities"]
                if not np.allclose(from_tensor(probabilities), expected[name], rtol=1e-5, atol=1e-6):
                    wrong.append(f"client {i}: wrong outputs from {name}")

        def recovered() -> bool:
            """Every client saw Triton fail and then at least 5 answers in a row."""
            return all(any(code != "OK" for _, code, _ in seen) and len(seen) >= 5
                       and all(code == "OK" for _, code, _ in seen[-5:]) for seen in outcomes)

        tasks = [asyncio.create_task(client(i)) for i in range(CLIENTS)]
        try:
            while sum(len(s) for s in outcomes) < 10 * CLIENTS:  # load is running
                await asyncio.sleep(0.05)
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGKILL)
            for _ in range(3600):  # bounded: ~3 minutes
                if recovered():
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.gather(*tasks)

        failures = Counter((code, detail) for seen in outcomes for _, code, detail in seen if code != "OK")
        print("failed calls:", failures)
        print("slowest failed calls (s):", sorted(durations)[-5:])
        assert recovered(), [[code for _, code, _ in seen[-5:]] for seen in outcomes]
        assert wrong == []
        assert {code for code, _ in failures} == {"UNAVAILABLE"}, failures
        assert server.gateway.embedded is not None  # Triton ran in the gateway's process, which was killed
        for _, detail in failures:
            if via == "service":  # the service's port says what is down, in its own words
                assert "gateway" in detail or "Triton" in detail, detail
                assert "127.0.0.1" not in detail, detail
            assert "/" not in detail and "Traceback" not in detail, detail
        assert int(pid_file.read_text()) != pid
        for name in DEPLOYMENTS:
            dep = (await stub.GetDeployment(pb.GetDeploymentRequest(name=name), metadata=stack.md("reader"))).deployment
            assert dep.state == dpb.DEPLOYMENT_STATE_READY, dpb.DeploymentState.Name(dep.state)
