"""A RegistryService that answers UNAVAILABLE as told and counts every attempt it receives.

Used only to test what the SDK's channels do with UNAVAILABLE (which calls gRPC sends again),
never in place of the real registry. A blocking ``grpc.server`` in a thread pool, so the
blocking SDK can call it from the test's own thread.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent import futures

import grpc

from beamops.registry.v1 import model_pb2, registry_service_pb2 as pb, registry_service_pb2_grpc


class FlakyRegistry(registry_service_pb2_grpc.RegistryServiceServicer):
    """Every method fails with UNAVAILABLE its first ``failures[method]`` times, then answers."""

    def __init__(self, failures: dict[str, int]) -> None:
        self.failures = dict(failures)
        self.attempts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _attempt(self, method: str, context) -> None:
        with self._lock:
            self.attempts[method] += 1
            failing = self.attempts[method] <= self.failures.get(method, 0)
        if failing:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the registry is restarting")

    def GetModel(self, request, context):
        self._attempt("GetModel", context)
        return pb.GetModelResponse(model=model_pb2.Model(name=request.name))

    def CreateModel(self, request, context):
        self._attempt("CreateModel", context)
        return pb.CreateModelResponse(model=model_pb2.Model(name=request.name))

    def CreateParametersVersion(self, request, context):
        self._attempt("CreateParametersVersion", context)
        return pb.CreateParametersVersionResponse(parameters=model_pb2.ParametersVersion(version="1.0"))


def serve(registry: FlakyRegistry) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    registry_service_pb2_grpc.add_RegistryServiceServicer_to_server(registry, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port
