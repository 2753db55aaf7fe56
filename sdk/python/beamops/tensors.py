"""numpy arrays <-> ``beamops.common.v1.Tensor`` (dtype, shape, raw little-endian bytes).

>>> t = to_tensor("x", np.ones((2, 3), np.float32))
>>> from_tensor(t).shape
(2, 3)

The inference service uses the same functions to check requests, so a tensor the SDK accepts is
a tensor the server accepts.
"""

from __future__ import annotations

import math

import numpy as np

from beamops.common.v1 import tensor_pb2

DTYPES: dict[int, np.dtype] = {
    tensor_pb2.DATA_TYPE_BOOL: np.dtype("?"),
    tensor_pb2.DATA_TYPE_INT8: np.dtype("<i1"),
    tensor_pb2.DATA_TYPE_INT16: np.dtype("<i2"),
    tensor_pb2.DATA_TYPE_INT32: np.dtype("<i4"),
    tensor_pb2.DATA_TYPE_INT64: np.dtype("<i8"),
    tensor_pb2.DATA_TYPE_UINT8: np.dtype("<u1"),
    tensor_pb2.DATA_TYPE_UINT16: np.dtype("<u2"),
    tensor_pb2.DATA_TYPE_UINT32: np.dtype("<u4"),
    tensor_pb2.DATA_TYPE_UINT64: np.dtype("<u8"),
    tensor_pb2.DATA_TYPE_FLOAT16: np.dtype("<f2"),
    tensor_pb2.DATA_TYPE_FLOAT32: np.dtype("<f4"),
    tensor_pb2.DATA_TYPE_FLOAT64: np.dtype("<f8"),
}
_BY_KIND = {(dt.kind, dt.itemsize): code for code, dt in DTYPES.items()}


class TensorError(ValueError):
    """A tensor whose dtype, shape and bytes do not agree."""


def data_type_of(array: np.ndarray) -> int:
    """The DataType enum value of a numpy dtype."""
    try:
        return _BY_KIND[(array.dtype.kind, array.dtype.itemsize)]
    except KeyError:
        raise TensorError(f"dtype {array.dtype} has no beamops tensor type") from None


def to_tensor(name: str, array: np.ndarray | list | float) -> tensor_pb2.Tensor:
    array = np.asarray(array)
    dtype = data_type_of(array)
    data = np.ascontiguousarray(array, dtype=DTYPES[dtype]).tobytes()
    return tensor_pb2.Tensor(name=name, dtype=dtype, shape=list(array.shape), raw_data=data)


def check_tensor(tensor: tensor_pb2.Tensor, max_elements: int = 2**31) -> tuple[np.dtype, tuple[int, ...]]:
    """The numpy dtype and shape of a tensor, after checking that dtype, shape and bytes agree."""
    name = tensor.name or "<unnamed>"
    if tensor.dtype not in DTYPES:
        raise TensorError(f"tensor {name!r}: unsupported or missing dtype")
    shape = tuple(tensor.shape)
    if any(d < 0 for d in shape):
        raise TensorError(f"tensor {name!r}: negative dimension in shape {list(shape)}")
    elements = math.prod(shape)
    if elements > max_elements:
        raise TensorError(f"tensor {name!r}: shape {list(shape)} has too many elements")
    dtype = DTYPES[tensor.dtype]
    expected = elements * dtype.itemsize
    if len(tensor.raw_data) != expected:
        raise TensorError(
            f"tensor {name!r}: shape {list(shape)} of {dtype.name} needs {expected} bytes, "
            f"got {len(tensor.raw_data)}"
        )
    return dtype, shape


def from_tensor(tensor: tensor_pb2.Tensor) -> np.ndarray:
    """A read-only numpy view of the tensor's bytes (no copy)."""
    dtype, shape = check_tensor(tensor)
    return np.frombuffer(tensor.raw_data, dtype=dtype).reshape(shape)
