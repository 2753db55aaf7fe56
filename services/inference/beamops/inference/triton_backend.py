"""The one module that talks to Triton, through tritonclient's generated gRPC stubs and messages
(``tritonclient.grpc.service_pb2`` / ``service_pb2_grpc``) over one ``grpc.aio`` channel.

It offers only what the service needs: load and unload a model (explicit model control, always
with a client timeout), readiness, and inference on raw tensors: the request's bytes go into
``raw_input_contents`` and ``raw_output_contents`` come back as they are, with no numpy round
trip (tritonclient's ``InferInput``/``InferResult`` helpers copy and convert several times).
Triton's repository index, logging, tracing and shared-memory APIs are deliberately not
exposed. Errors become domain errors: Triton unreachable -> :class:`Unavailable`; everything
else -> a clear message with no server path in it.

A call cut short because its channel was closed (:meth:`TritonBackend.reconnect` after the bundled
Triton restarted) is Triton being unreachable too. grpc.aio reports it as ``CancelledError``,
which must not escape: a handler that ends in a stray ``CancelledError`` sends its caller no
status at all, and the caller waits until its own deadline.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from beamops.common.v1 import tensor_pb2
from beamops.runtime.errors import FailedPrecondition, Unavailable

from .domain import RawTensor

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
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.CANCELLED)
_PATH = re.compile(r"(/[\w.\-]+){2,}/?")

#: beamops DataType -> Triton's wire datatype (the ``datatype`` of a tensor in ModelInfer).
WIRE_TYPES: dict[int, str] = {
    tensor_pb2.DATA_TYPE_BOOL: "BOOL",
    tensor_pb2.DATA_TYPE_INT8: "INT8",
    tensor_pb2.DATA_TYPE_INT16: "INT16",
    tensor_pb2.DATA_TYPE_INT32: "INT32",
    tensor_pb2.DATA_TYPE_INT64: "INT64",
    tensor_pb2.DATA_TYPE_UINT8: "UINT8",
    tensor_pb2.DATA_TYPE_UINT16: "UINT16",
    tensor_pb2.DATA_TYPE_UINT32: "UINT32",
    tensor_pb2.DATA_TYPE_UINT64: "UINT64",
    tensor_pb2.DATA_TYPE_FLOAT16: "FP16",
    tensor_pb2.DATA_TYPE_FLOAT32: "FP32",
    tensor_pb2.DATA_TYPE_FLOAT64: "FP64",
    tensor_pb2.DATA_TYPE_BYTES: "BYTES",
}
_FROM_WIRE = {wire: dtype for dtype, wire in WIRE_TYPES.items()}


class ModelNotLoaded(Unavailable):
    """Triton is up but does not have the model (being loaded or reloaded after a restart)."""


class ModelProcessDied(Unavailable):
    """The process running the model's code (a Python-backend stub) died: Triton keeps
    answering that it is not healthy until the model is loaded again."""


def _model_process_died(lowered_message: str) -> bool:
    return "stub process" in lowered_message and "not healthy" in lowered_message


def _clean(message: str) -> str:
    return _PATH.sub("<path>", message or "").strip()


class TritonBackend:
    """A Triton server reached at ``url`` (host:port of its gRPC endpoint)."""

    def __init__(self, url: str, *, load_timeout_s: float = 120.0,
                 infer_timeout_s: float = 30.0, ready_timeout_s: float = 5.0,
                 token: str | None = None) -> None:
        """``token``: sent as ``authorization: Bearer`` on every call (the gateway's token: a
        Triton inside the gateway answers no one else)."""
        self.url = url
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self.load_timeout_s = load_timeout_s
        self.infer_timeout_s = infer_timeout_s
        self.ready_timeout_s = ready_timeout_s
        self._channel, self._stub = self._connect()

    def _connect(self):
        channel = grpc.aio.insecure_channel(self.url, options=_CHANNEL_ARGS)
        return channel, service_pb2_grpc.GRPCInferenceServiceStub(channel)

    async def reconnect(self) -> None:
        """A fresh channel (after the bundled Triton restarted)."""
        old = self._channel
        self._channel, self._stub = self._connect()
        await _quietly(old.close())

    async def close(self) -> None:
        await _quietly(self._channel.close())

    async def is_ready(self) -> bool:
        try:
            reply = await self._call(self._stub.ServerReady, service_pb2.ServerReadyRequest(),
                                     self.ready_timeout_s, "checking readiness")
        except (Unavailable, FailedPrecondition):
            return False
        return bool(reply.ready)

    async def is_model_ready(self, name: str) -> bool:
        try:
            reply = await self._call(self._stub.ModelReady, service_pb2.ModelReadyRequest(name=name),
                                     self.ready_timeout_s, f"checking model {name!r}")
        except (Unavailable, FailedPrecondition):
            return False
        return bool(reply.ready)

    async def load(self, name: str) -> None:
        """Loads (or reloads) ``name`` from the repository; returns once Triton reports it."""
        await self._call(self._stub.RepositoryModelLoad,
                         service_pb2.RepositoryModelLoadRequest(model_name=name),
                         self.load_timeout_s, f"loading model {name!r}")

    async def unload(self, name: str) -> None:
        request = service_pb2.RepositoryModelUnloadRequest(model_name=name)
        request.parameters["unload_dependents"].bool_param = False
        await self._call(self._stub.RepositoryModelUnload, request, self.load_timeout_s,
                         f"unloading model {name!r}")

    async def infer(self, name: str, inputs: Sequence[RawTensor],
                    outputs: Sequence[str]) -> list[RawTensor]:
        """Runs one request; returns the requested outputs (in Triton's shapes), raw."""
        request = service_pb2.ModelInferRequest(model_name=name)
        request.raw_input_contents.extend([t.data for t in inputs])
        add_input, add_output = request.inputs.add, request.outputs.add
        for t in inputs:
            add_input(name=t.name, datatype=WIRE_TYPES[t.dtype], shape=t.shape)
        for output in outputs:
            add_output(name=output)
        reply = await self._call(self._stub.ModelInfer, request, self.infer_timeout_s,
                                 "running the model")
        raw = reply.raw_output_contents
        if len(raw) != len(reply.outputs):
            raise FailedPrecondition("Triton failed running the model: it answered without raw "
                                     "output contents")
        got = {}
        for tensor, data in zip(reply.outputs, raw):
            dtype = _FROM_WIRE.get(tensor.datatype)
            if dtype is None:
                raise FailedPrecondition(f"Triton failed running the model: output "
                                         f"{tensor.name!r} has datatype {tensor.datatype}")
            got[tensor.name] = RawTensor(tensor.name, dtype, tuple(tensor.shape), data)
        try:
            return [got[n] for n in outputs]
        except KeyError as exc:
            raise FailedPrecondition(f"Triton failed running the model: no output "
                                     f"{exc.args[0]!r} in its answer") from None

    async def _call(self, method, request, timeout: float, doing: str):
        """``method(request)`` on the current channel, its failures as domain errors."""
        try:
            return await method(request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self._error(exc, doing) from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # our caller is being cancelled: let it
            # The channel was closed under the call (reconnect after a Triton restart).
            raise Unavailable(f"Triton is not reachable ({doing}); retry shortly") from None

    def _error(self, exc: grpc.RpcError, doing: str) -> Exception:
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else str(exc)
        message = _clean(details or str(exc))
        if code in _UNREACHABLE:
            return Unavailable(f"Triton is not reachable ({doing}); retry shortly")
        lowered = message.lower()
        if _model_process_died(lowered):
            return ModelProcessDied(f"the model's process in Triton ended ({doing}); it is being "
                                    "restarted, retry shortly")
        if "unknown model" in lowered or "is not ready" in lowered or "not found" in lowered:
            return ModelNotLoaded(f"the model is not loaded in Triton right now ({doing}); "
                                  "it is being (re)loaded, retry shortly")
        log.warning("Triton error while %s: %s %s", doing, code, message)
        return FailedPrecondition(f"Triton failed {doing}: {message}")


async def _quietly(awaitable) -> None:
    try:
        await awaitable
    except Exception:  # noqa: BLE001 - closing a broken channel
        pass
