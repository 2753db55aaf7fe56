"""Authentication and authorization on every RPC of all four real services."""

from __future__ import annotations

import importlib
from pathlib import Path

import grpc
import pytest
from google.protobuf import message_factory

from beamops.common.v1 import auth_pb2
from beamops.runtime.auth import ROLE_NAMES

from tests.fixtures.services import running
from tests.protos import services

SERVICE_MODULES = {
    "RegistryService": ("beamops.registry", "RegistrySettings"),
    "DataService": ("beamops.data", "DataSettings"),
    "TrainingService": ("beamops.training", "TrainingSettings"),
    "InferenceService": ("beamops.inference", "InferenceSettings"),
    "GatewayService": ("beamops.inference", "InferenceSettings"),
}


def settings_for(service_name: str, tmp_path: Path, tokens_path: Path):
    package, settings_class = SERVICE_MODULES[service_name]
    settings_type = getattr(importlib.import_module(f"{package}.settings"), settings_class)
    create_server = importlib.import_module(f"{package}.server").create_server
    settings = settings_type.load(
        ["--port", "0", "--var-dir", str(tmp_path / service_name), "--tokens-file", str(tokens_path)]
    )
    return create_server, settings


async def call(channel: grpc.aio.Channel, method, metadata) -> grpc.StatusCode:
    """Call ``method`` with an empty request; return the status code it ends with."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    request_type = message_factory.GetMessageClass(method.input_type)
    response_type = message_factory.GetMessageClass(method.output_type)
    kwargs = dict(
        request_serializer=request_type.SerializeToString,
        response_deserializer=response_type.FromString,
    )
    try:
        if method.client_streaming and method.server_streaming:
            stream = channel.stream_stream(path, **kwargs)(iter([request_type()]), metadata=metadata, timeout=10)
            async for _ in stream:
                pass
        elif method.client_streaming:
            await channel.stream_unary(path, **kwargs)(iter([request_type()]), metadata=metadata, timeout=10)
        elif method.server_streaming:
            async for _ in channel.unary_stream(path, **kwargs)(request_type(), metadata=metadata, timeout=10):
                pass
        else:
            await channel.unary_unary(path, **kwargs)(request_type(), metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("service", services(), ids=lambda s: s.name)
async def test_every_rpc_without_a_token_is_unauthenticated(service, tmp_path, tokens):
    create_server, settings = settings_for(service.name, tmp_path, tokens.path)
    async with running(create_server, settings) as (_, channel):
        for method in service.methods:
            assert await call(channel, method, None) == grpc.StatusCode.UNAUTHENTICATED, method.name
            bogus = (("authorization", "Bearer bmo_not-a-real-token"),)
            assert await call(channel, method, bogus) == grpc.StatusCode.UNAUTHENTICATED, method.name


@pytest.mark.parametrize("service", services(), ids=lambda s: s.name)
async def test_a_role_below_the_required_one_is_denied(service, tmp_path, tokens):
    create_server, settings = settings_for(service.name, tmp_path, tokens.path)
    async with running(create_server, settings) as (_, channel):
        checked = 0
        for method in service.methods:
            required = method.GetOptions().Extensions[auth_pb2.required_role]
            if required == auth_pb2.ROLE_READER:
                continue
            below = ROLE_NAMES[required - 1]
            code = await call(channel, method, tokens.metadata(below))
            assert code == grpc.StatusCode.PERMISSION_DENIED, f"{method.name} as {below}: {code}"
            checked += 1
        assert checked > 0


async def test_permission_denied_message_names_the_roles(tmp_path, tokens):
    from beamops.registry.v1 import registry_service_pb2 as pb, registry_service_pb2_grpc

    create_server, settings = settings_for("RegistryService", tmp_path, tokens.path)
    async with running(create_server, settings) as (_, channel):
        stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.CreateModel(pb.CreateModelRequest(name="jets"), metadata=tokens.metadata("reader"))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "publisher" in denied.value.details() and "reader" in denied.value.details()


async def test_a_revoked_token_stops_working_on_the_next_call(tmp_path, tokens):
    from grpc_health.v1 import health_pb2

    create_server, settings = settings_for("RegistryService", tmp_path, tokens.path)
    async with running(create_server, settings) as (_, channel):
        method = next(s for s in services() if s.name == "RegistryService").methods_by_name["GetModel"]
        # The admin may call GetModel (the model does not exist: NOT_FOUND or UNIMPLEMENTED, not auth errors).
        assert await call(channel, method, tokens.metadata("admin")) not in (
            grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
        )
        tokens.store.revoke("admin-user")
        assert await call(channel, method, tokens.metadata("admin")) == grpc.StatusCode.UNAUTHENTICATED
        # Health needs no token.
        from grpc_health.v1 import health_pb2_grpc

        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
