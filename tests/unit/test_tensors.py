"""Tensors: raw little-endian bytes, dtype/shape/bytes agreement checked."""

from __future__ import annotations

import numpy as np
import pytest

from beamops.common.v1 import tensor_pb2
from beamops.tensors import TensorError, check_tensor, from_tensor, to_tensor


@pytest.mark.parametrize("dtype", ["f4", "f8", "f2", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "?"])
def test_roundtrip_keeps_values_dtype_and_shape(dtype):
    array = (np.arange(24).reshape(2, 3, 4) % 2 if dtype == "?" else np.arange(24).reshape(2, 3, 4)).astype(dtype)
    back = from_tensor(to_tensor("x", array))
    assert back.dtype == array.dtype.newbyteorder("<") and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_big_endian_input_is_sent_little_endian():
    array = np.array([1.5, -2.0], dtype=">f4")
    tensor = to_tensor("x", array)
    assert tensor.raw_data == np.array([1.5, -2.0], dtype="<f4").tobytes()
    assert tensor.dtype == tensor_pb2.DATA_TYPE_FLOAT32


def test_non_contiguous_arrays_are_sent_in_row_major_order():
    array = np.arange(12, dtype=np.float32).reshape(3, 4).T
    np.testing.assert_array_equal(from_tensor(to_tensor("x", array)), array)


@pytest.mark.parametrize(
    "shape,nbytes,message",
    [((2, 3), 20, "needs 24 bytes, got 20"), ((2, -1), 0, "negative dimension"),
     ((2**20, 2**20, 2**20), 0, "too many elements")],
)
def test_disagreeing_tensors_are_refused_with_the_reason(shape, nbytes, message):
    tensor = tensor_pb2.Tensor(name="x", dtype=tensor_pb2.DATA_TYPE_FLOAT32, shape=shape, raw_data=b"\0" * nbytes)
    with pytest.raises(TensorError, match=message):
        check_tensor(tensor)


def test_missing_dtype_and_unsupported_arrays_are_refused():
    with pytest.raises(TensorError, match="dtype"):
        check_tensor(tensor_pb2.Tensor(name="x", shape=[1], raw_data=b"\0" * 4))
    with pytest.raises(TensorError, match="complex"):
        to_tensor("x", np.zeros(2, dtype=np.complex64))
