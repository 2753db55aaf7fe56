"""gRPC glue of the data service: convert, delegate to the domain logic, convert back.

RPCs not yet built answer UNIMPLEMENTED (through the generated base class).
"""

from __future__ import annotations

from beamops.data.v1 import data_service_pb2_grpc


class DataServicer(data_service_pb2_grpc.DataServiceServicer):
    pass
