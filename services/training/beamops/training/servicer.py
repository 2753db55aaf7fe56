"""gRPC glue of the training service: convert, delegate to the domain logic, convert back.

RPCs not yet built answer UNIMPLEMENTED (through the generated base class).
"""

from __future__ import annotations

from beamops.training.v1 import training_service_pb2_grpc


class TrainingServicer(training_service_pb2_grpc.TrainingServiceServicer):
    pass
