"""The gateway (services/inference/gateway, Go), the data plane: it answers every Predict, made
to its port or to the service's (which passes it on) alike; every other call reaches the service
unchanged; callers' tokens are checked; it is restarted when it dies. Predict behaviour (outputs,
switching, drift, Triton killed) is tested through both ports in
test_inference_{predict,switching,drift,recovery}.py.
"""

from __future__ import annotations

import asyncio
import os
import signal

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from google.rpc import error_details_pb2, status_pb2
from tritonclient.grpc import service_pb2, service_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

import beamops
from beamops.common.v1 import auth_pb2
from beamops.inference.v1 import deployment_pb2 as dpb, inference_service_pb2 as pb
from beamops.inference.v1 import inference_service_pb2_grpc
from beamops.tensors import from_tensor, to_tensor
from tests.fixtures.gateway import settled
from tests.fixtures.inference import N_FEATURES, mlp_onnx
from tests.fixtures.registry import assert_clear

pytestmark = pytest.mark.usefixtures("gateway_binary")


def _x(rows: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, N_FEATURES)).astype(np.float32)


def _details(err: grpc.aio.AioRpcError) -> dict:
    """The status details a client library sees, request id left out (each call has its own)."""
    raw = dict(err.trailing_metadata() or ()).get("grpc-status-details-bin")
    status = status_pb2.Status.FromString(raw)
    out = {"code": status.code, "message": status.message}
    for item in status.details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest,
                     error_details_pb2.RequestInfo):
            if item.Is(kind.DESCRIPTOR):
                message = kind()
                item.Unpack(message)
                if kind is error_details_pb2.ErrorInfo:
                    out["error_info"] = (message.reason, message.domain, dict(message.metadata))
                elif kind is error_details_pb2.BadRequest:
                    out["bad_request"] = [(v.field, v.description) for v in message.field_violations]
                else:
                    out["has_request_id"] = bool(message.request_id)
    return out


@pytest.fixture
async def deployed(inference_stack):
    """The service with its gateway, "jets" deployed from alias production (max 64 rows);
    yields (stack, server, direct stub, gateway stub)."""
    stack = inference_stack
    await stack.publish("jets", mlp_onnx(seed=3), alias="production")
    async with stack.inference("gateway", max_message_bytes=2 * 1024 * 1024,
                               gateway_auth_cache_s=0.3) as (server, gateway):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            direct = inference_service_pb2_grpc.InferenceServiceStub(channel)
            await direct.Deploy(pb.DeployRequest(model="jets", target=dpb.DeploymentTarget(alias="production")),
                                metadata=stack.md("deployer"))
            # Deploy returns once the gateway has the route: the first call is served.
            await gateway.Predict(pb.PredictRequest(deployment="jets", inputs=[to_tensor("x", _x(1))]),
                                  metadata=stack.md("reader"))
            yield stack, server, direct, gateway


async def test_bad_inputs_get_the_same_status_message_and_details_on_both_ports(deployed):
    stack, server, direct, gateway = deployed
    x = _x(4)
    short = to_tensor("x", x)
    short.raw_data = short.raw_data[:-3]
    negative = to_tensor("x", x)
    del negative.shape[:]
    negative.shape.extend([-4, N_FEATURES])
    untyped = to_tensor("x", x)
    untyped.dtype = 0
    one_d = to_tensor("x", x.reshape(-1))
    cases = {
        "dtype": dict(inputs=[to_tensor("x", x.astype(np.float64))]),
        "shape": dict(inputs=[to_tensor("x", _x(4)[:, :5])]),
        "bytes": dict(inputs=[short]),
        "negative dimension": dict(inputs=[negative]),
        "no dtype": dict(inputs=[untyped]),
        "rank": dict(inputs=[one_d]),
        "unknown input": dict(inputs=[to_tensor("y", x)]),
        "missing input": dict(inputs=[]),
        "twice": dict(inputs=[to_tensor("x", x), to_tensor("x", x)]),
        "unknown output": dict(inputs=[to_tensor("x", x)], output_names=["label", "nope"]),
        "no rows": dict(inputs=[to_tensor("x", _x(0))]),
        "too many rows": dict(inputs=[to_tensor("x", _x(65))]),
    }
    for case, fields in cases.items():
        answers = []
        for stub in (direct, gateway):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Predict(pb.PredictRequest(deployment="jets", **fields), metadata=stack.md("reader"))
            assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT)
            answers.append(_details(err.value))
        assert answers[0] == answers[1], case
        assert answers[1]["has_request_id"] and answers[1]["error_info"][0] == "INVALID_ARGUMENT", case

    with pytest.raises(grpc.aio.AioRpcError) as err:  # over max_message_bytes: refused on arrival
        await gateway.Predict(pb.PredictRequest(deployment="jets", inputs=[to_tensor("x", _x(100000))]),
                              metadata=stack.md("reader"))
    assert_clear(err.value, grpc.StatusCode.RESOURCE_EXHAUSTED)

    # The gateway's refusals are counted where the service counts its own.
    errors = await settled(lambda: server.metrics.get_sample_value(
        "beamops_inference_errors_total", {"deployment": "jets", "code": "INVALID_ARGUMENT"}),
        lambda n: (n or 0) >= 2 * len(cases))
    assert errors >= 2 * len(cases)


