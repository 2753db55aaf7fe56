"""The data plane as this service reaches it: Predict and PredictStream calls that arrive on the
service's own port are passed to the gateway, which answers every inference call, and its
answers (statuses and their details included) go back unchanged.

The caller's authorization and request id travel with each call, so the gateway admits, audits
and logs it as it does a call made to its own port; the caller's deadline travels too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from beamops.inference.v1 import inference_service_pb2 as pb, inference_service_pb2_grpc
from beamops.runtime.errors import Unavailable
from beamops.runtime.interceptors import REQUEST_ID_KEY, Relayed, metadata_value
from beamops.runtime.logs import request_id_var


class DataPlane:
    """A channel to the gateway's plaintext address (``connect`` once it listens)."""

    def __init__(self, max_message_bytes: int) -> None:
        self._options = [("grpc.max_send_message_length", max_message_bytes),
                         ("grpc.max_receive_message_length", max_message_bytes)]
        self._channel: grpc.aio.Channel | None = None
        self._stub: inference_service_pb2_grpc.InferenceServiceStub | None = None

    def connect(self, address: str) -> None:
        self._channel = grpc.aio.insecure_channel(address, options=self._options)
        self._stub = inference_service_pb2_grpc.InferenceServiceStub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def predict(self, req: pb.PredictRequest, context) -> pb.PredictResponse:
        try:
            return await self._ready().Predict(req, metadata=_metadata(context),
                                               timeout=context.time_remaining())
        except grpc.aio.AioRpcError as exc:
            raise _relayed(exc) from None

    async def predict_stream(self, requests: AsyncIterator[pb.PredictStreamRequest],
                             context) -> AsyncIterator[pb.PredictStreamResponse]:
        call = self._ready().PredictStream(requests, metadata=_metadata(context),
                                           timeout=context.time_remaining())
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as exc:
            raise _relayed(exc) from None
        finally:
            call.cancel()

    def _ready(self) -> inference_service_pb2_grpc.InferenceServiceStub:
        if self._stub is None:
            raise Unavailable("the inference gateway is starting; retry shortly")
        return self._stub


def _relayed(exc: grpc.aio.AioRpcError) -> Exception:
    """The gateway's answer as it is; a call that never reached it (it is down: every status it
    sends carries details) becomes a clear UNAVAILABLE, without the transport's words."""
    if exc.code() == grpc.StatusCode.UNAVAILABLE and not any(
            key == "grpc-status-details-bin" for key, _ in exc.trailing_metadata() or ()):
        return Unavailable("the inference gateway, which answers Predict, is not reachable; "
                           "it is restarted when it fails, retry shortly")
    return Relayed(exc)


def _metadata(context) -> tuple[tuple[str, str], ...]:
    md = [(REQUEST_ID_KEY, request_id_var.get())]
    if authorization := metadata_value(context, "authorization"):
        md.append(("authorization", authorization))
    return tuple(md)
