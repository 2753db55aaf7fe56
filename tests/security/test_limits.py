"""Item 9: oversized messages are RESOURCE_EXHAUSTED; huge page and chunk sizes are clamped
(no error); negative page sizes, page tokens the server did not issue, and tensors whose
declared shape disagrees with their bytes, with negative or enormous dimensions, are
INVALID_ARGUMENT; and every server is still healthy afterwards.
"""

from __future__ import annotations

import grpc
import numpy as np
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc

from beamops.common.v1 import lineage_pb2, tensor_pb2
from beamops.data.v1 import data_service_pb2 as dpb, dataset_pb2
from beamops.inference.v1 import deployment_pb2 as deppb, inference_service_pb2 as ipb
from beamops.registry.v1 import registry_service_pb2 as rs
from beamops.tensors import to_tensor

from tests.fixtures.inference import N_FEATURES, mlp_onnx
from tests.fixtures.registry import make_onnx
from tests.fixtures.services import running
from tests.protos import public_services
from tests.service import test_runtime_auth

from .assertions import assert_clean_error, expect_error

IA, RE = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED
BAD = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
INT32_MAX = 2**31 - 1


async def healthy(channel: grpc.aio.Channel) -> bool:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def unary(channel, method):
    request_type = message_factory.GetMessageClass(method.input_type)
    response_type = message_factory.GetMessageClass(method.output_type)
    call = channel.unary_unary(f"/{method.containing_service.full_name}/{method.name}",
                               request_serializer=request_type.SerializeToString,
                               response_deserializer=response_type.FromString)
    return call, request_type


async def status_of(coro) -> grpc.StatusCode:
    try:
        await coro
    except grpc.aio.AioRpcError as err:
        assert err.code() not in BAD, (err.code(), err.details())
        assert_clean_error(err, err.code())
        return err.code()
    return grpc.StatusCode.OK


async def test_every_service_refuses_oversized_messages_and_clamps_page_sizes(tmp_path, tokens):
    md = tokens.metadata("admin")
    for service in public_services():  # GatewayService: test_inference_gateway_control.py
        create_server, settings = test_runtime_auth.settings_for(service.name, tmp_path, tokens.path)
        settings = settings.model_copy(update={"max_message_bytes": 64 * 1024})
        async with running(create_server, settings) as (_, channel):
            lists = [m for m in service.methods if m.name.startswith("List") and not m.server_streaming
                     and not m.client_streaming and "page_size" in m.input_type.fields_by_name]
            assert lists, service.name
            for method in lists:
                call, request_type = unary(channel, method)
                # Over the message limit: refused by gRPC before any handler runs.
                await expect_error(call(request_type(page_token="x" * 200_000), metadata=md, timeout=10), RE)
                # Huge page sizes: the same answer as the default page size; negative ones and
                # page tokens the server did not issue (garbage, a bare offset) are refused.
                default = await status_of(call(request_type(page_size=0), metadata=md, timeout=10))
                assert await status_of(call(request_type(page_size=INT32_MAX), metadata=md, timeout=10)) == default
                assert await status_of(call(request_type(page_size=-1), metadata=md, timeout=10)) == IA
                for token in ("garbage!", "100", "x" * 1000):
                    assert await status_of(call(request_type(page_token=token), metadata=md, timeout=10)) == IA
            assert await healthy(channel), service.name


async def test_registry_chunk_sizes_are_clamped_and_artifact_size_is_bounded(start_registry):
    async with start_registry(max_artifact_bytes=100_000, max_message_bytes=1024 * 1024) as registry:
        await registry.create_model("limits")
        data = make_onnx()
        artifact = await registry.upload("limits", data)
        for chunk_size in (INT32_MAX, -1, 1):
            parts = [p async for p in registry.stub.DownloadArtifact(
                rs.DownloadArtifactRequest(artifact_id=artifact.artifact_id, chunk_size=chunk_size),
                metadata=registry.md("reader"))]
            chunks = [p.chunk for p in parts if p.WhichOneof("part") == "chunk"]
            assert b"".join(chunks) == data and all(len(c) <= 4 * 1024 * 1024 for c in chunks)
        for size in (200_000, 2**62):
            try:
                await registry.upload("limits", b"\0" * 200_000 if size == 200_000 else data, size=size)
            except grpc.aio.AioRpcError as err:
                assert_clean_error(err, (RE, grpc.StatusCode.DATA_LOSS, IA))
            else:
                raise AssertionError("an upload over max_artifact_bytes was stored")
        assert len(registry.blob_files()) == 1
        big = rs.CreateModelRequest(name="big", description="x" * (2 * 1024 * 1024))
        await expect_error(registry.stub.CreateModel(big, metadata=registry.md()), RE)
        assert (await registry.stub.GetModel(rs.GetModelRequest(name="limits"), metadata=registry.md("reader"))).model


