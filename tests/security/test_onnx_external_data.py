"""Item 11: ONNX models that store tensors as external data are refused, and their locations are
never resolved.

An ONNX tensor may keep its bytes in another file (``data_location = EXTERNAL``, ``location``).
ONNX Runtime resolves the location when it loads the model: against the current directory for a
model given as bytes, so ``beamops.load_model`` returned the client's ``./pyproject.toml`` as a
model output; the registry accepted such uploads. Here: the registry refuses them whatever format
is declared (INVALID_ARGUMENT, nothing stored, the same answer whether the named file exists or
not), and load_model, the training ONNX check and the inference repository refuse such a model
before ONNX Runtime sees it. The files named are canaries that must not be read.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import grpc
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import beamops
from beamops.onnx_export import OnnxPredictor
from beamops.onnx_external import ExternalDataError, external_locations
from beamops.registry.content_checks import could_be_protobuf
from beamops.registry.v1 import model_pb2, registry_service_pb2 as rs
from beamops.runtime.errors import FailedPrecondition

from tests.fixtures.registry import make_onnx

from .assertions import Canary, assert_clean_error

IA = grpc.StatusCode.INVALID_ARGUMENT
F = model_pb2
U8 = TensorProto.UINT8
PLACES = ("initializer", "Constant in a subgraph", "Constant in a function", "sparse initializer")
DECLARED = (F.ARTIFACT_FORMAT_ONNX, F.ARTIFACT_FORMAT_OTHER, F.ARTIFACT_FORMAT_SAFETENSORS)


def external_tensor(name: str, location: str, size: int = 16) -> TensorProto:
    tensor = TensorProto(name=name, data_type=U8, dims=[size], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", "0"), ("length", str(size))):
        tensor.external_data.add(key=key, value=value)
    return tensor


def external_model(location: str, place: str = "initializer") -> bytes:
    """A model whose output ``y`` (uint8 [16]) is a tensor stored as external data at ``location``,
    kept in ``place``. Valid for onnx.checker: before the fix the registry stored it."""
    out = [helper.make_tensor_value_info("y", U8, [16])]
    nodes, initializer, sparse, functions = [], [], [], []
    opsets = [helper.make_opsetid("", 17)]
    if place == "initializer":
        initializer = [external_tensor("W", location)]
        nodes = [helper.make_node("Identity", ["W"], ["y"])]
    elif place == "Constant in a subgraph":
        def branch(name, value):
            return helper.make_graph([helper.make_node("Constant", [], [name], value=value)], name, [],
                                     [helper.make_tensor_value_info(name, U8, [16])])
        inert = numpy_helper.from_array(np.zeros(16, np.uint8), "inert")
        nodes = [helper.make_node("Constant", [], ["cond"], value=numpy_helper.from_array(np.array(True), "c")),
                 helper.make_node("If", ["cond"], ["y"], then_branch=branch("t", external_tensor("t", location)),
                                  else_branch=branch("e", inert))]
    elif place == "Constant in a function":
        functions = [helper.make_function(
            "beamops.test", "Leak", [], ["out"],
            [helper.make_node("Constant", [], ["out"], value=external_tensor("v", location))],
            opset_imports=[helper.make_opsetid("", 17)])]
        nodes = [helper.make_node("Leak", [], ["y"], domain="beamops.test")]
        opsets.append(helper.make_opsetid("beamops.test", 1))
    elif place == "sparse initializer":
        indices = numpy_helper.from_array(np.arange(16, dtype=np.int64), "S_indices")
        sparse = [helper.make_sparse_tensor(external_tensor("S", location), indices, [16])]
        nodes = [helper.make_node("Identity", ["S"], ["y"])]
    graph = helper.make_graph(nodes, "leak", [], out, initializer=initializer, sparse_initializer=sparse)
    model = helper.make_model(graph, opset_imports=opsets, functions=functions)
    model.ir_version = 8
    return model.SerializeToString()


@pytest.fixture
def canary(tmp_path: Path) -> Canary:
    return Canary(tmp_path / "outside" / "canary.bin")


def locations(canary: Canary) -> list[str]:
    """The client's project file, the canary relative to the server's working directory and
    absolute, a system file, and ONNX Runtime's in-memory address form."""
    return ["pyproject.toml", os.path.relpath(canary.path), str(canary.path), "../../../../../../etc/passwd",
            "*/_ORT_MEM_ADDR_/*"]


def test_every_place_a_tensor_can_live_is_seen():
    for place in PLACES:
        model = onnx.ModelProto.FromString(external_model("weights.bin", place))
        assert external_locations(model) == ["weights.bin"], place
    assert external_locations(onnx.ModelProto.FromString(make_onnx())) == []


