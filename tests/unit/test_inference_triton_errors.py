"""How Triton's failures to load or unload a model become beamops errors (triton/backend.py)."""

from __future__ import annotations

import grpc
import pytest

from beamops.inference.triton.backend import ModelNotLoaded, TritonBackend
from beamops.runtime.errors import FailedPrecondition, Unavailable


class _RpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize("code, details, kind, message", [
    (grpc.StatusCode.UNAVAILABLE, "Stub process 'x' is not healthy.", Unavailable,
     "Triton is not reachable (loading model 'jets-1'); retry shortly"),
    (grpc.StatusCode.NOT_FOUND, "Request for unknown model: 'jets-1' is not found", ModelNotLoaded,
     "the model is not loaded in Triton right now (loading model 'jets-1'); it is being (re)loaded, "
     "retry shortly"),
    (grpc.StatusCode.INVALID_ARGUMENT, "onnx runtime error: /opt/m/1/model.onnx failed",
     FailedPrecondition, "Triton failed loading model 'jets-1': onnx runtime error: <path> failed"),
])
async def test_triton_failures_become_clear_errors(code, details, kind, message):
    backend = TritonBackend("127.0.0.1:1")  # the channel connects lazily: nothing is called
    error = backend._error(_RpcError(code, details), "loading model 'jets-1'")
    await backend.close()
    assert type(error) is kind and error.message == message
