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
    # The Python backend's failure: the exception, then the frames of the model's code.
    (grpc.StatusCode.INTERNAL, "failed to load 'jets-1' version 1: Internal: ValueError: no weights\n\nAt:\n"
     "  /var/beamops/inference/repo/jets-1/1/model.py(41): initialize\n",
     FailedPrecondition, "Triton failed loading model 'jets-1': failed to load 'jets-1' version 1: Internal: "
     "ValueError: no weights"),
    (grpc.StatusCode.INTERNAL, "load failed: Traceback (most recent call last):\n  File \"/srv/x/model.py\", "
     "line 3, in <module>\n    import torch\nModuleNotFoundError: No module named 'torch'",
     FailedPrecondition, "Triton failed loading model 'jets-1': load failed: ModuleNotFoundError: No module "
     "named 'torch'"),
    (grpc.StatusCode.INTERNAL, "bad config\n" + "x" * 5000, FailedPrecondition,
     "Triton failed loading model 'jets-1': bad config " + "x" * 989 + " ..."),
])
async def test_triton_failures_become_clear_errors(code, details, kind, message):
    backend = TritonBackend("127.0.0.1:1")  # the channel connects lazily: nothing is called
    error = backend._error(_RpcError(code, details), "loading model 'jets-1'")
    await backend.close()
    assert type(error) is kind and error.message == message