async def test_a_caller_without_a_valid_token_is_refused_before_its_request_is_read(deployed):
    """Requests over max_message_bytes (2 MiB here): a received one would be RESOURCE_EXHAUSTED,
    so UNAUTHENTICATED shows the caller was refused from its metadata alone, on every front."""
    stack, server, direct, gateway = deployed
    big = pb.PredictRequest(deployment="jets", inputs=[to_tensor("x", _x(100000))])  # 3.2 MB
    infer = service_pb2.ModelInferRequest(model_name="jets", raw_input_contents=[b"\0" * (3 << 20)])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.gateway_port}",
                                         options=[("grpc.max_send_message_length", 8 << 20)]) as channel:
        oip = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        front = inference_service_pb2_grpc.InferenceServiceStub(channel)
        for metadata in ((), (("authorization", "Bearer not-a-token"),)):
            for method, request in ((front.Predict, big), (direct.Predict, big), (oip.ModelInfer, infer)):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await method(request, metadata=metadata)
                assert_clear(err.value, grpc.StatusCode.UNAUTHENTICATED)


async def test_every_selector_is_answered_by_the_data_plane_and_other_calls_are_forwarded(deployed):
    stack, server, direct, gateway = deployed
    request = pb.PredictRequest(deployment="jets", inputs=[to_tensor("x", _x(8))], output_names=["label"])
    mine = await gateway.Predict(request, metadata=stack.md("reader"))
    theirs = await direct.Predict(request, metadata=stack.md("reader"))
    assert mine == theirs  # same tensors (bytes, shapes), deployment and parameters version

    # Every model selector is answered by the data plane: those the route table decides (the
    # version a deployment serves, the alias it follows) and those the control plane resolves
    # (a choice among versions); no Predict reaches the service's own servicer.
    def service_predicts() -> float:
        return server.metrics.get_sample_value(
            "beamops_rpc_calls_total", {"service": "inference", "method": "Predict", "code": "OK"}) or 0

    async def by(selector: dpb.ModelSelector) -> pb.PredictResponse:
        return await gateway.Predict(pb.PredictRequest(model=selector, inputs=[to_tensor("x", _x(8))],
                                                       output_names=["label"]), metadata=stack.md("reader"))

    before = service_predicts()
    version = dpb.ModelSelector(model="jets", parameters_version=theirs.parameters.version)
    for selector in (dpb.ModelSelector(model="jets", alias="production"), version,
                     dpb.ModelSelector(model="jets")):
        assert await by(selector) == theirs
    assert service_predicts() == before
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await gateway.Predict(pb.PredictRequest(deployment="nope", inputs=[to_tensor("x", _x(1))]),
                              metadata=stack.md("reader"))
    assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "'nope'")

    listed = await gateway.ListDeployments(pb.ListDeploymentsRequest(), metadata=stack.md("reader"))
    assert [d.name for d in listed.deployments] == ["jets"]
    with pytest.raises(grpc.aio.AioRpcError) as err:  # roles are the service's to check
        await gateway.Undeploy(pb.UndeployRequest(name="jets"), metadata=stack.md("reader"))
    assert_clear(err.value, grpc.StatusCode.PERMISSION_DENIED, "deployer")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.gateway_port}") as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING

    # A request id chosen by the caller comes back, on success and failure alike.
    call = gateway.Predict(request, metadata=(*stack.md("reader"), ("x-request-id", "shift-42.run-7")))
    await call
    assert dict(await call.trailing_metadata())["x-request-id"] == "shift-42.run-7"

    # Served by the gateway: counted in the service's metrics, latency included.
    count = await settled(lambda: server.metrics.get_sample_value(
        "beamops_inference_latency_seconds_count", {"deployment": "jets"}), lambda n: (n or 0) >= 5)
    assert count >= 5