async def test_data_reads_clamp_batches_and_refuse_absurd_sizes(data_client):
    version = (await data_client.register("limits", ["uproot-HZZ.root"])).version
    ref = lineage_pb2.DatasetVersionRef(dataset="limits", version_id=version.version_id)
    md = data_client.md("reader")

    async def read(**kw):
        return [m async for m in data_client.stub.ReadDatasetVersion(
            dpb.ReadDatasetVersionRequest(version=ref, branches=["NMuon", "Muon_Px"], **kw), metadata=md)]

    messages = await read(batch_size=2**62)
    assert sum(m.num_rows for m in messages) == version.entry_count
    for kw in (dict(jagged_mode=dpb.JAGGED_MODE_PAD, pad_length=INT32_MAX),
               dict(jagged_mode=dpb.JAGGED_MODE_PAD, pad_length=-1),
               dict(jagged_mode=dpb.JAGGED_MODE_PAD, branch_pad_lengths={"Muon_Px": INT32_MAX}),
               dict(entry_range=dataset_pb2.EntryRange(start=-5, stop=10)),
               dict(entry_range=dataset_pb2.EntryRange(start=2**62, stop=2**62 + 1)),
               dict(entry_range=dataset_pb2.EntryRange(start=10, stop=5))):
        try:
            await read(**kw)
        except grpc.aio.AioRpcError as err:
            assert_clean_error(err, IA)
        else:
            assert kw.get("entry_range") is not None and kw["entry_range"].start >= 2**62, kw  # empty read is ok
    for bins in (INT32_MAX, -3):
        await expect_error(data_client.stub.ComputeStatistics(dpb.ComputeStatisticsRequest(
            version=ref, histogram_bins=bins), metadata=data_client.md()), IA)
    await expect_error(data_client.register("limits", ["uproot-HZZ.root"],
                                            entry_range=dataset_pb2.EntryRange(start=-1, stop=-2)), IA)
    assert await healthy(data_client.channel)


def _tensor(shape, raw: bytes, dtype=tensor_pb2.DATA_TYPE_FLOAT32, name="x") -> tensor_pb2.Tensor:
    return tensor_pb2.Tensor(name=name, dtype=dtype, shape=list(shape), raw_data=raw)


async def test_tensors_whose_shape_and_bytes_disagree_are_invalid(inference_stack):
    stack = inference_stack
    params = await stack.publish("limits", mlp_onnx())
    async with stack.inference(max_message_bytes=1024 * 1024) as (server, stub):
        await stub.Deploy(ipb.DeployRequest(model="limits", target=deppb.DeploymentTarget(
            parameters_version=params.version)), metadata=stack.md("deployer"))
        row = np.zeros((2, N_FEATURES), np.float32).tobytes()
        bad = [
            _tensor((2, N_FEATURES), row[:-4]),
            _tensor((2, N_FEATURES), row + b"\0" * 4),
            _tensor((3, N_FEATURES), row),
            _tensor((-1, N_FEATURES), row),
            _tensor((2, -N_FEATURES), row),
            _tensor((2**62, 2**62), b""),
            _tensor((2**63 - 1, N_FEATURES), row),
            _tensor((2**40, N_FEATURES), row),
            _tensor((0, N_FEATURES), b""),
            _tensor((0, 2**62), b""),
            _tensor([1] * 64 + [2, N_FEATURES], row),
            _tensor((2, N_FEATURES), row, dtype=999),
            _tensor((2, N_FEATURES), row, dtype=tensor_pb2.DATA_TYPE_BYTES),
            _tensor((2, N_FEATURES), row, name="x\x00"),
            _tensor((12,), row),
        ]
        md = stack.md("reader")
        for tensor in bad:
            await expect_error(stub.Predict(ipb.PredictRequest(deployment="limits", inputs=[tensor]), metadata=md), IA)

        async def stream():
            for i, tensor in enumerate(bad):
                yield ipb.PredictStreamRequest(request_id=f"r{i}", deployment="limits", inputs=[tensor])

        answers = [a async for a in stub.PredictStream(stream(), metadata=md)]
        assert len(answers) == len(bad)
        assert all(a.status.code == IA.value[0] for a in answers), [(a.request_id, a.status) for a in answers]
        huge = _tensor((50_000, N_FEATURES), np.zeros((50_000, N_FEATURES), np.float32).tobytes())
        await expect_error(stub.Predict(ipb.PredictRequest(deployment="limits", inputs=[huge]), metadata=md), RE)
        good = await stub.Predict(ipb.PredictRequest(deployment="limits", inputs=[
            to_tensor("x", np.zeros((2, N_FEATURES), np.float32))]), metadata=md)
        assert {t.name for t in good.outputs} == {"probabilities", "label"}
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        try:
            assert await healthy(channel)
        finally:
            await channel.close()


async def test_timestamps_out_of_range_are_invalid_not_internal(registry, inference_stack):
    from google.protobuf.timestamp_pb2 import Timestamp

    await registry.create_model("times")
    md = registry.md("reader")
    for bad in (Timestamp(seconds=2**40), Timestamp(seconds=-(2**40)), Timestamp(seconds=0, nanos=-1),
                Timestamp(seconds=0, nanos=10**9)):
        for request in (rs.ListAuditEventsRequest(start_time=bad), rs.ListAuditEventsRequest(end_time=bad)):
            await expect_error(registry.stub.ListAuditEvents(request, metadata=md), IA)
        await expect_error(registry.stub.ListParametersVersions(
            rs.ListParametersVersionsRequest(model="times", created_after=bad), metadata=md), IA)
        await expect_error(registry.stub.ResolveAlias(
            rs.ResolveAliasRequest(model="times", alias="production", at=bad), metadata=md),
            (IA, grpc.StatusCode.NOT_FOUND))
    async with inference_stack.inference() as (_server, stub):
        for bad in (Timestamp(seconds=2**40), Timestamp(nanos=-1)):
            await expect_error(stub.ListAlerts(ipb.ListAlertsRequest(start_time=bad),
                                               metadata=inference_stack.md("reader")), IA)
