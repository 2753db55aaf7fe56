"""The data service process: `create_server(settings)` for tests, `main()` for the command line."""

from __future__ import annotations

import sys

from beamops.data.v1 import data_service_pb2, data_service_pb2_grpc
from beamops.runtime.server import RunningServer, Service, create_grpc_server, run

from .servicer import DataServicer
from .settings import DataSettings


async def create_server(settings: DataSettings) -> RunningServer:
    service = Service(
        descriptor=data_service_pb2.DESCRIPTOR.services_by_name["DataService"],
        servicer=DataServicer(),
        add_to_server=data_service_pb2_grpc.add_DataServiceServicer_to_server,
    )
    return await create_grpc_server(settings, [service])


def main(argv: list[str] | None = None) -> None:
    run(DataSettings.load(sys.argv[1:] if argv is None else argv), create_server)


if __name__ == "__main__":
    main()
