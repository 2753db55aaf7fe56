"""Writes Triton ``config.pbtxt`` text for a model from its signature.

Pure function, no I/O. Tensors are ``(name, triton_dtype, dims)`` tuples, e.g.
``("x", "TYPE_FP32", [4])``. With ``max_batch_size > 0`` the dims exclude the batch dimension
(Triton adds it) and dynamic batching is switched on; ``-1`` marks a variable dimension.

``backend="python"`` serves the ONNX file through the bundled Triton's Python backend
(``model/model.py`` running ONNX Runtime on CPU); ``backend="onnxruntime"`` writes
``platform: "onnxruntime_onnx"`` for a full Triton (the official container, GPU).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

TensorSpec = tuple[str, str, Sequence[int]]

TRITON_DTYPES = frozenset({
    "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64",
    "TYPE_INT8", "TYPE_INT16", "TYPE_INT32", "TYPE_INT64",
    "TYPE_FP16", "TYPE_FP32", "TYPE_FP64", "TYPE_BF16", "TYPE_STRING",
})
BACKENDS = ("python", "onnxruntime")
_NAME = re.compile(r"^[A-Za-z0-9_.:\-]+$")


def config_pbtxt(
    name: str,
    signature_inputs: Iterable[TensorSpec],
    signature_outputs: Iterable[TensorSpec],
    max_batch_size: int,
    backend: str,
    instance_count: int = 1,
    preferred_batch_sizes: Sequence[int] = (),
    max_queue_delay_us: int = 0,
    parameters: Mapping[str, str] | None = None,
    dynamic_batching: bool = True,
) -> str:
    """Returns the config.pbtxt text; raises ValueError on anything Triton would refuse.

    ``parameters`` become the config's string ``parameters`` map (the Python-backend model reads
    ``intra_op_threads`` from it). ``dynamic_batching=False`` leaves the dynamic batcher out.
    """
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid model name {name!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if max_batch_size < 0:
        raise ValueError("max_batch_size must be >= 0")
    if instance_count < 1:
        raise ValueError("instance_count must be >= 1")
    if max_queue_delay_us < 0:
        raise ValueError("max_queue_delay_us must be >= 0")
    for size in preferred_batch_sizes:
        if not 0 < size <= max_batch_size:
            raise ValueError(f"preferred batch size {size} not in 1..max_batch_size")
    inputs, outputs = list(signature_inputs), list(signature_outputs)
    if not inputs or not outputs:
        raise ValueError("a model needs at least one input and one output")

    lines = [f'name: "{name}"']
    if backend == "python":
        lines.append('backend: "python"')
    else:
        lines.append('platform: "onnxruntime_onnx"')
    lines.append(f"max_batch_size: {max_batch_size}")
    lines.append(_tensors("input", inputs))
    lines.append(_tensors("output", outputs))
    # The Python backend on the bundled (CPU-only) Triton must be told CPU; a full Triton picks
    # GPU instances by itself when it has a GPU.
    kind = " kind: KIND_CPU" if backend == "python" else ""
    lines.append(f"instance_group [ {{ count: {instance_count}{kind} }} ]")
    if max_batch_size > 0 and dynamic_batching:
        batching = []
        if preferred_batch_sizes:
            sizes = ", ".join(str(s) for s in preferred_batch_sizes)
            batching.append(f"preferred_batch_size: [ {sizes} ]")
        batching.append(f"max_queue_delay_microseconds: {max_queue_delay_us}")
        lines.append("dynamic_batching { " + " ".join(batching) + " }")
    for key, value in sorted((parameters or {}).items()):
        if not _NAME.fullmatch(key):
            raise ValueError(f"invalid parameter key {key!r}")
        lines.append(f'parameters {{ key: "{key}" value: {{ string_value: "{_escape(value)}" }} }}')
    return "\n".join(lines) + "\n"


def _tensors(kind: str, specs: list[TensorSpec]) -> str:
    seen: set[str] = set()
    entries = []
    for tensor_name, dtype, dims in specs:
        if not _NAME.fullmatch(tensor_name) or tensor_name in seen:
            raise ValueError(f"invalid or duplicate {kind} name {tensor_name!r}")
        seen.add(tensor_name)
        if dtype not in TRITON_DTYPES:
            raise ValueError(f"{kind} {tensor_name!r}: unknown dtype {dtype!r}")
        dims = list(dims)
        if not dims or any(not isinstance(d, int) or d == 0 or d < -1 for d in dims):
            raise ValueError(f"{kind} {tensor_name!r}: dims must be positive or -1, got {dims}")
        shape = ", ".join(str(d) for d in dims)
        entries.append(f'  {{ name: "{tensor_name}" data_type: {dtype} dims: [ {shape} ] }}')
    return f"{kind} [\n" + ",\n".join(entries) + "\n]"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
