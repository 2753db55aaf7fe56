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
from beamops.tensors import DTYPES, TensorError, check_tensor

from .domain import RawTensor, Signature


def dtype_name(dtype: int) -> str:
    try:
        return tensor_pb2.DataType.Name(dtype).removeprefix("DATA_TYPE_")
    except ValueError:
        return f"unknown ({dtype})"


def _shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join("N" if d == -1 else str(d) for d in shape) + "]"


class InputChecker:
    """The checks of one signature and batch limit, prepared once per served version.

    :meth:`check` gives the inputs as :class:`RawTensor` (the request's bytes, shaped as Triton
    expects: one value per sample becomes ``[batch, 1]``) and the batch size (0 when the model
    does not batch); InvalidArgument naming the tensor otherwise.
    """

    __slots__ = ("specs", "max_batch_size", "_expected")

    def __init__(self, signature: Signature, max_batch_size: int) -> None:
        self.specs = {s.name: s for s in signature.inputs}
        self.max_batch_size = max_batch_size
        self._expected = ", ".join(repr(n) for n in self.specs)

    def check(self, tensors: Sequence[tensor_pb2.Tensor]) -> tuple[list[RawTensor], int]:
        specs, max_batch_size = self.specs, self.max_batch_size
        out: list[RawTensor] = []
        seen: set[str] = set()
        batch: tuple[str, int] | None = None
        for i, tensor in enumerate(tensors):
            name = tensor.name
            spec = specs.get(name)
            if spec is None:
                raise InvalidArgument(
                    f"input {name!r} is not in the model's signature; expected {self._expected}",
                    field=f"inputs[{i}].name", tensor=name)
            if name in seen:
                raise InvalidArgument(f"input {name!r} is given twice", field=f"inputs[{i}].name",
                                      tensor=name)
            seen.add(name)
            if tensor.dtype != spec.dtype:
                raise InvalidArgument(
                    f"input {name!r}: dtype {dtype_name(tensor.dtype)}, the model expects "
                    f"{dtype_name(spec.dtype)}", field=f"inputs[{i}].dtype", tensor=name)
            try:
                _, shape = check_tensor(tensor)
            except TensorError as exc:
                raise InvalidArgument(f"input {exc}", field=f"inputs[{i}]", tensor=name) from None
            want = spec.shape
            if len(shape) != len(want) or any(
                    w != -1 and got != w for got, w in zip(shape, want)):
                raise InvalidArgument(
                    f"input {name!r}: shape {list(shape)}, the model expects {_shape(want)}",
                    field=f"inputs[{i}].shape", tensor=name)
            if max_batch_size > 0:
                rows = shape[0]
                field = f"inputs[{i}].shape"
                if rows == 0:
                    raise InvalidArgument(f"input {name!r} has no rows", field=field, tensor=name)
                if rows > max_batch_size:
                    raise InvalidArgument(
                        f"input {name!r} has {rows} rows, more than this deployment's "
                        f"max_batch_size {max_batch_size}; split the request",
                        field=field, tensor=name)
                if batch is not None and batch[1] != rows:
                    raise InvalidArgument(
                        f"input {name!r} has {rows} rows but input {batch[0]!r} has {batch[1]}",
                        field=field, tensor=name)
                batch = (name, rows)
                if len(shape) == 1:  # Triton wants [batch, 1] for one value per sample
                    shape = (rows, 1)
            out.append(RawTensor(name, tensor.dtype, shape, tensor.raw_data))
        if len(out) != len(specs):
            missing = next(n for n in specs if n not in seen)
            raise InvalidArgument(f"input {missing!r} is missing", field="inputs", tensor=missing)
        return out, (batch[1] if batch else 0)


def check_inputs(tensors: Sequence[tensor_pb2.Tensor], signature: Signature,
                 max_batch_size: int) -> dict[str, np.ndarray]:
    """numpy arrays by input name, shaped as Triton expects; InvalidArgument naming the tensor."""
    raw, _ = InputChecker(signature, max_batch_size).check(tensors)
    return {t.name: as_array(t) for t in raw}


def as_array(tensor: RawTensor) -> np.ndarray:
    """A read-only numpy view of a raw tensor's bytes."""
    return np.frombuffer(tensor.data, dtype=DTYPES[tensor.dtype]).reshape(tensor.shape)


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


def output_ranks(signature: Signature) -> dict[str, int]:
    return {s.name: len(s.shape) for s in signature.outputs}


def shape_output(tensor: RawTensor, ranks: dict[str, int]) -> RawTensor:
    """Gives a rank-1 output (one value per sample, [batch, 1] from Triton) its signature rank."""
    shape = tensor.shape
    if len(shape) == 2 and shape[1] == 1 and ranks.get(tensor.name) == 1:
        return RawTensor(tensor.name, tensor.dtype, (shape[0],), tensor.data)
    return tensor


def shape_outputs(outputs: dict[str, np.ndarray], signature: Signature) -> dict[str, np.ndarray]:
    """Gives rank-1 outputs (one value per sample) back their signature rank."""
    ranks = {s.name: len(s.shape) for s in signature.outputs}
    for name, array in outputs.items():
        if ranks.get(name) == 1 and array.ndim == 2 and array.shape[1] == 1:
            outputs[name] = array.reshape(-1)
    return outputs
