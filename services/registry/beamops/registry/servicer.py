"""gRPC glue of the registry service: convert, delegate to the domain logic, convert back.

RPCs not yet built answer UNIMPLEMENTED (through the generated base class).
"""

from __future__ import annotations

from beamops.registry.v1 import registry_service_pb2_grpc


class RegistryServicer(registry_service_pb2_grpc.RegistryServiceServicer):
    pass
