"""The Open Inference Protocol (KServe v2, as Triton extends it) on the gateway, called by the
stock clients the field uses: tritonclient's gRPC and HTTP clients, plain JSON with requests, and
perf_analyzer (test_inference_oip_load.py). Every answer is checked against ONNX Runtime running
the same model, or against what the registry holds.

The inference service runs in this test's event loop, so the (blocking) stock clients run in
threads.
"""

from __future__ import annotations

import asyncio

import numpy as np
import onnxruntime as ort
import pytest
import grpc
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from beamops.common.v1 import auth_pb2
from beamops.inference.v1 import deployment_pb2 as dpb, inference_service_pb2 as pb
from beamops.registry.v1 import iov_pb2, registry_service_pb2 as rs
from beamops.tensors import to_tensor
from tests.fixtures.inference import N_FEATURES, mlp_onnx, sha256

pytestmark = pytest.mark.usefixtures("gateway_binary")

MODELS = {"1.0": mlp_onnx(seed=3), "1.1": mlp_onnx(seed=4)}


def _x(rows: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, N_FEATURES)).astype(np.float32)


def _expected(version: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(MODELS[version], providers=["CPUExecutionProvider"])
    probabilities, label = session.run(["probabilities", "label"], {"x": x})
    return probabilities, label


def integer(version: str) -> str:
    major, minor = version.split(".")
    return str(int(major) * 1_000_000 + int(minor))


@pytest.fixture
async def served(inference_stack):
    """Versions 1.0 (alias production) and 1.1 of "jets"; deployment "jets" follows production,
    "jets-next" serves 1.1. A run tag says 1.0 up to run 499, 1.1 from run 500, in global tag
    GT-1. Yields (stack, server, grpc address, http address, reader token)."""
    stack = inference_stack
    await stack.publish("jets", MODELS["1.0"], alias="production")
    await stack.publish("jets", MODELS["1.1"])
    dep = stack.md("deployer")
    reg = stack.registry.stub
    await reg.CreateIovTag(rs.CreateIovTagRequest(name="jets-calib", model="jets", kind=iov_pb2.IOV_KIND_RUN),
                           metadata=dep)
    for since, version in ((1, "1.0"), (500, "1.1")):
        await reg.AppendIov(rs.AppendIovRequest(tag="jets-calib", since=since, version=version), metadata=dep)
    await reg.CreateGlobalTag(rs.CreateGlobalTagRequest(name="GT-1", tags=["jets-calib"]), metadata=dep)
    # Answers of token checks may be reused for an hour: only a pushed revocation ends them.
    async with stack.inference("gateway", gateway_auth_cache_s=3600) as (server, gateway):
        await gateway.Deploy(pb.DeployRequest(model="jets", target=dpb.DeploymentTarget(alias="production")),
                             metadata=dep)
        await gateway.Deploy(pb.DeployRequest(model="jets", name="jets-next",
                                              target=dpb.DeploymentTarget(parameters_version="1.1")), metadata=dep)
        # Both are served once the gateway's route table has them.
        for name in ("jets", "jets-next"):
            await gateway.Predict(pb.PredictRequest(deployment=name, inputs=[to_tensor("x", _x(1))]),
                                  metadata=stack.md("reader"))
        yield (stack, server, server.gateway_address, server.gateway.http_address,
               stack.tokens.reader)


def _grpc_infer(address: str, token: str, model: str, x: np.ndarray, version: str = "",
                parameters: dict | None = None, request_id: str = ""):
    client = grpcclient.InferenceServerClient(address)
    try:
        inp = grpcclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        outputs = [grpcclient.InferRequestedOutput("probabilities"), grpcclient.InferRequestedOutput("label")]
        return client.infer(model, [inp], model_version=version, outputs=outputs, request_id=request_id,
                            parameters=parameters, headers={"authorization": f"Bearer {token}"})
    finally:
        client.close()


async def test_tritonclient_grpc_reads_health_metadata_config_and_index(served):
    _, _, address, _, token = served
    headers = {"authorization": f"Bearer {token}"}

    def calls():
        client = grpcclient.InferenceServerClient(address)
        try:
            return (client.is_server_live(), client.is_server_ready(),
                    client.get_server_metadata(headers=headers, as_json=True),
                    client.is_model_ready("jets", headers=headers),
                    client.is_model_ready("nope", headers=headers),
                    client.get_model_metadata("jets", headers=headers, as_json=True),
                    client.get_model_config("jets", headers=headers, as_json=True)["config"],
                    client.get_model_repository_index(headers=headers, as_json=True))
        finally:
            client.close()

    live, ready, server_md, jets_ready, nope_ready, meta, config, index = await asyncio.to_thread(calls)
    assert (live, ready, jets_ready, nope_ready) == (True, True, True, False)
    assert server_md["name"] == "beamops" and "statistics" in server_md["extensions"]
    assert meta["versions"] == [integer("1.0")] and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": ["-1", str(N_FEATURES)]}]
    assert [(o["name"], o["datatype"], o["shape"]) for o in meta["outputs"]] == [
        ("probabilities", "FP32", ["-1", "3"]), ("label", "INT64", ["-1"])]
    # SONIC reads max_batch_size and the tensors of the config, named as in the metadata.
    assert config["max_batch_size"] == 64 and "dynamic_batching" in config
    assert [(i["name"], i["data_type"], i["dims"]) for i in config["input"]] == [("x", "TYPE_FP32", [str(N_FEATURES)])]
    assert config["parameters"]["beamops_parameters_version"]["string_value"] == "1.0"
    assert config["parameters"]["beamops_artifact_sha256"]["string_value"] == sha256(MODELS["1.0"])
    assert {(m["name"], m["version"], m["state"]) for m in index["models"]} == {
        ("jets", integer("1.0"), "READY"), ("jets-next", integer("1.1"), "READY")}


@pytest.mark.parametrize("rows", [1, 8, 64])
async def test_tritonclient_grpc_infer_equals_onnx_runtime(served, rows):
    _, _, address, _, token = served
    x = _x(rows, seed=rows)
    result = await asyncio.to_thread(_grpc_infer, address, token, "jets", x, request_id=f"req-{rows}")
    probabilities, label = _expected("1.0", x)
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result.as_numpy("label"), label)
    response = result.get_response(as_json=True)
    assert response["id"] == f"req-{rows}" and response["model_version"] == "1.0"
    assert response["parameters"]["beamops_deployment"]["string_param"] == "jets"


