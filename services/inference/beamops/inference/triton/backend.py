"""The one module that talks to Triton, through tritonclient's generated gRPC stubs and messages
(``tritonclient.grpc.service_pb2`` / ``service_pb2_grpc``) over one ``grpc.aio`` channel.

It offers only what the control plane needs: load and unload a model (explicit model control,
always with a client timeout) and readiness; inference is the gateway's. Triton's repository
index, logging, tracing and shared-memory APIs are deliberately not exposed. Errors become
domain errors: Triton unreachable -> :class:`Unavailable`; everything else -> a clear message
with no server path in it.

A call cut short because its channel was closed (:meth:`TritonBackend.reconnect` after the bundled
Triton restarted) is Triton being unreachable too. grpc.aio reports it as ``CancelledError``,
which must not escape: a handler that ends in a stray ``CancelledError`` sends its caller no
status at all, and the caller waits until its own deadline.
"""

from __future__ import annotations

import asyncio
import logging
import re

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

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
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.CANCELLED)
_PATH = re.compile(r"(/[\w.\-]+){2,}/?")

class ModelNotLoaded(Unavailable):
    """Triton is up but does not have the model (being loaded or reloaded after a restart)."""


# Where a Triton message turns into a traceback: the Python backend's "At:" frames
# ("\n\nAt:\n  /models/m/1/model.py(12): initialize") or a Python "Traceback (most recent...".
_TRACEBACK = re.compile(r"\n\s*At:\s*\n|Traceback \(most recent call last\)")
_FRAME = re.compile(r'^\s*(File ".*", line \d+|\S+\(\d+\): \S+)')
MAX_SHOWN = 1000  # characters of Triton's message passed on


def _clean(message: str) -> str:
    """Triton's message without traceback frames or server paths, on one line, at most
    MAX_SHOWN characters: what failed, not where in Triton's or the model's code."""
    head, *rest = _TRACEBACK.split(message or "", maxsplit=1)
    lines = [line.strip() for line in head.splitlines() if line.strip() and not _FRAME.match(line)]
    if rest:  # a Python traceback ends with its exception, the only line not indented
        lines += [line for line in rest[0].splitlines() if line.strip() and not line[0].isspace()][-1:]
    text = _PATH.sub("<path>", " ".join(lines)).strip()
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + " ..."


class TritonBackend:
    """A Triton server reached at ``url`` (host:port of its gRPC endpoint)."""

    def __init__(self, url: str, *, load_timeout_s: float = 120.0,
                 ready_timeout_s: float = 5.0,
                 token: str | None = None) -> None:
        """``token``: sent as ``authorization: Bearer`` on every call (the gateway's token: a
        Triton inside the gateway answers no one else)."""
        self.url = url
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self.load_timeout_s = load_timeout_s
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
