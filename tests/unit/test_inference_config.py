"""Triton model configuration from a version's signature, and Predict input checks."""

from __future__ import annotations

import numpy as np
import pytest

from beamops.common.v1 import tensor_pb2
from beamops.inference.domain import ServingConfig, Signature, TensorSig
from beamops.inference.model_repository import config_for, triton_name
from beamops.inference.validation import check_inputs, check_outputs
from beamops.runtime.errors import InvalidArgument
from beamops.tensors import to_tensor

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


def test_inputs_are_checked_against_the_signature():
    x = np.zeros((4, 6), np.float32)
    arrays = check_inputs([to_tensor("x", x)], SIG, 64)
    assert arrays["x"].shape == (4, 6)

    def refused(tensors, *words, max_batch=64):
        with pytest.raises(InvalidArgument) as err:
            check_inputs(tensors, SIG, max_batch)
        for word in words:
            assert word in err.value.message, err.value.message
        return err.value

    assert refused([to_tensor("x", x.astype(np.float64))], "'x'", "FLOAT64").field == "inputs[0].dtype"
    refused([to_tensor("x", np.zeros((4, 5), np.float32))], "'x'", "[4, 5]", "[N, 6]")
    refused([to_tensor("x", np.zeros(6, np.float32))], "'x'", "shape")
    bad = to_tensor("x", x)
    bad.raw_data += b"\0"
    refused([bad], "'x'", "bytes")
    refused([to_tensor("z", x)], "'z'", "'x'")
    refused([], "'x'", "missing")
    refused([to_tensor("x", np.zeros((9, 6), np.float32))], "'x'", "max_batch_size 8", max_batch=8)
    assert check_outputs([], SIG) == ["p", "label"]
    with pytest.raises(InvalidArgument, match="'q'"):
        check_outputs(["q"], SIG)


def test_config_refuses_what_triton_cannot_express():
    sig = Signature(inputs=(TensorSig(name="x", dtype=99, shape=(-1, 2)),), outputs=SIG.outputs)
    with pytest.raises(ValueError, match="'x'"):
        config_for("m", sig, ServingConfig(), "python")


def test_input_checker_keeps_the_request_bytes_and_gives_triton_its_shapes():
    from beamops.inference.validation import InputChecker

    sig = Signature(inputs=(TensorSig(name="x", dtype=F32, shape=(-1, 6)),
                            TensorSig(name="n", dtype=I64, shape=(-1,))), outputs=SIG.outputs)
    x, n = to_tensor("x", np.ones((3, 6), np.float32)), to_tensor("n", np.arange(3))
    tensors, rows = InputChecker(sig, 64).check([n, x])
    assert rows == 3
    assert [(t.name, t.shape) for t in tensors] == [("n", (3, 1)), ("x", (3, 6))]
    assert tensors[1].data == x.raw_data and tensors[1].dtype == F32
    fixed, rows = InputChecker(Signature(inputs=(TensorSig(name="x", dtype=F32, shape=(3, 6)),),
                                         outputs=SIG.outputs), 0).check([x])
    assert rows == 0 and fixed[0].shape == (3, 6)
    with pytest.raises(InvalidArgument, match="'n' has 2 rows but input 'x' has 3"):
        InputChecker(sig, 64).check([x, to_tensor("n", np.arange(2))])
