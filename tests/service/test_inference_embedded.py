"""Embedded mode: beamops.load_model runs the registry's ONNX in-process, answers like Predict,
verifies sha256, and keeps working from its cache when the registry is unreachable."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import beamops
from beamops.inference.v1 import deployment_pb2 as dpb, inference_service_pb2 as pb
from beamops.tensors import from_tensor, to_tensor
from tests.fixtures.inference import N_FEATURES, mlp_onnx
from tests.fixtures.services import free_port


async def test_embedded_model_equals_predict_and_works_offline(inference_stack, tmp_path):
    stack = inference_stack
    params = await stack.publish("jets", mlp_onnx(seed=9), alias="production")
    cache = tmp_path / "cache"
    client = beamops.Client(stack.tokens.reader, registry_address=f"127.0.0.1:{stack.registry_port}")
    try:
        model = await asyncio.to_thread(beamops.load_model, "jets", "production", client, cache_dir=cache)
    finally:
        client.close()
    assert (model.version, model.sha256) == (params.version, params.primary_artifact.sha256)
    assert not model.from_cache and (cache / f"{model.sha256}.onnx").exists()

    x = np.random.default_rng(4).normal(size=(16, N_FEATURES)).astype(np.float32)
    async with stack.inference() as (_, stub):
        await stub.Deploy(pb.DeployRequest(model="jets", target=dpb.DeploymentTarget(alias="production")),
                          metadata=stack.md("deployer"))
        reply = await stub.Predict(pb.PredictRequest(deployment="jets", inputs=[to_tensor("x", x)]),
                                   metadata=stack.md("reader"))
    served = {t.name: from_tensor(t) for t in reply.outputs}
    local = model.predict(x=x)
    assert np.allclose(local["probabilities"], served["probabilities"], rtol=1e-5, atol=1e-6)
    assert local["label"].tolist() == served["label"].tolist()

    offline = beamops.Client(stack.tokens.reader, registry_address=f"127.0.0.1:{free_port()}")
    try:
        again = await asyncio.to_thread(beamops.load_model, "jets", "production", offline,
                                        cache_dir=cache, timeout_s=2)
        assert again.from_cache and again.version == params.version
        assert np.array_equal(again.predict(x=x)["label"], local["label"])
        with pytest.raises(beamops.BeamopsError, match="not in the local model cache"):
            await asyncio.to_thread(beamops.load_model, "jets", "staging", offline,
                                    cache_dir=cache, timeout_s=2)
        # A corrupted cache entry is detected, not run.
        (cache / f"{model.sha256}.onnx").write_bytes(b"garbage")
        with pytest.raises(beamops.DataLossError):
            await asyncio.to_thread(beamops.load_model, "jets", "production", offline,
                                    cache_dir=cache, timeout_s=2)
    finally:
        offline.close()
