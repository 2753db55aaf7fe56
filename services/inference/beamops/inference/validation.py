"""Checks Predict inputs against a deployment's signature before anything reaches Triton.

Uses :func:`beamops.tensors.check_tensor` (shared with the SDK) for dtype/shape/byte agreement,
then the signature: names (unknown, missing, duplicate), dtypes, ranks and fixed dimensions, one
batch size across inputs, and the batch limit. Every error names the tensor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from beamops.common.v1 import tensor_pb2
from beamops.runtime.errors import InvalidArgument
from beamops.tensors import TensorError, check_tensor

from .domain import Signature


def dtype_name(dtype: int) -> str:
    try:
        return tensor_pb2.DataType.Name(dtype).removeprefix("DATA_TYPE_")
    except ValueError:
        return f"unknown ({dtype})"


def _shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join("N" if d == -1 else str(d) for d in shape) + "]"


def check_inputs(tensors: Sequence[tensor_pb2.Tensor], signature: Signature,
                 max_batch_size: int) -> dict[str, np.ndarray]:
    """numpy arrays by input name, shaped as Triton expects; InvalidArgument naming the tensor."""
    specs = {s.name: s for s in signature.inputs}
    arrays: dict[str, np.ndarray] = {}
    batch: tuple[str, int] | None = None
    for i, tensor in enumerate(tensors):
        field = f"inputs[{i}]"
        name = tensor.name
        spec = specs.get(name)
        if spec is None:
            raise InvalidArgument(
                f"input {name!r} is not in the model's signature; expected "
                f"{', '.join(repr(n) for n in specs)}", field=f"{field}.name", tensor=name)
        if name in arrays:
            raise InvalidArgument(f"input {name!r} is given twice", field=f"{field}.name", tensor=name)
        if tensor.dtype != spec.dtype:
            raise InvalidArgument(
                f"input {name!r}: dtype {dtype_name(tensor.dtype)}, the model expects "
                f"{dtype_name(spec.dtype)}", field=f"{field}.dtype", tensor=name)
        try:
            dtype, shape = check_tensor(tensor)
        except TensorError as exc:
            raise InvalidArgument(f"input {exc}", field=field, tensor=name) from None
        if len(shape) != len(spec.shape) or any(
                want != -1 and got != want for got, want in zip(shape, spec.shape)):
            raise InvalidArgument(
                f"input {name!r}: shape {list(shape)}, the model expects {_shape(spec.shape)}",
                field=f"{field}.shape", tensor=name)
        array = np.frombuffer(tensor.raw_data, dtype=dtype).reshape(shape)
        if max_batch_size > 0:
            rows = shape[0]
            if rows == 0:
                raise InvalidArgument(f"input {name!r} has no rows", field=f"{field}.shape",
                                      tensor=name)
            if rows > max_batch_size:
                raise InvalidArgument(
                    f"input {name!r} has {rows} rows, more than this deployment's "
                    f"max_batch_size {max_batch_size}; split the request",
                    field=f"{field}.shape", tensor=name)
            if batch is not None and batch[1] != rows:
                raise InvalidArgument(
                    f"input {name!r} has {rows} rows but input {batch[0]!r} has {batch[1]}",
                    field=f"{field}.shape", tensor=name)
            batch = (name, rows)
            if array.ndim == 1:  # Triton wants [batch, 1] for one value per sample
                array = array.reshape(rows, 1)
        arrays[name] = array
    missing = [n for n in specs if n not in arrays]
    if missing:
        raise InvalidArgument(f"input {missing[0]!r} is missing", field="inputs", tensor=missing[0])
    return arrays


def check_outputs(names: Sequence[str], signature: Signature) -> list[str]:
    known = [s.name for s in signature.outputs]
    if not names:
        return known
    for i, name in enumerate(names):
        if name not in known:
            raise InvalidArgument(
                f"output {name!r} is not in the model's signature; it has "
                f"{', '.join(repr(n) for n in known)}", field=f"output_names[{i}]", tensor=name)
    return list(dict.fromkeys(names))


def shape_outputs(outputs: dict[str, np.ndarray], signature: Signature) -> dict[str, np.ndarray]:
    """Gives rank-1 outputs (one value per sample) back their signature rank."""
    ranks = {s.name: len(s.shape) for s in signature.outputs}
    for name, array in outputs.items():
        if ranks.get(name) == 1 and array.ndim == 2 and array.shape[1] == 1:
            outputs[name] = array.reshape(-1)
    return outputs
