"""A RegistryService whose answers are scripted by the request, to test the shared runtime.

Used only by the runtime's own tests (errors, shutdown), never in place of the real registry.
Run as a process: ``python -m tests.fakes.scripted_registry --port N --tokens-file F``.
"""

from __future__ import annotations

import asyncio
import sys

from beamops.registry.v1 import model_pb2, registry_service_pb2 as pb, registry_service_pb2_grpc
from beamops.runtime import errors
from beamops.runtime.auth import current_principal
from beamops.runtime.server import Service, create_grpc_server, run
from beamops.runtime.settings import ServiceSettings


class ScriptedSettings(ServiceSettings):
    service_name = "scripted"


class ScriptedRegistry(registry_service_pb2_grpc.RegistryServiceServicer):
    async def GetModel(self, request, context):
        name = request.name
        if name == "missing":
            raise errors.NotFound("no model named 'missing'", model="missing")
        if name == "bad":
            raise errors.InvalidArgument("name must not be 'bad'", field="name")
        if name.startswith("slow"):
            await asyncio.sleep(float(name.removeprefix("slow-") or 1.5))
        if name == "stray-cancel":  # what a call on a client channel closed under it raises
            raise asyncio.CancelledError()
        if name == "boom":
            raise RuntimeError("disk full in /srv/beamops/var/registry.db")
        return pb.GetModelResponse(model=model_pb2.Model(name=name, owner=current_principal().name))

    async def DownloadArtifact(self, request, context):
        yield pb.DownloadArtifactResponse(chunk=b"first")
        raise errors.DataLoss("artifact bytes changed since upload", artifact=request.artifact_id)


async def create_server(settings: ScriptedSettings):
    service = Service(
        pb.DESCRIPTOR.services_by_name["RegistryService"],
        ScriptedRegistry(),
        registry_service_pb2_grpc.add_RegistryServiceServicer_to_server,
    )
    return await create_grpc_server(settings, [service])


if __name__ == "__main__":
    run(ScriptedSettings.load(sys.argv[1:]), create_server)