@pytest.mark.parametrize("model, version, answers", [
    ("jets", "", "1.0"),                       # a deployment: the version it serves
    ("jets", "1.1", "1.1"),                    # a model's version: the deployment serving it
    ("jets", integer("1.1"), "1.1"),           # the same version in its integer form
    ("jets", "production", "1.0"),             # an alias the deployment follows
    ("jets-next", "", "1.1"),
])
async def test_model_version_names_a_parameters_version_or_an_alias(served, model, version, answers):
    _, _, address, _, token = served
    x = _x(3)
    result = await asyncio.to_thread(_grpc_infer, address, token, model, x, version)
    assert result.get_response().model_version == answers
    np.testing.assert_allclose(result.as_numpy("probabilities"), _expected(answers, x)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("run, answers", [(42, "1.0"), (499, "1.0"), (500, "1.1"), (10_000, "1.1")])
async def test_a_run_and_global_tag_pick_the_version_by_interval_of_validity(served, run, answers):
    _, _, address, _, token = served
    x = _x(2)
    result = await asyncio.to_thread(_grpc_infer, address, token, "jets", x, "",
                                     {"global_tag": "GT-1", "run": run})
    assert result.get_response().model_version == answers
    np.testing.assert_allclose(result.as_numpy("probabilities"), _expected(answers, x)[0], rtol=1e-5, atol=1e-6)


async def test_grpc_errors_are_clear_and_carry_the_right_code(served):
    _, _, address, _, token = served
    x = _x(2)
    cases = [
        (dict(token="wrong"), "StatusCode.UNAUTHENTICATED", "token"),
        (dict(model="nope"), "StatusCode.NOT_FOUND", "nope"),
        (dict(version="7.3"), "StatusCode.NOT_FOUND", "7.3"),
        (dict(x=_x(2)[:, :4].copy()), "StatusCode.INVALID_ARGUMENT", "x"),
        (dict(x=_x(65)), "StatusCode.INVALID_ARGUMENT", "64"),
        (dict(parameters={"globaltag": "GT-1"}), "StatusCode.INVALID_ARGUMENT", "globaltag"),
        (dict(parameters={"global_tag": "GT-1"}), "StatusCode.INVALID_ARGUMENT", "run"),
    ]
    for change, code, words in cases:
        args = dict(token=token, model="jets", x=x, version="", parameters=None) | change
        with pytest.raises(InferenceServerException) as err:
            await asyncio.to_thread(_grpc_infer, address, args["token"], args["model"], args["x"],
                                    args["version"], args["parameters"])
        assert err.value.status() == code, (change, err.value)
        assert words in err.value.message(), (change, err.value.message())
        assert "Traceback" not in err.value.message() and "/work" not in err.value.message()


async def test_metadata_needs_credentials_unless_opened(served):
    _, _, address, _, _ = served

    def anonymous():
        client = grpcclient.InferenceServerClient(address)
        try:
            assert client.is_server_live()  # health is open
            with pytest.raises(InferenceServerException) as err:
                client.get_model_metadata("jets")
            return err.value.status()
        finally:
            client.close()

    assert await asyncio.to_thread(anonymous) == "StatusCode.UNAUTHENTICATED"


async def test_statistics_count_every_request_under_an_integer_version(served):
    _, _, address, _, token = served
    for rows in (1, 5):
        await asyncio.to_thread(_grpc_infer, address, token, "jets-next", _x(rows))

    def stats():
        client = grpcclient.InferenceServerClient(address)
        try:
            return client.get_inference_statistics("jets-next", headers={"authorization": f"Bearer {token}"},
                                                    as_json=True)["model_stats"]
        finally:
            client.close()

    (entry,) = await asyncio.to_thread(stats)
    assert (entry["name"], entry["version"]) == ("jets-next", integer("1.1"))
    assert int(entry["inference_stats"]["success"]["count"]) >= 2  # and the warm-up Predict
    assert int(entry["inference_count"]) >= 6


async def test_stream_infer_answers_every_request_with_its_id(served):
    _, _, address, _, token = served
    xs = [_x(rows, seed=rows) for rows in (1, 2, 3, 4)]

    def stream():
        answers, done = [], __import__("threading").Event()
        client = grpcclient.InferenceServerClient(address)

        def callback(result, error):
            answers.append((result, error))
            if len(answers) == len(xs) + 1:
                done.set()

        try:
            client.start_stream(callback, headers={"authorization": f"Bearer {token}"})
            for i, x in enumerate(xs):
                inp = grpcclient.InferInput("x", list(x.shape), "FP32")
                inp.set_data_from_numpy(x)
                client.async_stream_infer("jets", [inp], request_id=str(i))
            client.async_stream_infer("nope", [inp], request_id="bad")
            done.wait(30)
            client.stop_stream()
        finally:
            client.close()
        return answers

    answers = await asyncio.to_thread(stream)
    ok = {r.get_response().id: r for r, e in answers if e is None}
    errors = [e for r, e in answers if e is not None]
    assert sorted(ok) == ["0", "1", "2", "3"] and len(errors) == 1 and "nope" in errors[0].message()
    for i, x in enumerate(xs):
        np.testing.assert_allclose(ok[str(i)].as_numpy("probabilities"), _expected("1.0", x)[0], rtol=1e-5, atol=1e-6)


async def test_a_revoked_token_is_refused_on_every_front_although_answers_are_cached(served):
    stack, _, address, http_address, _ = served
    token = stack.tokens.store.create("night-shift", auth_pb2.ROLE_READER)
    x = _x(1)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, N_FEATURES], "data": x.tolist()}]}

    def fronts() -> dict[str, bool]:
        """Which front admits the token now."""
        try:
            _grpc_infer(address, token, "jets", x)
            grpc_ok = True
        except InferenceServerException as exc:
            assert exc.status() == "StatusCode.UNAUTHENTICATED" and "revoked" in exc.message(), exc
            grpc_ok = False
        got = requests.post(f"http://{http_address}/v2/models/jets/infer", json=body, timeout=30,
                            headers={"Authorization": f"Bearer {token}"})
        assert got.status_code in (200, 401), got.text
        return {"grpc": grpc_ok, "rest": got.status_code == 200}

    assert await asyncio.to_thread(fronts) == {"grpc": True, "rest": True}  # now cached for an hour
    stack.tokens.store.revoke("night-shift")
    for _ in range(200):
        admitted = await asyncio.to_thread(fronts)
        if not any(admitted.values()):
            break
        await asyncio.sleep(0.05)
    assert admitted == {"grpc": False, "rest": False}, "a revoked token kept working from the cache"


