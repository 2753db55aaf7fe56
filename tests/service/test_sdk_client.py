"""The SDK client: sends the token, and turns failed calls into Python exceptions."""

from __future__ import annotations

import asyncio

import pytest

import beamops
from beamops.errors import from_rpc_error
from beamops.registry.v1 import registry_service_pb2 as pb

from tests.fakes.scripted_registry import ScriptedSettings, create_server
from tests.fixtures.services import running


@pytest.fixture
async def address(tokens):
    settings = ScriptedSettings.load(["--port", "0", "--tokens-file", str(tokens.path)])
    async with running(create_server, settings) as (server, _):
        yield f"127.0.0.1:{server.port}"


def get_model(client: beamops.Client, name: str):
    import grpc

    try:
        return client.stub("registry").GetModel(pb.GetModelRequest(name=name))
    except grpc.RpcError as error:
        raise from_rpc_error(error) from None


async def test_client_sends_its_token(address, tokens):
    with beamops.Client(tokens.publisher, registry_address=address) as client:
        reply = await asyncio.to_thread(get_model, client, "jets")
    assert reply.model.owner == "publisher-user"


async def test_errors_become_exceptions_with_request_ids(address, tokens):
    with beamops.Client(tokens.reader, registry_address=address) as client:
        with pytest.raises(beamops.NotFoundError) as missing:
            await asyncio.to_thread(get_model, client, "missing")
        assert str(missing.value) == "no model named 'missing'"
        assert missing.value.request_id and missing.value.metadata == {"model": "missing"}
        with pytest.raises(beamops.InvalidArgumentError) as bad:
            await asyncio.to_thread(get_model, client, "bad")
        assert bad.value.field == "name"
        with pytest.raises(beamops.InternalError):
            await asyncio.to_thread(get_model, client, "boom")
    with beamops.Client("bmo_wrong", registry_address=address) as client:
        with pytest.raises(beamops.AuthenticationError):
            await asyncio.to_thread(get_model, client, "jets")
