"""The registry service process: `create_server(settings)` for tests, `main()` for the command line."""

from __future__ import annotations

import sys

from beamops.registry.v1 import registry_service_pb2, registry_service_pb2_grpc
from beamops.runtime.server import RunningServer, Service, create_grpc_server, run

from .servicer import RegistryServicer
from .settings import RegistrySettings


async def create_server(settings: RegistrySettings) -> RunningServer:
    service = Service(
        descriptor=registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"],
        servicer=RegistryServicer(),
        add_to_server=registry_service_pb2_grpc.add_RegistryServiceServicer_to_server,
    )
    return await create_grpc_server(settings, [service])


def main(argv: list[str] | None = None) -> None:
    run(RegistrySettings.load(sys.argv[1:] if argv is None else argv), create_server)


if __name__ == "__main__":
    main()
