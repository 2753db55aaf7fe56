"""The one module that talks to Triton (``tritonclient.grpc.aio``).

It offers only what the service needs: load and unload a model (explicit model control, always
with a client timeout), readiness, and inference on numpy arrays. Triton's repository index,
logging, tracing and shared-memory APIs are deliberately not exposed. Errors become domain
errors: Triton unreachable -> :class:`Unavailable`; everything else -> a clear message with no
server path in it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence

import grpc
import numpy as np
import tritonclient.grpc.aio as triton
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from beamops.runtime.errors import FailedPrecondition, Unavailable

log = logging.getLogger(__name__)

MAX_MESSAGE = 2**31 - 1
_CHANNEL_ARGS = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    # Reconnect quickly after the supervised Triton restarts.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 30000),
]
_UNREACHABLE = ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.CANCELLED")
_PATH = re.compile(r"(/[\w.\-]+){2,}/?")


class ModelNotLoaded(Unavailable):
    """Triton is up but does not have the model (being loaded or reloaded after a restart)."""


def _clean(message: str) -> str:
    return _PATH.sub("<path>", message or "").strip()


class TritonBackend:
    """A Triton server reached at ``url`` (host:port of its gRPC endpoint)."""

    def __init__(self, url: str, *, load_timeout_s: float = 120.0,
                 infer_timeout_s: float = 30.0, ready_timeout_s: float = 5.0) -> None:
        self.url = url
        self.load_timeout_s = load_timeout_s
        self.infer_timeout_s = infer_timeout_s
        self.ready_timeout_s = ready_timeout_s
        self._client = triton.InferenceServerClient(url, channel_args=_CHANNEL_ARGS)

    async def reconnect(self) -> None:
        """A fresh channel (after the bundled Triton restarted)."""
        old, self._client = self._client, triton.InferenceServerClient(
            self.url, channel_args=_CHANNEL_ARGS)
        await _quietly(old.close())

    async def close(self) -> None:
        await _quietly(self._client.close())

    async def is_ready(self) -> bool:
        try:
            return bool(await self._client.is_server_ready(client_timeout=self.ready_timeout_s))
        except (InferenceServerException, grpc.RpcError):
            return False

    async def is_model_ready(self, name: str) -> bool:
        try:
            return bool(await self._client.is_model_ready(name, client_timeout=self.ready_timeout_s))
        except (InferenceServerException, grpc.RpcError):
            return False

    async def load(self, name: str) -> None:
        """Loads (or reloads) ``name`` from the repository; returns once Triton reports it."""
        try:
            await self._client.load_model(name, client_timeout=self.load_timeout_s)
        except InferenceServerException as exc:
            raise self._error(exc, f"loading model {name!r}") from None

    async def unload(self, name: str) -> None:
        try:
            await self._client.unload_model(name, client_timeout=self.load_timeout_s)
        except InferenceServerException as exc:
            raise self._error(exc, f"unloading model {name!r}") from None

    async def infer(self, name: str, inputs: Mapping[str, np.ndarray],
                    outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """Runs one request; returns the requested outputs as numpy arrays."""
        request = []
        for input_name, array in inputs.items():
            tensor = InferInput(input_name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            request.append(tensor)
        wanted = [InferRequestedOutput(n) for n in outputs]
        try:
            result = await self._client.infer(name, request, outputs=wanted,
                                              client_timeout=self.infer_timeout_s)
        except InferenceServerException as exc:
            raise self._error(exc, "running the model") from None
        return {n: result.as_numpy(n) for n in outputs}

    def _error(self, exc: InferenceServerException, doing: str) -> Exception:
        status, message = str(exc.status() or ""), _clean(exc.message() or str(exc))
        if status in _UNREACHABLE:
            return Unavailable(f"Triton is not reachable ({doing}); retry shortly")
        lowered = message.lower()
        if "unknown model" in lowered or "is not ready" in lowered or "not found" in lowered:
            return ModelNotLoaded(f"the model is not loaded in Triton right now ({doing}); "
                                  "it is being (re)loaded, retry shortly")
        log.warning("Triton error while %s: %s %s", doing, status, message)
        return FailedPrecondition(f"Triton failed {doing}: {message}")


async def _quietly(awaitable) -> None:
    try:
        await awaitable
    except Exception:  # noqa: BLE001 - closing a broken channel
        pass
