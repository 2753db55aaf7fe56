"""Artifact upload and download through gRPC: sha256 both ways, limits, truncation, pickles."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import zipfile

import grpc
import pytest

from beamops.registry.v1 import model_pb2, registry_service_pb2 as rs
from tests.fixtures.registry import assert_clear, make_onnx, make_torchscript


async def _no_artifact_stored(registry) -> None:
    assert registry.blob_files() == []
    events = await registry.stub.ListAuditEvents(rs.ListAuditEventsRequest(action="artifact."),
                                                 metadata=registry.md("reader"))
    assert list(events.events) == []


async def test_upload_download_roundtrip(registry):
    await registry.create_model("m")
    data = make_onnx(4)
    art = await registry.upload("m", data, chunk=97)
    assert (art.sha256, art.size_bytes, art.filename) == (hashlib.sha256(data).hexdigest(), len(data), "model.onnx")
    assert [t.name for t in art.signature.outputs] == ["y"]
    meta, back = await registry.download(art.artifact_id)
    assert back == data and meta.sha256 == art.sha256
    big = os.urandom(300_000)
    other = await registry.upload("m", big, fmt=model_pb2.ARTIFACT_FORMAT_SAFETENSORS, chunk=65536)
    assert (await registry.download(other.artifact_id))[1] == big
    got = await registry.stub.GetArtifact(rs.GetArtifactRequest(artifact_id=other.artifact_id),
                                          metadata=registry.md("reader"))
    assert got.artifact.format == model_pb2.ARTIFACT_FORMAT_SAFETENSORS


async def test_checksum_mismatch_is_data_loss_and_stores_nothing(registry):
    await registry.create_model("m")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.upload("m", make_onnx(4), sha256="0" * 64)
    assert_clear(err.value, grpc.StatusCode.DATA_LOSS, "checksum mismatch", "nothing was stored")
    await _no_artifact_stored(registry)


async def test_truncated_upload_is_data_loss(registry):
    await registry.create_model("m")
    data = make_onnx(4)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.upload("m", data[:50], sha256="", size=len(data))
    assert_clear(err.value, grpc.StatusCode.DATA_LOSS, "truncated", str(len(data)))
    await _no_artifact_stored(registry)


async def test_oversized_upload_is_resource_exhausted(start_registry):
    async with start_registry(max_artifact_bytes=10_000) as registry:
        await registry.create_model("m")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await registry.upload("m", os.urandom(20_000), fmt=model_pb2.ARTIFACT_FORMAT_OTHER, size=0, sha256="")
        assert_clear(err.value, grpc.StatusCode.RESOURCE_EXHAUSTED, "10000")
        with pytest.raises(grpc.aio.AioRpcError) as err:  # declared too big: refused at the header
            await registry.upload("m", b"x", fmt=model_pb2.ARTIFACT_FORMAT_OTHER, size=50_000, sha256="")
        assert_clear(err.value, grpc.StatusCode.RESOURCE_EXHAUSTED, "limit")
        await _no_artifact_stored(registry)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
async def test_pickles_are_refused_whatever_the_format(registry, protocol):
    await registry.create_model("m")
    payload = pickle.dumps({"weights": [1.0, 2.0]}, protocol=protocol)
    for fmt in (model_pb2.ARTIFACT_FORMAT_OTHER, model_pb2.ARTIFACT_FORMAT_SAFETENSORS):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await registry.upload("m", payload, fmt=fmt, filename="model.bin")
        assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "pickle")
    await _no_artifact_stored(registry)


async def test_zip_with_pickles_is_refused(registry):
    await registry.create_model("m")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # what torch.save writes
        archive.writestr("archive/data.pkl", pickle.dumps([1, 2, 3]))
        archive.writestr("archive/version", "3")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.upload("m", buffer.getvalue(), fmt=model_pb2.ARTIFACT_FORMAT_TORCHSCRIPT, filename="m.pt")
    assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "data.pkl")
    await _no_artifact_stored(registry)


async def test_invalid_onnx_and_missing_format(registry):
    await registry.create_model("m")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.upload("m", b"this is not onnx at all")
    assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "ONNX")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.upload("m", b"{}", fmt=model_pb2.ARTIFACT_FORMAT_UNSPECIFIED)
    assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "format")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.upload("nope", b"{}", fmt=model_pb2.ARTIFACT_FORMAT_OTHER)
    assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "nope")
    await _no_artifact_stored(registry)


async def test_corrupted_blob_is_data_loss_on_download(registry):
    await registry.create_model("m")
    art = await registry.upload("m", b'{"a": 1}', fmt=model_pb2.ARTIFACT_FORMAT_OTHER, filename="a.json")
    [blob] = [p for p in registry.blob_files() if p.name == art.sha256]
    blob.chmod(0o644)
    blob.write_bytes(b'{"a": 2}')
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.download(art.artifact_id)
    assert_clear(err.value, grpc.StatusCode.DATA_LOSS, "corrupt")


async def test_orphans_are_cleaned_at_start(start_registry):
    async with start_registry() as registry:
        await registry.create_model("m")
        art = await registry.upload("m", b"keep me", fmt=model_pb2.ARTIFACT_FORMAT_OTHER)
        root = registry.settings.resolved_artifacts_dir
    (root / "tmp" / "upload-crashed").write_bytes(b"half")
    orphan = root / "blobs" / "ab" / "cd" / ("abcd" + "0" * 60)
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"nobody")
    async with start_registry() as registry:
        assert [p.name for p in registry.blob_files()] == [art.sha256]
        assert (await registry.download(art.artifact_id))[1] == b"keep me"


async def test_torchscript_archives_are_stored_opaque_when_declared(registry):
    await registry.create_model("m")
    await registry.create_type("m", "1.0.0")
    data = make_torchscript()
    art = await registry.upload("m", data, fmt=model_pb2.ARTIFACT_FORMAT_TORCHSCRIPT, filename="net.pt")
    assert (art.format, art.size_bytes, art.HasField("signature")) == (
        model_pb2.ARTIFACT_FORMAT_TORCHSCRIPT, len(data), False)
    meta, back = await registry.download(art.artifact_id)
    assert (meta.sha256, back) == (hashlib.sha256(data).hexdigest(), data)
    params = await registry.create_params("m", "1.0.0", derived_artifact_ids=[art.artifact_id])
    assert [a.artifact_id for a in params.derived_artifacts] == [art.artifact_id]


@pytest.mark.parametrize("fmt", [model_pb2.ARTIFACT_FORMAT_OTHER, model_pb2.ARTIFACT_FORMAT_HLS4ML_ARCHIVE,
                                 model_pb2.ARTIFACT_FORMAT_SAFETENSORS])
async def test_torchscript_declared_as_anything_else_is_refused(registry, fmt):
    await registry.create_model("m")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.upload("m", make_torchscript(), fmt=fmt, filename="net.pt")
    assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "pickle", "data.pkl")
    await _no_artifact_stored(registry)


async def test_declared_torchscript_must_have_the_layout_and_no_other_pickle(registry):
    import joblib
    import numpy as np

    await registry.create_model("m")
    ts = model_pb2.ARTIFACT_FORMAT_TORCHSCRIPT
    cases = {
        "extra pickle": (make_torchscript(extra={"model/extra/state.pkl": pickle.dumps({"a": 1})}),
                         "model/extra/state.pkl"),
        "raw pickle": (pickle.dumps({"w": [1.0]}, protocol=4), "pickle"),
        "not a zip": (b"TorchScript? no, just bytes", "torch.jit.save"),
    }
    checkpoint = io.BytesIO()  # what torch.save writes: data.pkl but no code/ nor constants.pkl
    with zipfile.ZipFile(checkpoint, "w") as archive:
        archive.writestr("ckpt/data.pkl", pickle.dumps({"w": 1}, protocol=2))
        archive.writestr("ckpt/version", "3")
        archive.writestr("ckpt/data/0", b"\0" * 16)
    cases["torch.save checkpoint"] = (checkpoint.getvalue(), "torch.jit.save")
    for compress in (0, 3, ("gzip", 3), ("xz", 3)):
        buffer = io.BytesIO()
        joblib.dump({"w": np.ones(3)}, buffer, compress=compress)
        cases[f"joblib {compress}"] = (buffer.getvalue(), "pickle")
    for name, (data, word) in cases.items():
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await registry.upload("m", data, fmt=ts, filename="net.pt")
        assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, word)
        if name != "not a zip":  # every case carries a pickle: refused whatever is declared
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await registry.upload("m", data, fmt=model_pb2.ARTIFACT_FORMAT_OTHER, filename="net.bin")
            assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "pickle")
    await _no_artifact_stored(registry)
