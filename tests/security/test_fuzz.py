"""Property-based fuzzing of every service's RPCs (hypothesis): requests built from the proto
descriptors (random Unicode and odd strings, names that exist, random numbers at the edges of
their types, repeated fields, maps, unknown enum values, nested messages) sent to the real
servers. Merely invalid input never gives INTERNAL or UNKNOWN, every error message is clean,
and the server is healthy afterwards. ``Watch*`` streams (which wait for events by design) are
left out; everything else is drawn from.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings, strategies as st

from beamops.common.v1 import auth_pb2, lineage_pb2, tensor_pb2
from beamops.data.server import create_server as create_data
from beamops.data.settings import DataSettings
from beamops.data.v1 import data_service_pb2 as dpb, data_service_pb2_grpc, dataset_pb2
from beamops.inference.server import create_server as create_inference
from beamops.inference.settings import InferenceSettings
from beamops.inference.v1 import deployment_pb2 as deppb, inference_service_pb2 as ipb, inference_service_pb2_grpc
from beamops.registry.server import create_server as create_registry
from beamops.registry.settings import RegistrySettings
from beamops.registry.v1 import registry_service_pb2 as rs, registry_service_pb2_grpc
from beamops.training.server import create_server as create_training
from beamops.training.settings import TrainingSettings
from tests.fixtures.inference import MLP_SIGNATURE, N_FEATURES, mlp_onnx
from tests.fixtures.registry import make_onnx, signature
from tests.fixtures.services import running
from tests.protos import services
from tests.real_data import REAL_DATA

from .fuzzing import BackgroundLoop, call_method, check_status, messages, strings_in

FUZZ = settings(max_examples=int(__import__("os").environ.get("BEAMOPS_FUZZ_EXAMPLES", "100")), deadline=None,
                database=None, derandomize=True, suppress_health_check=list(HealthCheck))


def service(name: str):
    return next(s for s in services() if s.name == name)


def fuzz(bg: BackgroundLoop, channel, service_name: str, tokens: list[str], md, overrides=None,
         plain: set[str] = frozenset()) -> dict[str, int]:
    """Run the examples; returns how many calls each status code got (to show the spread)."""
    methods = [m for m in service(service_name).methods if not m.name.startswith("Watch")]
    strategies = {m.name: messages(m.input_type, () if m.name in plain else tokens, overrides=overrides)
                  for m in methods}
    seen: dict[str, int] = {}

    @FUZZ
    @given(st.data())
    def examples(data):
        method = data.draw(st.sampled_from(methods), label="method")
        count = data.draw(st.integers(1, 3), label="messages") if method.client_streaming else 1
        requests = [data.draw(strategies[method.name], label="request") for _ in range(count)]
        result = bg.run(call_method(channel, method, requests, md))
        code = result if isinstance(result, grpc.StatusCode) else result.code()
        seen[code.name] = seen.get(code.name, 0) + 1
        if not isinstance(result, grpc.StatusCode):
            check_status(result, [s for r in requests for s in strings_in(r)])

    examples()
    return seen


def healthy(bg: BackgroundLoop, channel) -> bool:
    reply = bg.run(lambda: health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10))
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def test_registry_fuzz(tmp_path, tokens):
    bg = BackgroundLoop()
    try:
        cfg = RegistrySettings(port=0, var_dir=tmp_path / "registry", tokens_file=tokens.path, log_json=False)
        _server, channel = bg.enter(running(create_registry, cfg))
        stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        md = tokens.metadata("admin")
        bg.run(lambda: stub.CreateModel(rs.CreateModelRequest(name="m"), metadata=md))
        bg.run(lambda: stub.CreateModelType(
            rs.CreateModelTypeRequest(model="m", version="1.0.0", signature=signature()), metadata=md))
        data = make_onnx()
        import hashlib

        async def upload():
            header = rs.UploadArtifactRequest.Header(model="m", format=1, filename="m.onnx",
                                                     sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))

            async def parts():
                yield rs.UploadArtifactRequest(header=header)
                yield rs.UploadArtifactRequest(chunk=data)

            return (await stub.UploadArtifact(parts(), metadata=md)).artifact

        art = bg.run(upload())
        bg.run(lambda: stub.CreateParametersVersion(rs.CreateParametersVersionRequest(
            model="m", model_type_version="1.0.0", primary_artifact_id=art.artifact_id), metadata=md))
        bg.run(lambda: stub.SetAlias(rs.SetAliasRequest(model="m", alias="production", version="1.0"), metadata=md))
        bg.run(lambda: stub.CreateIovTag(rs.CreateIovTagRequest(name="t", model="m", kind=1), metadata=md))
        seen = fuzz(bg, channel, "RegistryService",
                    ["m", "1.0.0", "1.0", "production", art.artifact_id, "t", "model.create", art.sha256], md)
        assert len(seen) >= 2, seen  # the examples reached more than one outcome
        assert healthy(bg, channel)
        assert bg.run(lambda: stub.GetModel(rs.GetModelRequest(name="m"), metadata=md)).model.name == "m"
    finally:
        bg.close()


def _data_root(tmp_path: Path) -> Path:
    root = tmp_path / "roots"
    root.mkdir()
    for name in ("uproot-HZZ.root", "uproot-Zmumu.root"):
        shutil.copyfile(REAL_DATA / name, root / name)
    return root


def _start_data(bg: BackgroundLoop, tmp_path: Path, tokens, **settings):
    """A data service in ``bg`` reading the two real files; its channel and stub."""
    cfg = DataSettings(port=0, var_dir=tmp_path / "data", tokens_file=tokens.path,
                       data_roots=[_data_root(tmp_path)], log_json=False, **settings)
    _server, channel = bg.enter(running(create_data, cfg))
    return channel, data_service_pb2_grpc.DataServiceStub(channel)


def _register(bg: BackgroundLoop, stub, md, dataset: str, url: str):
    return bg.run(lambda: stub.RegisterDatasetVersion(dpb.RegisterDatasetVersionRequest(
        dataset=dataset, source=dataset_pb2.DatasetSource(urls=[url], tree_name="events")), metadata=md)).version


def test_data_fuzz(tmp_path, tokens):
    bg = BackgroundLoop()
    try:
        channel, stub = _start_data(bg, tmp_path, tokens, default_batch_size=1000, remote_timeout_s=2)
        md = tokens.metadata("admin")
        v = _register(bg, stub, md, "d", "uproot-Zmumu.root")
        split = bg.run(lambda: stub.DeriveDatasetVersion(dpb.DeriveDatasetVersionRequest(
            parent=lineage_pb2.DatasetVersionRef(dataset="d", version_id=v.version_id),
            split=dataset_pb2.SplitDerivation(train_fraction=0.5, validation_fraction=0.25, test_fraction=0.25,
                                              seed=1)), metadata=md)).version
        seen = fuzz(bg, channel, "DataService",
                    ["d", v.version_id, split.version_id, v.content_hash, "uproot-Zmumu.root", "uproot-HZZ.root",
                     "events", "M", "E1", "px1", "M > 80", "train", "test", "*.root", "Type"], md)
        assert len(seen) >= 2, seen
        assert healthy(bg, channel)
        got = bg.run(lambda: stub.GetDatasetVersion(dpb.GetDatasetVersionRequest(dataset="d", version_id=v.version_id),
                                            metadata=md))
        assert got.version.entry_count == v.entry_count
    finally:
        bg.close()


# Cuts by cost and depth: numbers at and past every bound (whole numbers near 2**63, huge
# exponents), branches flat and jagged (HZZ's Muon_Px), every operator and function, nesting up
# to far past the depth limit (unary minus chains, parentheses, calls inside calls).
_BRANCHES = ["NMuon", "NJet", "MET_px", "Muon_Px", "Jet_E", "`NMuon`", "nosuchbranch"]
_NUMBERS = st.one_of(
    st.integers(-10, 10), st.sampled_from([2**31, 2**62, 2**63 - 1, 2**63, 2**64, 10**19, 10**400]),
    st.floats(allow_nan=False, width=64), st.sampled_from(["1e308", "1e-320", "0.0", "True", "False"]))
_BINARY = ["+", "-", "*", "/", "//", "%", "**", "<", "<=", ">", ">=", "==", "!=", "&", "|", " and ", " or "]
_CALLS = ["abs", "sqrt", "exp", "log", "log10", "sin", "any", "all", "sum", "count", "min", "max", "open", "eval"]


def _cut_parts() -> st.SearchStrategy:
    leaf = st.one_of(st.sampled_from(_BRANCHES), _NUMBERS.map(str))

    def grow(inner):
        return st.one_of(
            st.tuples(inner, st.sampled_from(_BINARY), inner).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
            st.tuples(st.sampled_from(["-", "~", "not ", "+"]), inner).map(lambda t: f"{t[0]}{t[1]}"),
            st.tuples(st.sampled_from(_CALLS), inner).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(inner, st.integers(-100, 10**7)).map(lambda t: f"{t[0]}**{t[1]}"),
            st.tuples(inner, inner, inner).map(lambda t: f"where({t[0]}, {t[1]}, {t[2]})"),
        )

    return st.recursive(leaf, grow, max_leaves=40)


def _cuts() -> st.SearchStrategy:
    deep = st.tuples(st.sampled_from(["-", "~", "not ", "(", "abs(", "sqrt("]), st.integers(1, 3000)).map(
        lambda t: t[0] * t[1] + "NMuon" + (")" * t[1] if "(" in t[0] else "") + " > 1")
    towers = st.lists(st.integers(2, 10**6).map(str), min_size=2, max_size=6).map(lambda n: "NMuon > " + "**".join(n))
    chains = st.integers(1, 1000).map(lambda n: "0 < NMuon" + " < 9" * n)
    return st.one_of(_cut_parts(), deep, towers, chains, _cut_parts().map(lambda c: f"{c} > 0"))


def test_data_cut_fuzz(tmp_path, tokens):
    """Whatever the cut, ReadDatasetVersion answers OK or INVALID_ARGUMENT (never INTERNAL, never a
    hang past the deadline) with a clean message, and the service stays healthy."""
    bg = BackgroundLoop()
    try:
        channel, stub = _start_data(bg, tmp_path, tokens)
        md = tokens.metadata("publisher")
        v = _register(bg, stub, md, "hzz", "uproot-HZZ.root")
        ref = lineage_pb2.DatasetVersionRef(dataset="hzz", version_id=v.version_id)
        seen: dict[str, int] = {}

        async def read(cut: str):
            call = stub.ReadDatasetVersion(dpb.ReadDatasetVersionRequest(version=ref, branches=["NMuon"], cut=cut),
                                           metadata=md, timeout=30)
            try:
                return sum([m.num_rows async for m in call])
            except grpc.aio.AioRpcError as err:
                return err

        @FUZZ
        @given(_cuts())
        def examples(cut):
            result = bg.run(read(cut))
            code = result.code() if isinstance(result, grpc.aio.AioRpcError) else grpc.StatusCode.OK
            seen[code.name] = seen.get(code.name, 0) + 1
            assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), (cut[:200], result)
            if code != grpc.StatusCode.OK:
                check_status(result, [cut])

        examples()
        assert set(seen) == {"OK", "INVALID_ARGUMENT"}, seen  # the examples reached both outcomes
        assert healthy(bg, channel)
    finally:
        bg.close()


def test_training_fuzz(tmp_path, tokens):
    bg = BackgroundLoop()
    try:
        data_cfg = DataSettings(port=0, var_dir=tmp_path / "data", tokens_file=tokens.path,
                                data_roots=[_data_root(tmp_path)], log_json=False)
        reg_cfg = RegistrySettings(port=0, var_dir=tmp_path / "registry", tokens_file=tokens.path, log_json=False)
        data_server, data_channel = bg.enter(running(create_data, data_cfg))
        reg_server, _ = bg.enter(running(create_registry, reg_cfg))
        train_cfg = TrainingSettings(port=0, var_dir=tmp_path / "training", tokens_file=tokens.path, log_json=False,
                                     data_address=f"127.0.0.1:{data_server.port}",
                                     registry_address=f"127.0.0.1:{reg_server.port}", cancel_grace_s=1.0)
        _server, channel = bg.enter(running(create_training, train_cfg))
        md = tokens.metadata("admin")
        dstub = data_service_pb2_grpc.DataServiceStub(data_channel)
        v = bg.run(lambda: dstub.RegisterDatasetVersion(dpb.RegisterDatasetVersionRequest(
            dataset="z", source=dataset_pb2.DatasetSource(urls=["uproot-Zmumu.root"], tree_name="events")),
            metadata=md)).version
        split = bg.run(lambda: dstub.DeriveDatasetVersion(dpb.DeriveDatasetVersionRequest(
            parent=lineage_pb2.DatasetVersionRef(dataset="z", version_id=v.version_id),
            split=dataset_pb2.SplitDerivation(train_fraction=0.6, validation_fraction=0.2, test_fraction=0.2, seed=1)),
            metadata=md)).version
        seen = fuzz(bg, channel, "TrainingService",
                    ["z", split.version_id, "E1", "px1", "M", "rmse", "r2", "train", "validation", "test", "1.0.0",
                     "zm", "max_iter", "learning_rate", "beamops.training.examples.logistic:LogisticModel"], md)
        assert len(seen) >= 2, seen
        assert healthy(bg, channel)
    finally:
        bg.close()


def _tensors() -> st.SearchStrategy:
    """Near-valid tensors (the deployed input 'x', float32, [n, 6]) with one thing off, and random ones."""
    def build(rows, cols, extra, name, dtype, shape_noise):
        shape = [rows, cols] + ([shape_noise] if shape_noise is not None else [])
        raw = np.zeros((max(rows, 0) % 70, max(cols, 0) % 12), np.float32).tobytes() + b"\0" * extra
        return tensor_pb2.Tensor(name=name, dtype=dtype, shape=shape, raw_data=raw)

    near = st.builds(build, st.one_of(st.integers(-3, 70), st.sampled_from([2**31, 2**62, -(2**63)])),
                     st.one_of(st.just(N_FEATURES), st.integers(-2, 12)), st.integers(-0, 5),
                     st.sampled_from(["x", "y", "", "x\x00"]),
                     st.sampled_from([tensor_pb2.DATA_TYPE_FLOAT32, tensor_pb2.DATA_TYPE_FLOAT64,
                                      tensor_pb2.DATA_TYPE_BYTES, 0, 77]),
                     st.one_of(st.none(), st.integers(-1, 3)))
    rand = messages(tensor_pb2.Tensor.DESCRIPTOR, ["x"])
    return st.one_of(near, rand)


def test_inference_fuzz(tmp_path, tokens, triton_venv):
    bg = BackgroundLoop()
    try:
        reg_cfg = RegistrySettings(port=0, var_dir=tmp_path / "registry", tokens_file=tokens.path, log_json=False)
        reg_server, reg_channel = bg.enter(running(create_registry, reg_cfg))
        service_token = tokens.store.create("inference-fuzz", auth_pb2.ROLE_PUBLISHER)
        inf_cfg = InferenceSettings(port=0, var_dir=tmp_path / "inference", tokens_file=tokens.path,
                                    registry_address=f"127.0.0.1:{reg_server.port}", registry_token=service_token,
                                    triton_venv=triton_venv, log_json=False, alias_poll_interval_s=0.5,
                                    max_message_bytes=1024 * 1024)
        _server, channel = bg.enter(running(create_inference, inf_cfg))
        md = tokens.metadata("admin")
        reg = registry_service_pb2_grpc.RegistryServiceStub(reg_channel)
        data = mlp_onnx()
        import hashlib

        async def publish():
            await reg.CreateModel(rs.CreateModelRequest(name="fuzzmodel"), metadata=md)
            await reg.CreateModelType(rs.CreateModelTypeRequest(model="fuzzmodel", version="1.0.0",
                                                                signature=MLP_SIGNATURE), metadata=md)
            header = rs.UploadArtifactRequest.Header(model="fuzzmodel", format=1, filename="m.onnx",
                                                     sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))

            async def parts():
                yield rs.UploadArtifactRequest(header=header)
                yield rs.UploadArtifactRequest(chunk=data)

            art = (await reg.UploadArtifact(parts(), metadata=md)).artifact
            await reg.CreateParametersVersion(rs.CreateParametersVersionRequest(
                model="fuzzmodel", model_type_version="1.0.0", primary_artifact_id=art.artifact_id), metadata=md)

        bg.run(publish())
        stub = inference_service_pb2_grpc.InferenceServiceStub(channel)
        bg.run(lambda: stub.Deploy(ipb.DeployRequest(model="fuzzmodel", name="d", target=deppb.DeploymentTarget(
            parameters_version="1.0")), metadata=md))
        seen = fuzz(bg, channel, "InferenceService", ["d", "x", "probabilities", "label", "1.0", "production"], md,
                    overrides={"beamops.common.v1.Tensor": _tensors()},
                    plain={"Deploy", "Undeploy", "Rollback"})  # random names only: keep deployment "d"
        assert len(seen) >= 2, seen
        assert healthy(bg, channel)
        good = bg.run(lambda: stub.Predict(ipb.PredictRequest(deployment="d", inputs=[tensor_pb2.Tensor(
            name="x", dtype=tensor_pb2.DATA_TYPE_FLOAT32, shape=[1, N_FEATURES],
            raw_data=np.zeros((1, N_FEATURES), np.float32).tobytes())]), metadata=md))
        assert {t.name for t in good.outputs} == {"probabilities", "label"}
    finally:
        bg.close()