async def test_a_revoked_token_ends_an_open_model_stream(served):
    """ModelStreamInfer, idle after its first answer, ends by itself with UNAUTHENTICATED once its
    token is revoked."""
    stack, _, address, _, _ = served
    token = stack.tokens.store.create("stream-shift", auth_pb2.ROLE_READER)
    sent: asyncio.Queue = asyncio.Queue()

    async def queued():
        while (item := await sent.get()) is not None:
            yield item

    x = _x(1)
    async with grpc.aio.insecure_channel(address) as channel:
        call = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer(
            queued(), metadata=(("authorization", f"Bearer {token}"),))
        await sent.put(service_pb2.ModelInferRequest(
            model_name="jets", id="s1", raw_input_contents=[x.tobytes()],
            inputs=[service_pb2.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=list(x.shape))]))
        first = await call.read()
        assert first.error_message == "" and first.infer_response.id == "s1", first
        stack.tokens.store.revoke("stream-shift")
        code = await asyncio.wait_for(call.code(), timeout=30)  # nothing more is sent
        assert code == grpc.StatusCode.UNAUTHENTICATED and "revoked" in await call.details()
        await sent.put(None)


# ---- REST --------------------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("rows", [1, 8, 64])
async def test_tritonclient_http_infer_equals_onnx_runtime(served, rows, binary):
    _, _, _, http_address, token = served
    x = _x(rows, seed=rows + 100)

    def call():
        client = httpclient.InferenceServerClient(http_address)
        try:
            inp = httpclient.InferInput("x", list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=binary)
            outputs = [httpclient.InferRequestedOutput("probabilities", binary_data=binary),
                       httpclient.InferRequestedOutput("label", binary_data=binary)]
            return client.infer("jets", [inp], outputs=outputs, request_id="r1",
                                headers={"authorization": f"Bearer {token}"})
        finally:
            client.close()

    result = await asyncio.to_thread(call)
    probabilities, label = _expected("1.0", x)
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result.as_numpy("label"), label)
    assert result.get_response()["id"] == "r1" and result.get_response()["model_version"] == "1.0"


