"""How Triton's failures become beamops errors (triton_backend.py; the gateway's Go port,
internal/triton, maps the same answers to the same messages)."""

from __future__ import annotations

import grpc
import pytest

from beamops.inference.triton_backend import ModelNotLoaded, ModelProcessDied, TritonBackend
from beamops.runtime.errors import FailedPrecondition, Unavailable


class _RpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize("code, details, kind, message", [
    (grpc.StatusCode.INTERNAL, "Stub process 'jets__1_0_0_0' is not healthy.", ModelProcessDied,
     "the model's process in Triton ended (running the model); it is being restarted, retry shortly"),
    (grpc.StatusCode.UNAVAILABLE, "Stub process 'x' is not healthy.", Unavailable,
     "Triton is not reachable (running the model); retry shortly"),
    (grpc.StatusCode.NOT_FOUND, "Request for unknown model: 'jets-1' is not found", ModelNotLoaded,
     "the model is not loaded in Triton right now (running the model); it is being (re)loaded, "
     "retry shortly"),
    (grpc.StatusCode.INVALID_ARGUMENT, "onnx runtime error: /opt/m/1/model.onnx failed",
     FailedPrecondition, "Triton failed running the model: onnx runtime error: <path> failed"),
])
async def test_triton_failures_map_like_the_gateway(code, details, kind, message):
    backend = TritonBackend("127.0.0.1:1")  # the channel connects lazily: nothing is called
    error = backend._error(_RpcError(code, details), "running the model")
    await backend.close()
    assert type(error) is kind and error.message == message
