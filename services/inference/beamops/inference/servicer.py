"""gRPC glue of the inference service: convert, delegate to the domain logic, convert back.

RPCs not yet built answer UNIMPLEMENTED (through the generated base class).
"""

from __future__ import annotations

from beamops.inference.v1 import inference_service_pb2_grpc


class InferenceServicer(inference_service_pb2_grpc.InferenceServiceServicer):
    pass
