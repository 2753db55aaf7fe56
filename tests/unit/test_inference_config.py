"""Triton model configuration from a version's signature, and Predict input checks."""

from __future__ import annotations

import pytest

from beamops.common.v1 import tensor_pb2
from beamops.inference.domain import ServingConfig, Signature, TensorSig
from beamops.inference.triton.repository import config_for, triton_name

F32, I64, BYTES = tensor_pb2.DATA_TYPE_FLOAT32, tensor_pb2.DATA_TYPE_INT64, tensor_pb2.DATA_TYPE_BYTES
SIG = Signature(inputs=(TensorSig(name="x", dtype=F32, shape=(-1, 6)),),
                outputs=(TensorSig(name="p", dtype=F32, shape=(-1, 3)),
                         TensorSig(name="label", dtype=I64, shape=(-1,))))


def test_batched_signature_gives_batch_dimension_and_dynamic_batching():
    text = config_for("jets__1_2", SIG, ServingConfig(instance_count=2), "python",
                      default_max_batch_size=64)
    assert 'name: "jets__1_2"' in text and 'backend: "python"' in text
    assert "max_batch_size: 64" in text
    assert 'name: "x" data_type: TYPE_FP32 dims: [ 6 ]' in text
    assert 'name: "label" data_type: TYPE_INT64 dims: [ 1 ]' in text
    assert "count: 2 kind: KIND_CPU" in text
    assert "dynamic_batching { max_queue_delay_microseconds: 100 }" in text
    assert 'key: "intra_op_threads"' in text


def test_external_triton_gets_onnxruntime_platform_and_serving_settings():
    serving = ServingConfig(max_batch_size=32, preferred_batch_sizes=(8, 32), max_queue_delay_us=500)
    text = config_for("m__1_0", SIG, serving, "onnxruntime")
    assert 'platform: "onnxruntime_onnx"' in text and "backend" not in text
    assert "max_batch_size: 32" in text and "KIND_CPU" not in text
    assert "preferred_batch_size: [ 8, 32 ]" in text and "max_queue_delay_microseconds: 500" in text
    off = config_for("m__1_0", SIG, ServingConfig(dynamic_batching_disabled=True), "onnxruntime")
    assert "dynamic_batching" not in off


def test_fixed_shapes_have_no_batch_dimension():
    sig = Signature(inputs=(TensorSig(name="x", dtype=F32, shape=(2, 6)),),
                    outputs=(TensorSig(name="y", dtype=F32, shape=(2,)),))
    text = config_for("m", sig, ServingConfig(), "python")
    assert "max_batch_size: 0" in text and "dims: [ 2, 6 ]" in text and "dynamic_batching" not in text


def test_versioned_triton_names():
    assert triton_name("jets", "1.2") == "jets__1_2"
    assert triton_name("jets", "1.2", 3) == "jets__1_2__g3"


def test_config_refuses_what_triton_cannot_express():
    sig = Signature(inputs=(TensorSig(name="x", dtype=99, shape=(-1, 2)),), outputs=SIG.outputs)
    with pytest.raises(ValueError, match="'x'"):
        config_for("m", sig, ServingConfig(), "python")