async def test_tritonclient_http_reads_health_metadata_config_index_and_stats(served):
    _, _, _, http_address, token = served
    headers = {"authorization": f"Bearer {token}"}

    def calls():
        client = httpclient.InferenceServerClient(http_address)
        try:
            return (client.is_server_live(), client.is_server_ready(), client.get_server_metadata(headers=headers),
                    client.is_model_ready("jets-next", headers=headers),
                    client.get_model_metadata("jets-next", headers=headers),
                    client.get_model_config("jets-next", headers=headers),
                    client.get_model_repository_index(headers=headers),
                    client.get_inference_statistics("jets", headers=headers))
        finally:
            client.close()

    live, ready, server_md, model_ready, meta, config, index, stats = await asyncio.to_thread(calls)
    assert (live, ready, model_ready) == (True, True, True)
    assert server_md["name"] == "beamops" and "binary_tensor_data" in server_md["extensions"]
    assert meta["versions"] == [integer("1.1")] and meta["inputs"][0]["shape"] == [-1, N_FEATURES]
    assert config["max_batch_size"] == 64 and config["input"][0]["dims"] == [N_FEATURES]
    assert {m["name"] for m in index} == {"jets", "jets-next"}
    assert stats["model_stats"][0]["version"] == integer("1.0")


async def test_plain_json_with_requests_and_errors_as_the_spec_maps_them(served):
    _, _, _, http_address, token = served
    x = _x(2)
    url = f"http://{http_address}/v2/models/jets/infer"
    body = {"id": "j1", "inputs": [{"name": "x", "datatype": "FP32", "shape": [2, N_FEATURES],
                                    "data": x.tolist()}]}
    auth = {"Authorization": f"Bearer {token}"}

    def post(**kw):
        return requests.post(kw.pop("url", url), timeout=30, **kw)

    ok = await asyncio.to_thread(post, json=body, headers=auth)
    assert ok.status_code == 200, ok.text
    answer = ok.json()
    assert answer["id"] == "j1" and answer["model_name"] == "jets"
    outputs = {o["name"]: o for o in answer["outputs"]}
    probabilities, label = _expected("1.0", x)
    np.testing.assert_allclose(np.array(outputs["probabilities"]["data"]).reshape(2, 3), probabilities, rtol=1e-5)
    assert outputs["label"]["data"] == label.tolist()

    bad_shape = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    for kw, status in [(dict(json=body), 401), (dict(json=body, headers={"Authorization": "Bearer wrong"}), 401),
                       (dict(json=body, headers=auth, url=url.replace("/jets/", "/nope/")), 404),
                       (dict(json=bad_shape, headers=auth), 400),
                       (dict(data=b"{not json", headers=auth), 400)]:
        got = await asyncio.to_thread(post, **kw)
        assert got.status_code == status, (kw, got.status_code, got.text)
        assert set(got.json()) == {"error"} and got.json()["error"], got.text


