"""Deploy by alias onto the bundled Triton; Predict and PredictStream answer like ONNX Runtime;
bad inputs are refused before Triton with the tensor named. Each test runs against the service
and through its gateway (``via``)."""

from __future__ import annotations

import grpc
import numpy as np
import onnxruntime as ort
import pytest

from beamops.common.v1 import tensor_pb2
from beamops.inference.v1 import deployment_pb2 as dpb, inference_service_pb2 as pb
from beamops.tensors import from_tensor, to_tensor
from tests.fixtures.gateway import settled
from tests.fixtures.inference import N_FEATURES, mlp_onnx
from tests.fixtures.registry import assert_clear


def _x(rows: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, N_FEATURES)).astype(np.float32)


async def _deploy_alias(stub, stack, model="jets", alias="production", name=""):
    req = pb.DeployRequest(model=model, name=name, target=dpb.DeploymentTarget(alias=alias),
                           reason="first deployment")
    return (await stub.Deploy(req, metadata=stack.md("deployer"))).deployment


async def test_deploy_by_alias_and_predict_like_onnxruntime(inference_stack, via):
    stack = inference_stack
    data = mlp_onnx(seed=3)
    params = await stack.publish("jets", data, alias="production")
    async with stack.inference(via, max_message_bytes=2 * 1024 * 1024) as (server, stub):
        dep = await _deploy_alias(stub, stack)
        assert dep.state == dpb.DEPLOYMENT_STATE_READY
        assert dep.parameters.version == params.version and dep.following_alias
        assert dep.artifact_sha256 == params.primary_artifact.sha256
        assert dep.created_by == "deployer-user"

        x = _x(32)
        reply = await stub.Predict(pb.PredictRequest(deployment="jets", inputs=[to_tensor("x", x)]),
                                   metadata=stack.md("reader"))
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        probabilities, label = session.run(None, {"x": x})
        out = {t.name: from_tensor(t) for t in reply.outputs}
        assert np.allclose(out["probabilities"], probabilities, rtol=1e-5, atol=1e-6)
        assert out["label"].shape == (32,) and out["label"].tolist() == label.tolist()
        assert reply.deployment == "jets"
        assert (reply.parameters.model, reply.parameters.version) == ("jets", params.version)

        # By model and alias, one output only.
        reply = await stub.Predict(pb.PredictRequest(
            model=dpb.ModelSelector(model="jets", alias="production"), inputs=[to_tensor("x", x[:1])],
            output_names=["label"]), metadata=stack.md("reader"))
        assert [t.name for t in reply.outputs] == ["label"]

        # Streaming: every request answered with its id, one bad request does not end the stream.
        async def requests():
            for i in range(20):
                yield pb.PredictStreamRequest(request_id=f"r{i}", deployment="jets",
                                              inputs=[to_tensor("x", _x(2, seed=i))])
            yield pb.PredictStreamRequest(request_id="bad", deployment="jets",
                                          inputs=[to_tensor("x", _x(2).astype(np.float64))])

        answers = {r.request_id: r async for r in stub.PredictStream(requests(), metadata=stack.md("reader"))}
        assert len(answers) == 21
        assert answers["bad"].status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert '"x"' in answers["bad"].status.message
        for i in range(20):
            got = {t.name: from_tensor(t) for t in answers[f"r{i}"].outputs}
            assert answers[f"r{i}"].status.code == 0
            assert np.allclose(got["probabilities"], session.run(None, {"x": _x(2, seed=i)})[0],
                               rtol=1e-5, atol=1e-6)

        metrics = await settled(lambda: server.metrics.get_sample_value(
            "beamops_inference_requests_total", {"deployment": "jets", "version": params.version}),
            lambda n: (n or 0) >= 22)
        assert metrics >= 22

        # ---- bad input, refused before Triton ----
        async def refused(tensors, *words, code=grpc.StatusCode.INVALID_ARGUMENT, **kw):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Predict(pb.PredictRequest(deployment="jets", inputs=tensors, **kw),
                                   metadata=stack.md("reader"))
            assert_clear(err.value, code, *words)

        await refused([to_tensor("x", x.astype(np.float64))], '"x"', "FLOAT64", "FLOAT32")
        await refused([to_tensor("x", _x(4)[:, :5])], '"x"', "shape")
        short = to_tensor("x", x)
        short.raw_data = short.raw_data[:-3]
        await refused([short], '"x"', "bytes")
        await refused([to_tensor("y", x)], '"y"')
        await refused([], '"x"', "missing")
        await refused([to_tensor("x", x), to_tensor("x", x)], '"x"', "twice")
        await refused([to_tensor("x", x)], '"nope"', output_names=["nope"])
        await refused([to_tensor("x", _x(65))], '"x"', "max_batch_size")
        await refused([to_tensor("x", _x(100000))], code=grpc.StatusCode.RESOURCE_EXHAUSTED)
        # A 1,000-dimension shape: a short message that fits the trailers, not RESOURCE_EXHAUSTED.
        deep = tensor_pb2.Tensor(name="x", dtype=tensor_pb2.DATA_TYPE_FLOAT32, shape=[1] * 1000, raw_data=bytes(4))
        await refused([deep], '"x"', "(1000 dimensions)")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Predict(pb.PredictRequest(deployment="nope", inputs=[to_tensor("x", x)]),
                               metadata=stack.md("reader"))
        assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "'nope'")
        errors = await settled(lambda: server.metrics.get_sample_value(
            "beamops_inference_errors_total", {"deployment": "jets", "code": "INVALID_ARGUMENT"}),
            lambda n: (n or 0) >= 8)
        assert errors >= 8


