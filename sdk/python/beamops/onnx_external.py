"""ONNX models must be self-contained: no tensor may keep its bytes outside the model file.

ONNX lets a tensor (an initializer, a Constant's value, a sparse tensor; in the main graph, a
subgraph, a function or the training info) store its data "externally": ``data_location =
EXTERNAL`` and a ``location`` that ONNX Runtime resolves when it loads the model, against the
model's folder, or against the current directory for a model given as bytes (and
``*/_ORT_MEM_ADDR_/*`` even names a memory address). A model from the registry would then read a
file of whoever loads it: ``beamops.load_model`` returned the client's ``./pyproject.toml`` as a
tensor. So the registry refuses such uploads, and every place that hands a model to ONNX Runtime
refuses such models first. The locations are only read out of the model to name them in the
message; they are never resolved, opened or stat'ed.

Shared by the SDK and the services (one distribution); imports only ``onnx``.
"""

from __future__ import annotations

from collections.abc import Iterator

import onnx
from onnx import TensorProto

__all__ = ["ExternalDataError", "external_locations", "check_self_contained", "load_self_contained"]

_SHOWN = 3  # locations named in a message
_LOCATION_CHARS = 80  # characters of each


class ExternalDataError(ValueError):
    """The model stores tensor data outside itself. ``locations``: what the model names."""

    def __init__(self, what: str, locations: list[str]) -> None:
        self.locations = locations
        shown = ", ".join(repr(loc[:_LOCATION_CHARS]) for loc in locations[:_SHOWN])
        more = f" and {len(locations) - _SHOWN} more" if len(locations) > _SHOWN else ""
        super().__init__(
            f"{what} stores weights as external data ({shown}{more}); beamops accepts only "
            "self-contained ONNX files: load the model with onnx.load (which reads its external "
            "files) and save it as one file with onnx.save_model(model, path, "
            "save_as_external_data=False), then upload that")


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        yield from _node_tensors(node)


def _node_tensors(node: onnx.NodeProto) -> Iterator[TensorProto]:
    for attribute in node.attribute:
        if attribute.HasField("t"):
            yield attribute.t
        yield from attribute.tensors
        sparse = list(attribute.sparse_tensors)
        if attribute.HasField("sparse_tensor"):
            sparse.append(attribute.sparse_tensor)
        for s in sparse:
            yield s.values
            yield s.indices
        if attribute.HasField("g"):
            yield from _graph_tensors(attribute.g)
        for graph in attribute.graphs:
            yield from _graph_tensors(graph)


def _tensors(model: onnx.ModelProto) -> Iterator[TensorProto]:
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from _node_tensors(node)
    for info in model.training_info:
        yield from _graph_tensors(info.initialization)
        yield from _graph_tensors(info.algorithm)


def external_locations(model: onnx.ModelProto) -> list[str]:
    """The ``location`` of every tensor of ``model`` that stores its data externally (a tensor
    marked external without a location, or with external_data entries, counts too)."""
    found = []
    for tensor in _tensors(model):
        if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data):
            where = [e.value for e in tensor.external_data if e.key == "location"]
            found.append(where[0] if where else f"<tensor {tensor.name[:_LOCATION_CHARS]}>")
    return found


def check_self_contained(model: onnx.ModelProto, what: str = "the ONNX model") -> None:
    """ExternalDataError if any tensor of ``model`` keeps its data outside the model."""
    locations = external_locations(model)
    if locations:
        raise ExternalDataError(what, locations)


def load_self_contained(data: bytes, what: str = "the ONNX model") -> onnx.ModelProto:
    """Parse ONNX bytes (external data never loaded) and check them with
    :func:`check_self_contained`. ValueError if the bytes are not an ONNX model."""
    try:
        model = onnx.ModelProto.FromString(data)  # protobuf only: never looks at any file
    except Exception:
        raise ValueError(f"{what} is not a readable ONNX model") from None
    check_self_contained(model, what)
    return model