async def test_several_deployments_following_an_alias_the_first_by_name_answers_on_both_fronts(deployed):
    stack, _server, direct, gateway = deployed
    await direct.Deploy(pb.DeployRequest(model="jets", name="a-jets", target=dpb.DeploymentTarget(alias="production")),
                        metadata=stack.md("deployer"))
    request = pb.PredictRequest(model=dpb.ModelSelector(model="jets", alias="production"),
                                inputs=[to_tensor("x", _x(2))])
    for _ in range(100):  # until the gateway's route table has the new deployment
        if (await gateway.Predict(request, metadata=stack.md("reader"))).deployment == "a-jets":
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the gateway kept answering from 'jets'")
    assert (await direct.Predict(request, metadata=stack.md("reader"))).deployment == "a-jets"


async def test_the_sdk_predicts_by_model_version_and_alias(deployed):
    stack, server, _direct, _gateway = deployed
    x = _x(4)
    client = beamops.Client(stack.tokens.reader, inference_address=f"127.0.0.1:{server.gateway_port}")
    try:
        by_name = await asyncio.to_thread(client.inference.predict, "jets", {"x": x})
        by_alias = await asyncio.to_thread(client.inference.predict_model, "jets", {"x": x}, alias="production")
        by_version = await asyncio.to_thread(client.inference.predict_model, "jets", {"x": x},
                                             version=by_name.version, outputs=["label"])
        with pytest.raises(ValueError, match="at most one"):
            client.inference.predict_model("jets", {"x": x}, version="1.0", alias="production")
        with pytest.raises(beamops.errors.NotFoundError):
            await asyncio.to_thread(client.inference.predict_model, "jets", {"x": x}, version="9.9")
    finally:
        client.close()
    assert by_alias.deployment == by_version.deployment == "jets" and by_alias.version == by_name.version
    assert np.array_equal(by_alias.outputs["probabilities"], by_name.outputs["probabilities"])
    assert list(by_version.outputs) == ["label"]
    assert by_version.outputs["label"].tolist() == by_name.outputs["label"].tolist()


async def test_callers_tokens_are_checked_and_a_revoked_token_stops_working(deployed):
    stack, server, _direct, gateway = deployed
    request = pb.PredictRequest(deployment="jets", inputs=[to_tensor("x", _x(1))])
    for metadata, words in (((), ["token"]),
                            ((("authorization", "Bearer bmo_not-a-real-token"),), ["unknown"]),
                            ((("authorization", "Basic abc"),), ["Bearer"])):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await gateway.Predict(request, metadata=metadata)
        assert_clear(err.value, grpc.StatusCode.UNAUTHENTICATED, *words)

    token = stack.tokens.store.create("night-shift", auth_pb2.ROLE_READER)
    md = (("authorization", f"Bearer {token}"),)
    await gateway.Predict(request, metadata=md)
    stack.tokens.store.revoke("night-shift")

    async def refused() -> grpc.aio.AioRpcError | None:
        try:
            await gateway.Predict(request, metadata=md)
        except grpc.aio.AioRpcError as exc:
            return exc
        return None

    for _ in range(100):  # the gateway may reuse an answer for gateway_auth_cache_s (0.3 s here)
        err = await refused()
        if err is not None:
            break
        await asyncio.sleep(0.1)
    assert err is not None, "a revoked token kept working through the gateway"
    assert_clear(err, grpc.StatusCode.UNAUTHENTICATED, "revoked")


async def test_a_revoked_token_ends_open_streams_on_both_ports(deployed):
    """An idle PredictStream whose token is revoked ends by itself with UNAUTHENTICATED, made to
    the gateway's port or to the service's (which passes it to the gateway)."""
    stack, _server, direct, gateway = deployed
    for i, stub in enumerate((gateway, direct)):
        name = f"stream-shift-{i}"
        md = (("authorization", f"Bearer {stack.tokens.store.create(name, auth_pb2.ROLE_READER)}"),)
        sent: asyncio.Queue = asyncio.Queue()

        async def requests(sent: asyncio.Queue = sent):
            while (item := await sent.get()) is not None:
                yield item

        call = stub.PredictStream(requests(), metadata=md)
        await sent.put(pb.PredictStreamRequest(request_id="r1", deployment="jets", inputs=[to_tensor("x", _x(2))]))
        first = await call.read()
        assert first.request_id == "r1" and first.status.code == 0, first
        stack.tokens.store.revoke(name)
        # Nothing more is sent: the stream must end by itself (bounded, not timed).
        code = await asyncio.wait_for(call.code(), timeout=30)
        assert code == grpc.StatusCode.UNAUTHENTICATED, (code, await call.details())
        assert "revoked" in await call.details()
        await sent.put(None)