async def test_stock_clients_load_and_unload_registry_versions_as_a_deployer(served):
    """RepositoryModelLoad/Unload deploy and undeploy registry versions (tritonclient's
    load_model and unload_model, gRPC and HTTP), for the deployer role only, audited."""
    stack, _, address, http_address, reader = served
    muons = {"1.0": mlp_onnx(seed=11), "1.1": mlp_onnx(seed=12)}
    await stack.publish("muons", muons["1.0"], alias="production")
    await stack.publish("muons", muons["1.1"])
    deployer = {"authorization": f"Bearer {stack.tokens.deployer}"}
    x = _x(3)

    def answer(version: str) -> np.ndarray:
        return ort.InferenceSession(muons[version], providers=["CPUExecutionProvider"]).run(
            ["probabilities"], {"x": x})[0]

    def served_by(client) -> tuple[np.ndarray, str]:
        inp = grpcclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        result = client.infer("muons", [inp], headers={"authorization": f"Bearer {reader}"})
        return result.as_numpy("probabilities"), result.get_response().model_version

    def grpc_calls():
        client = grpcclient.InferenceServerClient(address)
        try:
            with pytest.raises(InferenceServerException) as refused:
                client.load_model("muons", headers={"authorization": f"Bearer {reader}"})
            assert not client.is_model_ready("muons", headers=deployer)
            client.load_model("muons", headers=deployer)  # no version: the production alias
            first = served_by(client)
            config = '{"version_policy": {"specific": {"versions": [1000001]}}}'  # version 1.1
            client.load_model("muons", headers=deployer, config=config)
            second = served_by(client)
            with pytest.raises(InferenceServerException) as bad_config:
                client.load_model("muons", headers=deployer, config='{"max_batch_size": 8}')
            client.unload_model("muons", headers=deployer)
            return refused.value, first, second, bad_config.value, client.is_model_ready("muons", headers=deployer)
        finally:
            client.close()

    refused, first, second, bad_config, ready_after = await asyncio.to_thread(grpc_calls)
    assert refused.status() == "StatusCode.PERMISSION_DENIED" and "deployer" in refused.message()
    np.testing.assert_allclose(first[0], answer("1.0"), rtol=1e-6)
    assert first[1] == "1.0"
    np.testing.assert_allclose(second[0], answer("1.1"), rtol=1e-6)
    assert second[1] == "1.1"
    assert bad_config.status() == "StatusCode.INVALID_ARGUMENT" and "version_policy" in bad_config.message()
    assert not ready_after

    def http_calls():
        client = httpclient.InferenceServerClient(http_address)
        try:
            client.load_model("muons", headers=deployer)
            ready = client.is_model_ready("muons", headers=deployer)
            client.unload_model("muons", headers=deployer)
            return ready, client.is_model_ready("muons", headers=deployer)
        finally:
            client.close()

    assert await asyncio.to_thread(http_calls) == (True, False)

    events = (await stack.registry.stub.ListAuditEvents(
        rs.ListAuditEventsRequest(model="muons", action="deployment."), metadata=stack.md("reader"))).events
    actions = [(e.action, e.reason) for e in events]
    assert actions.count(("deployment.deploy", "RepositoryModelLoad (Triton's protocol)")) == 2, actions
    assert ("deployment.replace", "RepositoryModelLoad (Triton's protocol)") in actions, actions
    assert actions.count(("deployment.undeploy", "RepositoryModelUnload (Triton's protocol)")) == 2, actions
