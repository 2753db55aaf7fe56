"""A gRPC server with Triton's service definition whose calls never answer: a hung Triton.

Used only to test how the Triton adapter treats calls that are still waiting when its channel
is replaced; every other Triton test runs the real (bundled) server.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import grpc
from tritonclient.grpc import service_pb2_grpc


class _Hung(service_pb2_grpc.GRPCInferenceServiceServicer):
    async def _hang(self, request, context):
        await asyncio.sleep(3600)

    ModelInfer = RepositoryModelLoad = RepositoryModelUnload = ModelReady = ServerReady = _hang


@asynccontextmanager
async def hung_triton():
    """Yields ``host:port`` of a server that accepts every Triton call and never answers."""
    server = grpc.aio.server()
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(_Hung(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)