async def test_stream_serves_deployments_and_model_selectors(deployed):
    stack, _server, direct, gateway = deployed

    async def requests():
        for i in range(10):
            yield pb.PredictStreamRequest(request_id=f"d{i}", deployment="jets",
                                          inputs=[to_tensor("x", _x(2, seed=i))])
            yield pb.PredictStreamRequest(request_id=f"m{i}", model=dpb.ModelSelector(model="jets"),
                                          inputs=[to_tensor("x", _x(2, seed=i))])
        yield pb.PredictStreamRequest(deployment="jets", inputs=[to_tensor("x", _x(2))])  # no id
        yield pb.PredictStreamRequest(request_id="bad", deployment="jets",
                                      inputs=[to_tensor("x", _x(2).astype(np.float64))])

    answers = [r async for r in gateway.PredictStream(requests(), metadata=stack.md("reader"))]
    by_id = {r.request_id: r for r in answers}
    assert len(answers) == 22
    assert by_id[""].status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "request_id" in by_id[""].status.message
    assert by_id["bad"].status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert '"x"' in by_id["bad"].status.message and "FLOAT64" in by_id["bad"].status.message
    for i in range(10):
        want = await direct.Predict(pb.PredictRequest(deployment="jets", inputs=[to_tensor("x", _x(2, seed=i))]),
                                    metadata=stack.md("reader"))
        for key in (f"d{i}", f"m{i}"):
            got = by_id[key]
            assert got.status.code == 0, got.status.message
            assert list(got.outputs) == list(want.outputs) and got.deployment == "jets"
            assert got.parameters == want.parameters

    anonymous = gateway.PredictStream()  # the stream needs a token too: refused when it opens
    assert await anonymous.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "token" in await anonymous.details()


async def test_a_killed_gateway_is_restarted(deployed):
    stack, server, _direct, gateway = deployed
    request = pb.PredictRequest(deployment="jets", inputs=[to_tensor("x", _x(3))])
    pid_file = stack.var_dir / "gateway" / "gateway.pid"
    pid = int(pid_file.read_text())
    os.kill(pid, signal.SIGKILL)
    failed = 0
    for _ in range(300):
        try:
            await gateway.Predict(request, metadata=stack.md("reader"), timeout=5)
            if failed:
                break
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, (exc.code(), exc.details())
            failed += 1
        await asyncio.sleep(0.05)
    assert failed, "the gateway never went away"
    await gateway.Predict(request, metadata=stack.md("reader"))
    restarts = await settled(lambda: server.metrics.get_sample_value(
        "beamops_inference_gateway_restarts_total"), lambda n: (n or 0) >= 1)
    assert restarts >= 1  # counted once the new gateway answers its health check
    assert int(pid_file.read_text()) != pid


async def test_with_tls_configured_the_gateway_serves_mutual_tls_and_nothing_in_plaintext(
        inference_stack, certificates):
    stack = inference_stack
    data = mlp_onnx(seed=3)
    await stack.publish("jets", data, alias="production")
    tls = certificates  # tests/fixtures/tls.py
    async with stack.inference(tls_cert_file=tls.server_cert, tls_key_file=tls.server_key,
                               tls_client_ca_file=tls.ca) as (server, _):
        ca = tls.ca.read_bytes()
        trusted = grpc.ssl_channel_credentials(root_certificates=ca, private_key=tls.client_key.read_bytes(),
                                               certificate_chain=tls.client_cert.read_bytes())
        async with grpc.aio.secure_channel(f"localhost:{server.gateway_port}", trusted) as channel:
            gateway = inference_service_pb2_grpc.InferenceServiceStub(channel)
            await gateway.Deploy(pb.DeployRequest(model="jets", target=dpb.DeploymentTarget(alias="production")),
                                 metadata=stack.md("deployer"))  # forwarded to the service
            x = _x(5)
            request = pb.PredictRequest(deployment="jets", inputs=[to_tensor("x", x)])
            reply = await gateway.Predict(request, metadata=stack.md("reader"))
            want = ort.InferenceSession(data).run(None, {"x": x})[0]
            assert np.allclose(from_tensor(reply.outputs[0]), want, rtol=1e-5, atol=1e-6)

        # No client certificate, or no TLS at all: refused by the transport, on both ports.
        anonymous = grpc.ssl_channel_credentials(root_certificates=ca)
        for port in (server.gateway_port, server.port):
            for channel in (grpc.aio.secure_channel(f"localhost:{port}", anonymous),
                            grpc.aio.insecure_channel(f"127.0.0.1:{port}")):
                async with channel:
                    stub = inference_service_pb2_grpc.InferenceServiceStub(channel)
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await stub.Predict(request, metadata=stack.md("reader"), timeout=5)
                    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, (port, err.value.details())
