"""Many concurrent small Predicts are coalesced into shared Triton calls on the real bundled
Triton, and each caller still gets exactly its own rows, as ONNX Runtime computes them: by the
Python service, and by the gateway (which reports its counts to the service's metrics)."""

from __future__ import annotations

import asyncio

import numpy as np
import onnxruntime as ort

from beamops.inference.v1 import deployment_pb2 as dpb, inference_service_pb2 as pb
from beamops.tensors import from_tensor, to_tensor
from tests.fixtures.gateway import settled
from tests.fixtures.inference import N_FEATURES, mlp_onnx


async def test_concurrent_requests_share_triton_calls_and_get_their_own_rows(inference_stack, via):
    stack = inference_stack
    data = mlp_onnx(seed=5)
    params = await stack.publish("jets", data, alias="production")
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    async with stack.inference(via, coalesce_max_in_flight=1) as (server, stub):
        await stub.Deploy(pb.DeployRequest(model="jets", target=dpb.DeploymentTarget(alias="production")),
                          metadata=stack.md("deployer"))
        rng = np.random.default_rng(11)
        inputs = [rng.normal(size=(1 + i % 3, N_FEATURES)).astype(np.float32) for i in range(96)]
        outputs = [["label"] if i % 4 == 3 else [] for i in range(96)]

        async def call(x, names):
            return await stub.Predict(pb.PredictRequest(deployment="jets", inputs=[to_tensor("x", x)],
                                                        output_names=names),
                                      metadata=stack.md("reader"))

        replies = await asyncio.gather(*(call(x, names) for x, names in zip(inputs, outputs)))
        for x, names, reply in zip(inputs, outputs, replies):
            probabilities, label = session.run(None, {"x": x})
            got = {t.name: from_tensor(t) for t in reply.outputs}
            assert list(got) == (names or ["probabilities", "label"])
            assert got["label"].shape == (len(x),) and got["label"].tolist() == label.tolist()
            if "probabilities" in got:
                assert got["probabilities"].shape == (len(x), 3)
                assert np.allclose(got["probabilities"], probabilities, rtol=1e-5, atol=1e-6)
            assert reply.parameters.version == params.version

        metrics = server.metrics
        served = await settled(  # the gateway reports its counts about once a second
            lambda: metrics.get_sample_value("beamops_inference_requests_total",
                                             {"deployment": "jets", "version": params.version}),
            lambda value: value == 96)
        assert served == 96
        coalesced = metrics.get_sample_value("beamops_inference_coalesced_requests_total",
                                             {"deployment": "jets"})
        assert coalesced and coalesced > 1  # some requests went to Triton together
        rows = metrics.get_sample_value("beamops_inference_batch_size_sum", {"deployment": "jets"})
        assert rows == sum(len(x) for x in inputs)  # batch sizes stay per request
