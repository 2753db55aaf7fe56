"""The error interceptor: domain errors keep their code and message; bugs become INTERNAL."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from beamops.registry.v1 import registry_service_pb2 as pb, registry_service_pb2_grpc

from tests.fakes.scripted_registry import ScriptedSettings, create_server
from tests.fixtures.services import running


@pytest.fixture
async def stub(tmp_path, tokens):
    settings = ScriptedSettings.load(["--port", "0", "--tokens-file", str(tokens.path)])
    async with running(create_server, settings) as (_, channel):
        yield registry_service_pb2_grpc.RegistryServiceStub(channel)


def details_of(error: grpc.aio.AioRpcError) -> dict[str, object]:
    status = rpc_status.from_call(error)
    found = {}
    for detail in status.details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.RequestInfo, error_details_pb2.BadRequest):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                found[kind.__name__] = message
    return found


async def test_domain_error_keeps_code_message_and_names_the_resource(stub, tokens):
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.GetModel(pb.GetModelRequest(name="missing"), metadata=tokens.metadata("reader"))
    assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    assert failed.value.details() == "no model named 'missing'"
    details = details_of(failed.value)
    assert details["ErrorInfo"].reason == "NOT_FOUND"
    assert details["ErrorInfo"].domain == "beamops.dev"
    assert dict(details["ErrorInfo"].metadata) == {"model": "missing"}
    assert details["RequestInfo"].request_id


async def test_invalid_argument_names_the_field(stub, tokens):
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.GetModel(pb.GetModelRequest(name="bad"), metadata=tokens.metadata("reader"))
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = details_of(failed.value)["BadRequest"].field_violations
    assert [v.field for v in violations] == ["name"]


async def test_unexpected_error_is_internal_with_request_id_and_no_path(stub, tokens, caplog):
    metadata = tokens.metadata("reader") + (("x-request-id", "req-42"),)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.GetModel(pb.GetModelRequest(name="boom"), metadata=metadata)
    error = failed.value
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "req-42" in error.details()
    assert "/srv" not in error.details() and "Traceback" not in error.details()
    assert "disk full" not in error.details()
    assert dict(error.trailing_metadata())["x-request-id"] == "req-42"
    # The full story is in the log, under the same request id.
    logged = [r for r in caplog.records if getattr(r, "request_id", None) == "req-42"]
    assert logged and logged[0].exc_info is not None


async def test_stray_cancellation_from_a_dependency_is_unavailable_not_a_hang(stub, tokens):
    # Without the interceptor's care the handler ends with no status and the caller waits for
    # its deadline (seen when the inference service reconnected to a restarted Triton).
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.GetModel(pb.GetModelRequest(name="stray-cancel"),
                            metadata=tokens.metadata("reader"), timeout=20)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "retry" in failed.value.details()


async def test_a_caller_cancelling_its_call_is_not_reported_as_a_stray_cancellation(stub, tokens, caplog):
    call = stub.GetModel(pb.GetModelRequest(name="slow-30"), metadata=tokens.metadata("reader"))
    await asyncio.sleep(0.3)  # the handler is sleeping
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    # The server still answers, and saw the cancellation as the call's own.
    await stub.GetModel(pb.GetModelRequest(name="jets"), metadata=tokens.metadata("reader"))
    assert not [r for r in caplog.records if "cancelled under it" in r.getMessage()]


async def test_success_returns_the_request_id_and_knows_the_caller(stub, tokens):
    call = stub.GetModel(pb.GetModelRequest(name="jets"), metadata=tokens.metadata("publisher"))
    reply = await call
    assert reply.model.owner == "publisher-user"
    assert dict(await call.trailing_metadata())["x-request-id"]


async def test_error_in_the_middle_of_a_stream_ends_it_with_its_code(stub, tokens):
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        async for part in stub.DownloadArtifact(
            pb.DownloadArtifactRequest(artifact_id="art-1"), metadata=tokens.metadata("reader")
        ):
            received.append(part.chunk)
    assert received == [b"first"]
    assert failed.value.code() == grpc.StatusCode.DATA_LOSS


async def test_unimplemented_rpc_says_so(stub, tokens):
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.ListModels(pb.ListModelsRequest(), metadata=tokens.metadata("reader"))
    assert failed.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert failed.value.details() == "ListModels is not implemented yet"
