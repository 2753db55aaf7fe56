"""The registry service process: `create_server(settings)` for tests, `main()` for the command line."""

from __future__ import annotations

import asyncio
import sys

from beamops.registry.v1 import registry_service_pb2, registry_service_pb2_grpc
from beamops.runtime.auth import TokenStore
from beamops.runtime.server import RunningServer, Service, create_grpc_server, run

from .artifacts import artifact_store_from
from .metrics import StoreMetrics
from .registry import Registry
from .servicer import RegistryServicer
from .settings import RegistrySettings
from .store import Store
from .token_admin import TokenAdmin


def build_registry(settings: RegistrySettings) -> Registry:
    """The store (migrated), the artifact store, and the registry over them; orphans cleaned."""
    artifacts = artifact_store_from(settings)  # first: a missing bucket fails before any migration
    store = Store(settings.resolved_database_url)
    store.migrate()
    registry = Registry(store, artifacts)
    registry.cleanup_orphans()
    return registry


async def create_server(settings: RegistrySettings) -> RunningServer:
    registry = await asyncio.to_thread(build_registry, settings)
    service = Service(
        descriptor=registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"],
        servicer=RegistryServicer(registry, inline_reads=registry.store.dialect == "sqlite",
                                  token_admin=TokenAdmin(TokenStore(settings.tokens_path)
                                                         if settings.auth_enabled else None, registry)),
        add_to_server=registry_service_pb2_grpc.add_RegistryServiceServicer_to_server,
    )
    running = await create_grpc_server(settings, [service])
    running.metrics.register(StoreMetrics(registry.store))

    async def close_store() -> None:
        await asyncio.to_thread(registry.store.dispose)

    running.on_stop.append(close_store)
    return running


def main(argv: list[str] | None = None) -> None:
    run(RegistrySettings.load(sys.argv[1:] if argv is None else argv), create_server)


if __name__ == "__main__":
    main()