async def test_the_registry_refuses_external_data_and_stores_nothing(registry, canary):
    await registry.create_model("leaky")
    for location in locations(canary):
        for place in PLACES:
            for fmt in DECLARED:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await registry.upload("leaky", external_model(location, place), fmt=fmt, filename="model.onnx")
                message = assert_clean_error(err.value, IA, "model.onnx", "external data", "self-contained",
                                             "save_as_external_data=False", echo=[location, "model.onnx"])
                assert repr(location[:80])[1:-1] in message, (location, place, message)
    assert registry.blob_files() == []
    audit = await registry.stub.ListAuditEvents(rs.ListAuditEventsRequest(action="artifact."),
                                                metadata=registry.md("reader"))
    assert list(audit.events) == []
    canary.assert_untouched()


async def test_the_answer_does_not_depend_on_whether_the_file_exists(registry, canary):
    """No file-existence oracle: an existing and a missing location get the same answer."""
    await registry.create_model("oracle")
    answers = []
    assert Path("pyproject.toml").is_file()  # in the server's working directory
    pairs = [("pyproject.toml", "no-such-project.toml"),
             (str(canary.path), str(canary.path.with_name("missing.bin")))]
    for existing, missing in pairs:
        for location in (existing, missing):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await registry.upload("oracle", external_model(location), filename="model.onnx")
            answers.append((err.value.code(), err.value.details().replace(location[:80], "<location>")))
        assert answers[-2] == answers[-1], (existing, missing)
    canary.assert_untouched()


async def test_self_contained_onnx_is_still_accepted_whatever_is_declared(registry):
    await registry.create_model("inert-onnx")
    for fmt in DECLARED:
        artifact = await registry.upload("inert-onnx", make_onnx(), fmt=fmt)
        assert artifact.size_bytes == len(make_onnx())


def test_the_sniff_skips_what_cannot_be_protobuf(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model/data/0", b"\0" * 64)
    cases = {"zip": (buffer.getvalue(), False), "safetensors": ((8).to_bytes(8, "little") + b'{"a":1} ', False),
             "onnx": (make_onnx(), True), "external": (external_model("w.bin"), True)}
    for label, (data, expected) in cases.items():
        path = tmp_path / label
        path.write_bytes(data)
        assert could_be_protobuf(path) is expected, label


# ------------------------------------------------------------ loaders: SDK, training, inference

class _Registry:
    """A registry stub serving one artifact as-is (one stored before uploads were checked, or a
    registry that is not ours)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.artifact = F.Artifact(artifact_id="art-1", sha256=hashlib.sha256(data).hexdigest())

    def _params(self):
        return F.ParametersVersion(version="1.0", primary_artifact=self.artifact)

    def GetParametersVersion(self, request, timeout=None):  # noqa: N802 - the RPC's name
        return rs.GetParametersVersionResponse(parameters=self._params())

    def ResolveAlias(self, request, timeout=None):  # noqa: N802
        return rs.ResolveAliasResponse(parameters=self._params())

    def DownloadArtifact(self, request, timeout=None):  # noqa: N802
        yield rs.DownloadArtifactResponse(artifact=self.artifact)
        yield rs.DownloadArtifactResponse(chunk=self.data)


class _Client:
    def __init__(self, data: bytes) -> None:
        self.registry = _Registry(data)

    def stub(self, name: str):
        assert name == "registry"
        return self.registry


def test_load_model_refuses_external_data_instead_of_reading_the_clients_files(tmp_path, monkeypatch):
    """The client's working directory holds a project file (a canary named pyproject.toml):
    ONNX Runtime would resolve "pyproject.toml" against it and return its bytes as ``y``."""
    client_dir = tmp_path / "client"
    project = Canary(client_dir / "pyproject.toml")
    elsewhere = Canary(tmp_path / "elsewhere" / "secret.txt")
    monkeypatch.chdir(client_dir)
    for location in ("pyproject.toml", os.path.relpath(elsewhere.path), str(elsewhere.path)):
        for place in PLACES:
            client = _Client(external_model(location, place))
            with pytest.raises(beamops.InvalidArgumentError) as err:
                beamops.load_model("leaky", "production", client, cache_dir=tmp_path / "cache")
            message = str(err.value)
            assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert "leaky 1.0 stores weights as external data" in message and "self-contained" in message
            project.assert_untouched(message)
            elsewhere.assert_untouched(message)
    # a self-contained model still loads and runs
    model = beamops.load_model("fine", "1.0", _Client(make_onnx()), cache_dir=tmp_path / "cache")
    assert model.predict(x=np.ones((2, 4), np.float32))["y"].tolist() == [[4.0], [4.0]]


def test_the_training_onnx_check_and_the_inference_repository_refuse_it(tmp_path, monkeypatch):
    from beamops.inference.triton.repository import ModelRepository

    project = Canary(tmp_path / "pyproject.toml")
    monkeypatch.chdir(tmp_path)
    data = external_model("pyproject.toml")
    with pytest.raises(ExternalDataError, match="external data"):
        OnnxPredictor(data)
    repository = ModelRepository(tmp_path / "models", "python")
    with pytest.raises(FailedPrecondition, match="external data"):
        repository.write("leaky__1_0", data, "name: \"leaky__1_0\"\n")
    assert list((tmp_path / "models").iterdir()) == []
    project.assert_untouched()
