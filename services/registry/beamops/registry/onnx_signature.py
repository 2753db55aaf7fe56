"""ONNX models: check them with onnx.checker and read their input/output signature.

Pure functions over an ``onnx.ModelProto``; the only I/O is :func:`load_checked`, which reads a
file without loading external data, refuses models that store tensors as external data
(``beamops.onnx_external``: their locations are never resolved), and runs the checker.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto

from beamops.onnx_external import ExternalDataError, check_self_contained
from beamops.runtime.errors import InvalidArgument

from .entities import Signature, TensorSpec

ONNX_DTYPES = {
    TensorProto.BOOL: "bool",
    TensorProto.INT8: "int8",
    TensorProto.INT16: "int16",
    TensorProto.INT32: "int32",
    TensorProto.INT64: "int64",
    TensorProto.UINT8: "uint8",
    TensorProto.UINT16: "uint16",
    TensorProto.UINT32: "uint32",
    TensorProto.UINT64: "uint64",
    TensorProto.FLOAT16: "float16",
    TensorProto.FLOAT: "float32",
    TensorProto.DOUBLE: "float64",
    TensorProto.STRING: "bytes",
}


def load_checked(path: Path, what: str = "the ONNX model") -> onnx.ModelProto:
    """Parse and check an ONNX file; INVALID_ARGUMENT with the checker's complaint if it fails,
    or if it stores tensors as external data (refused before the checker, which would look for
    the external files). ``what`` names the file in messages (the uploader's filename)."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        raise InvalidArgument(
            "the artifact is declared as ONNX but is not a readable ONNX model", field="format"
        ) from None
    refuse_external_data(model, what)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first_line = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "invalid model"
        raise InvalidArgument(f"the ONNX model fails onnx.checker: {first_line}", field="format") from None
    return model


def refuse_external_data(model: onnx.ModelProto, what: str = "the ONNX model") -> None:
    """INVALID_ARGUMENT if any tensor of ``model`` keeps its data outside the file."""
    try:
        check_self_contained(model, what)
    except ExternalDataError as exc:
        raise InvalidArgument(str(exc), field="chunk") from None


def signature_of(model: onnx.ModelProto) -> Signature:
    """The graph's inputs (initializers excluded) and outputs, with -1 for symbolic dimensions."""
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    inputs = tuple(_spec(v) for v in graph.input if v.name not in initializers)
    outputs = tuple(_spec(v) for v in graph.output)
    return Signature(inputs=inputs, outputs=outputs)


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor_type = value.type.tensor_type
    dtype = ONNX_DTYPES.get(tensor_type.elem_type, "unspecified")
    shape: tuple[int, ...] = ()
    if tensor_type.HasField("shape"):
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim)
    return TensorSpec(name=value.name, dtype=dtype, shape=shape)


def signature_difference(declared: Signature, actual: Signature) -> str | None:
    """A sentence naming the first tensor where ``actual`` differs from ``declared``, or None."""
    for side, want, got in (("input", declared.inputs, actual.inputs),
                            ("output", declared.outputs, actual.outputs)):
        want_by, got_by = {t.name: t for t in want}, {t.name: t for t in got}
        for name, spec in want_by.items():
            other = got_by.get(name)
            if other is None:
                return f"{side} tensor {name!r} of the model type is missing from the artifact"
            if other.dtype != spec.dtype:
                return (f"{side} tensor {name!r} has dtype {other.dtype} in the artifact but "
                        f"{spec.dtype} in the model type")
            if tuple(other.shape) != tuple(spec.shape):
                return (f"{side} tensor {name!r} has shape {list(other.shape)} in the artifact but "
                        f"{list(spec.shape)} in the model type (-1 = variable)")
        for name in got_by:
            if name not in want_by:
                return f"{side} tensor {name!r} of the artifact is not in the model type's signature"
    return None