async def test_deploy_errors_and_listing(inference_stack, via):
    stack = inference_stack
    params = await stack.publish("jets", mlp_onnx(), alias="staging")
    async with stack.inference(via) as (server, stub):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Deploy(pb.DeployRequest(model="jets", target=dpb.DeploymentTarget(alias="staging")),
                              metadata=stack.md("reader"))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Deploy(pb.DeployRequest(model="jets", target=dpb.DeploymentTarget(alias="nope")),
                              metadata=stack.md("deployer"))
        assert_clear(err.value, grpc.StatusCode.NOT_FOUND)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Deploy(pb.DeployRequest(model="jets", name="Bad Name!",
                                               target=dpb.DeploymentTarget(alias="staging")),
                              metadata=stack.md("deployer"))
        assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "Bad Name!")

        dep = (await stub.Deploy(pb.DeployRequest(
            model="jets", name="jets-fixed", target=dpb.DeploymentTarget(parameters_version=params.version)),
            metadata=stack.md("deployer"))).deployment
        assert dep.state == dpb.DEPLOYMENT_STATE_READY and not dep.following_alias
        assert dep.serving.max_batch_size == 0 and dep.signature.inputs[0].name == "x"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Deploy(pb.DeployRequest(model="jets", name="jets-fixed",
                                               target=dpb.DeploymentTarget(alias="staging")),
                              metadata=stack.md("deployer"))
        assert_clear(err.value, grpc.StatusCode.ALREADY_EXISTS, "jets-fixed")

        listed = (await stub.ListDeployments(pb.ListDeploymentsRequest(model="jets"),
                                             metadata=stack.md("reader"))).deployments
        assert [d.name for d in listed] == ["jets-fixed"]

        audit = await stack.registry.stub.ListAuditEvents(
            __import__("beamops.registry.v1.registry_service_pb2", fromlist=["x"]).ListAuditEventsRequest(
                model="jets", action="deployment."), metadata=stack.md("reader"))
        assert [(e.action, e.actor) for e in audit.events] == [("deployment.deploy", "deployer-user")]

        gone = (await stub.Undeploy(pb.UndeployRequest(name="jets-fixed", reason="done"),
                                    metadata=stack.md("deployer"))).deployment
        assert gone.name == "jets-fixed"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetDeployment(pb.GetDeploymentRequest(name="jets-fixed"), metadata=stack.md("reader"))
        assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "jets-fixed")


async def test_tampered_artifact_is_data_loss_and_nothing_is_served(inference_stack):
    stack = inference_stack
    await stack.publish("jets", mlp_onnx(), alias="production")
    for blob in stack.registry.blob_files():
        blob.write_bytes(blob.read_bytes()[:-8] + b"tampered")
    async with stack.inference() as (_, stub):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Deploy(pb.DeployRequest(model="jets", target=dpb.DeploymentTarget(alias="production")),
                              metadata=stack.md("deployer"))
        assert_clear(err.value, grpc.StatusCode.DATA_LOSS)
        dep = (await stub.GetDeployment(pb.GetDeploymentRequest(name="jets"),
                                        metadata=stack.md("reader"))).deployment
        assert dep.state == dpb.DEPLOYMENT_STATE_FAILED and not dep.parameters.version
        assert not any((stack.var_dir / "triton-models").iterdir())


async def test_a_model_with_capitals_deploys_under_its_own_name(inference_stack, via):
    """Names are case-sensitive and kept as typed: model "JetTagger" deploys as "JetTagger", and
    "jettagger" is another deployment with its own Triton folder."""
    stack = inference_stack
    upper, lower = mlp_onnx(seed=5), mlp_onnx(seed=6)
    await stack.publish("JetTagger", upper, alias="production")
    params = await stack.publish("JetTagger", lower)
    async with stack.inference(via) as (_server, stub):
        dep = await _deploy_alias(stub, stack, model="JetTagger")
        assert (dep.name, dep.model, dep.state) == ("JetTagger", "JetTagger", dpb.DEPLOYMENT_STATE_READY)
        other = (await stub.Deploy(pb.DeployRequest(
            model="JetTagger", name="jettagger", target=dpb.DeploymentTarget(parameters_version=params.version)),
            metadata=stack.md("deployer"))).deployment
        assert other.name == "jettagger" and other.state == dpb.DEPLOYMENT_STATE_READY
        listed = (await stub.ListDeployments(pb.ListDeploymentsRequest(model="JetTagger"),
                                             metadata=stack.md("reader"))).deployments
        assert [d.name for d in listed] == ["JetTagger", "jettagger"]
        folders = [p.name for p in (stack.var_dir / "triton-models").iterdir()]
        assert len(folders) == 2 and len({f.lower() for f in folders}) == 2, folders

        x = _x(4)
        for name, data in (("JetTagger", upper), ("jettagger", lower)):
            reply = await stub.Predict(pb.PredictRequest(deployment=name, inputs=[to_tensor("x", x)]),
                                       metadata=stack.md("reader"))
            assert reply.deployment == name
            expected = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
            got = {t.name: from_tensor(t) for t in reply.outputs}["probabilities"]
            assert np.allclose(got, expected, rtol=1e-5, atol=1e-6)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Predict(pb.PredictRequest(deployment="JETTAGGER", inputs=[to_tensor("x", x)]),
                               metadata=stack.md("reader"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
