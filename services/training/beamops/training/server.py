"""The training service process: `create_server(settings)` for tests, `main()` for the command line."""

from __future__ import annotations

import sys

from beamops.training.v1 import training_service_pb2, training_service_pb2_grpc
from beamops.runtime.server import RunningServer, Service, create_grpc_server, run

from .servicer import TrainingServicer
from .settings import TrainingSettings


async def create_server(settings: TrainingSettings) -> RunningServer:
    service = Service(
        descriptor=training_service_pb2.DESCRIPTOR.services_by_name["TrainingService"],
        servicer=TrainingServicer(),
        add_to_server=training_service_pb2_grpc.add_TrainingServiceServicer_to_server,
    )
    return await create_grpc_server(settings, [service])


def main(argv: list[str] | None = None) -> None:
    run(TrainingSettings.load(sys.argv[1:] if argv is None else argv), create_server)


if __name__ == "__main__":
    main()
