"""The inference service process: `create_server(settings)` for tests, `main()` for the command line."""

from __future__ import annotations

import sys

from beamops.inference.v1 import inference_service_pb2, inference_service_pb2_grpc
from beamops.runtime.server import RunningServer, Service, create_grpc_server, run

from .servicer import InferenceServicer
from .settings import InferenceSettings


async def create_server(settings: InferenceSettings) -> RunningServer:
    service = Service(
        descriptor=inference_service_pb2.DESCRIPTOR.services_by_name["InferenceService"],
        servicer=InferenceServicer(),
        add_to_server=inference_service_pb2_grpc.add_InferenceServiceServicer_to_server,
    )
    return await create_grpc_server(settings, [service])


def main(argv: list[str] | None = None) -> None:
    run(InferenceSettings.load(sys.argv[1:] if argv is None else argv), create_server)


if __name__ == "__main__":
    main()
