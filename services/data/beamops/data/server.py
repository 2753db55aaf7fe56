"""The data service process: `create_server(settings)` for tests, `main()` for the command line."""

from __future__ import annotations

import sys

import grpc

from beamops.data.v1 import data_service_pb2, data_service_pb2_grpc
from beamops.runtime.server import RunningServer, Service, create_grpc_server, run

from . import stream_wire
from .artifacts import ArtifactArea
from .catalog import DataCatalog
from .hashing import FileHasher
from .rootio import OpenFiles
from .servicer import DataServicer
from .settings import DataSettings
from .sources import SourcePolicy, SourceResolver
from .store import SqlDataStore


def build_catalog(settings: DataSettings, store: SqlDataStore, open_files: OpenFiles | None = None) -> DataCatalog:
    resolver = SourceResolver(SourcePolicy(
        data_roots=settings.data_roots, remote_hosts=settings.remote_hosts,
        allow_http=settings.allow_http))
    hasher = FileHasher(store, settings.hash_chunk_bytes, settings.remote_timeout_s)
    artifacts = ArtifactArea(settings.artifacts_path)
    artifacts.cleanup()
    return DataCatalog(store, resolver, hasher, artifacts, timeout_s=settings.remote_timeout_s,
                       step_size=settings.default_batch_size, open_files=open_files)


def add_data_service(servicer: DataServicer, server) -> None:
    """The generated registration, with ReadDatasetVersion's response serializer replaced by
    stream_wire.serialize (it passes pre-encoded batch messages through without copies)."""
    captured: dict = {}

    class _Capture:
        def add_generic_rpc_handlers(self, _handlers) -> None:
            pass  # rebuilt below from the captured handlers

        def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
            captured.update(service=service, handlers=dict(handlers))

    data_service_pb2_grpc.add_DataServiceServicer_to_server(servicer, _Capture())
    service, handlers = captured["service"], captured["handlers"]
    handlers["ReadDatasetVersion"] = handlers["ReadDatasetVersion"]._replace(
        response_serializer=stream_wire.serialize)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_registered_method_handlers(service, handlers)


async def create_server(settings: DataSettings) -> RunningServer:
    store = SqlDataStore(settings.database_path)
    open_files = OpenFiles()
    servicer = DataServicer(build_catalog(settings, store, open_files), settings.max_message_bytes,
                            settings.max_batch_size)
    service = Service(
        descriptor=data_service_pb2.DESCRIPTOR.services_by_name["DataService"],
        servicer=servicer,
        add_to_server=add_data_service,
    )
    running = await create_grpc_server(settings, [service])

    async def close_store() -> None:
        open_files.close()
        store.close()

    running.on_stop.append(close_store)
    return running


def main(argv: list[str] | None = None) -> None:
    run(DataSettings.load(sys.argv[1:] if argv is None else argv), create_server)


if __name__ == "__main__":
    main()
