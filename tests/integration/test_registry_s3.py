"""The registry with its artifacts in a real S3 server (SeaweedFS, tests/fixtures/s3.py), through gRPC.

This module overrides ``start_registry`` so that every registry it starts keeps its artifacts in
``s3://<fresh bucket>/registry-a/`` with the server's keys in the AWS_* environment variables; the
service tests imported below run again unchanged against that store, and the tests written here
look into the bucket itself with boto3.
"""

from __future__ import annotations

import hashlib
import os

import grpc
import pytest

from beamops.registry.artifacts import S3ArtifactStore
from beamops.registry.s3_location import S3Location
from beamops.registry.server import create_server
from beamops.registry.settings import RegistrySettings
from beamops.registry.v1 import model_pb2, registry_service_pb2 as rs
from beamops.runtime.errors import FailedPrecondition, Unavailable
from tests.fixtures.registry import assert_clear, make_onnx
from tests.fixtures.services import free_port
from tests.service.test_registry_artifacts import (  # noqa: F401 - run again with the S3 store
    test_invalid_onnx_and_missing_format, test_torchscript_archives_are_stored_opaque_when_declared,
    test_upload_download_roundtrip,
)

pytestmark = pytest.mark.integration

PREFIX = "registry-a/"
OTHER = model_pb2.ARTIFACT_FORMAT_OTHER


@pytest.fixture
def start_registry(start_registry, s3_credentials, s3_bucket):
    """The shared ``start_registry`` (tests/fixtures/registry.py), with the artifacts in S3."""
    shared = start_registry

    def start(**overrides):
        overrides.setdefault("artifact_store", f"s3://{s3_bucket}/{PREFIX}")
        overrides.setdefault("s3_endpoint_url", s3_credentials.endpoint_url)
        return shared(**overrides)

    return start


def blob_keys(s3_server, bucket: str) -> list[str]:
    return s3_server.keys(bucket, PREFIX)


def key(sha256: str) -> str:
    return f"{PREFIX}blobs/{sha256}"


def staged_files(registry) -> list:
    """With S3, the local artifacts folder only stages uploads in progress: it must end empty."""
    return registry.blob_files()


async def test_round_trip_stores_one_object_per_content(registry, s3_server, s3_bucket):
    await registry.create_model("m")
    data = make_onnx(4)
    art = await registry.upload("m", data, chunk=97)
    again = await registry.upload("m", data, chunk=4096)  # same bytes: same object, new artifact
    assert art.sha256 == again.sha256 == hashlib.sha256(data).hexdigest()
    assert art.artifact_id != again.artifact_id
    assert blob_keys(s3_server, s3_bucket) == [key(art.sha256)]
    stored = s3_server.client().get_object(Bucket=s3_bucket, Key=key(art.sha256))
    assert stored["Body"].read() == data and stored["Metadata"] == {"sha256": art.sha256}
    meta, back = await registry.download(art.artifact_id)
    assert (back, meta.sha256, meta.size_bytes) == (data, art.sha256, len(data))
    assert staged_files(registry) == []


async def test_a_download_reads_the_object_once(registry, monkeypatch):
    gets = []
    original = S3ArtifactStore._chunks

    def counted(self, sha256, chunk_size):
        gets.append(sha256)
        return original(self, sha256, chunk_size)

    monkeypatch.setattr(S3ArtifactStore, "_chunks", counted)
    await registry.create_model("m")
    data = os.urandom(3 * 1024**2)
    art = await registry.upload("m", data, fmt=OTHER, chunk=1024**2)
    gets.clear()
    assert (await registry.download(art.artifact_id))[1] == data  # checked before the first byte
    assert gets == [art.sha256]  # one GET: verified while copied, then streamed from the copy
    assert staged_files(registry) == []


async def test_large_upload_goes_multipart_and_round_trips(start_registry, s3_server, s3_bucket, monkeypatch):
    monkeypatch.setattr(S3ArtifactStore, "MULTIPART_BYTES", 5 * 1024**2)  # the smallest part S3 allows
    async with start_registry() as registry:
        await registry.create_model("m")
        data = os.urandom(11 * 1024**2 + 123)  # three parts
        art = await registry.upload("m", data, fmt=model_pb2.ARTIFACT_FORMAT_SAFETENSORS, chunk=1024**2,
                                    filename="w.safetensors")
        assert s3_server.client().head_object(Bucket=s3_bucket, Key=key(art.sha256))["ContentLength"] == len(data)
        assert s3_server.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
        assert (await registry.download(art.artifact_id))[1] == data
        assert staged_files(registry) == []


async def test_corrupted_or_missing_object_is_data_loss(registry, s3_server, s3_bucket):
    await registry.create_model("m")
    art = await registry.upload("m", b'{"a": 1}', fmt=OTHER, filename="a.json")
    s3 = s3_server.client()
    s3.put_object(Bucket=s3_bucket, Key=key(art.sha256), Body=b'{"a": 2}')  # same size, other bytes
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.download(art.artifact_id)
    assert_clear(err.value, grpc.StatusCode.DATA_LOSS, "corrupt", art.sha256)
    assert staged_files(registry) == []  # the checked copy of the corrupt object is gone too
    s3.delete_object(Bucket=s3_bucket, Key=key(art.sha256))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.download(art.artifact_id)
    assert_clear(err.value, grpc.StatusCode.DATA_LOSS, "missing", art.sha256)
    for leak in (s3_bucket, "127.0.0.1", s3_server.access_key):
        assert leak not in err.value.details()


async def test_bad_uploads_leave_nothing_in_the_bucket(start_registry, s3_server, s3_bucket):
    async with start_registry(max_artifact_bytes=10_000) as registry:
        await registry.create_model("m")
        data = make_onnx(4)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await registry.upload("m", data[:50], sha256="", size=len(data))
        assert_clear(err.value, grpc.StatusCode.DATA_LOSS, "truncated", str(len(data)))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await registry.upload("m", data, sha256="0" * 64)
        assert_clear(err.value, grpc.StatusCode.DATA_LOSS, "checksum mismatch", "nothing was stored")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await registry.upload("m", os.urandom(20_000), fmt=OTHER, size=0, sha256="")
        assert_clear(err.value, grpc.StatusCode.RESOURCE_EXHAUSTED, "10000")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await registry.upload("m", b"x", fmt=OTHER, size=50_000, sha256="")
        assert_clear(err.value, grpc.StatusCode.RESOURCE_EXHAUSTED, "limit")
        assert s3_server.keys(s3_bucket) == []
        assert s3_server.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
        assert staged_files(registry) == []
        events = await registry.stub.ListAuditEvents(rs.ListAuditEventsRequest(action="artifact."),
                                                     metadata=registry.md("reader"))
        assert list(events.events) == []


async def test_orphans_are_cleaned_at_start(start_registry, s3_server, s3_bucket):
    async with start_registry() as registry:
        await registry.create_model("m")
        art = await registry.upload("m", b"keep me", fmt=OTHER)
        staging = registry.settings.resolved_artifacts_dir / "tmp"
    s3 = s3_server.client()
    orphan = "abcd" + "0" * 60
    s3.put_object(Bucket=s3_bucket, Key=key(orphan), Body=b"nobody")
    unfinished = s3.create_multipart_upload(Bucket=s3_bucket, Key=key("ef" * 32))  # a crash mid-commit
    s3.put_object(Bucket=s3_bucket, Key=f"registry-b/blobs/{orphan}", Body=b"another registry's")
    s3.put_object(Bucket=s3_bucket, Key=f"{PREFIX}blobs/README", Body=b"not a blob")
    (staging / "upload-crashed").write_bytes(b"half")
    async with start_registry() as registry:
        assert s3_server.keys(s3_bucket) == sorted([key(art.sha256), f"{PREFIX}blobs/README",
                                                    f"registry-b/blobs/{orphan}"])
        uploads = s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
        assert unfinished["UploadId"] not in [u["UploadId"] for u in uploads]
        assert staged_files(registry) == []
        assert (await registry.download(art.artifact_id))[1] == b"keep me"


async def test_parameters_version_with_an_s3_stored_onnx_artifact(registry, s3_server, s3_bucket):
    await registry.create_model("m")
    await registry.create_type("m", "1.0.0")
    data = make_onnx(4)
    art = await registry.upload("m", data)
    params = await registry.create_params("m", "1.0.0", primary_artifact_id=art.artifact_id)
    assert (params.version, params.primary_artifact.sha256) == ("1.0", art.sha256)
    got = await registry.stub.GetParametersVersion(rs.GetParametersVersionRequest(model="m", version="1.0"),
                                                   metadata=registry.md("reader"))
    assert got.parameters.primary_artifact.artifact_id == art.artifact_id
    assert [t.name for t in got.parameters.primary_artifact.signature.inputs] == ["x"]
    assert (await registry.download(got.parameters.primary_artifact.artifact_id))[1] == data
    assert blob_keys(s3_server, s3_bucket) == [key(art.sha256)]


async def test_start_fails_clearly_without_the_bucket_or_the_right_keys(tmp_path, tokens, s3_credentials,
                                                                         s3_bucket, monkeypatch):
    def settings(bucket: str) -> RegistrySettings:
        return RegistrySettings(port=0, var_dir=tmp_path / "var", tokens_file=tokens.path,
                                artifact_store=f"s3://{bucket}/x", s3_endpoint_url=s3_credentials.endpoint_url)

    with pytest.raises(FailedPrecondition) as err:
        await create_server(settings("no-such-bucket-here"))
    assert "'no-such-bucket-here' does not exist" in err.value.message
    assert "does not create buckets" in err.value.message
    assert not (tmp_path / "var" / "registry.db").exists()  # refused before touching the database
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + s3_credentials.secret_key)
    with pytest.raises(FailedPrecondition) as err:
        await create_server(settings(s3_bucket))
    assert f"bucket '{s3_bucket}'" in err.value.message and "credentials" in err.value.message
    assert s3_credentials.secret_key not in err.value.message


def test_an_unreachable_object_store_is_unavailable(tmp_path):
    import boto3
    from botocore.config import Config

    client = boto3.session.Session().client(
        "s3", endpoint_url=f"http://127.0.0.1:{free_port()}", region_name="us-east-1", aws_access_key_id="k",
        aws_secret_access_key="s", config=Config(retries={"max_attempts": 1}, connect_timeout=2))
    store = S3ArtifactStore("some-bucket", tmp_path / "staging", client=client)
    for call in (lambda: store.exists("0" * 64), lambda: list(store.read("0" * 64)), store.check_bucket):
        with pytest.raises(Unavailable) as err:
            call()
        assert "could not be reached" in err.value.message
        assert "127.0.0.1" not in err.value.message and "some-bucket" not in err.value.message


@pytest.mark.parametrize("url, words", [
    ("http://bucket/x", "s3:// URL"),
    ("s3://ab", "not a valid S3 bucket name"),
    ("s3://Upper_Case", "not a valid S3 bucket name"),
    ("s3://key:secret@bucket", "must not carry credentials"),
    ("s3://bucket:9000/x", "must not carry credentials, a port"),
    ("s3://bucket/a/../b", "prefix"),
    ("s3://bucket/a//b", "prefix"),
])
def test_artifact_store_urls_are_checked_at_start(url, words):
    with pytest.raises(ValueError, match="artifact_store") as err:
        RegistrySettings(artifact_store=url)
    assert words in str(err.value)


def test_artifact_store_urls_give_bucket_and_prefix():
    assert S3Location.parse("s3://my-bucket") == S3Location("my-bucket", "")
    assert S3Location.parse("s3://my-bucket/") == S3Location("my-bucket", "")
    assert S3Location.parse("s3://my.bucket-1/team/registry/") == S3Location("my.bucket-1", "team/registry/")
    assert RegistrySettings(artifact_store=" s3://b-1/p ").artifact_store == "s3://b-1/p"
    with pytest.raises(ValueError, match="s3_endpoint_url"):
        RegistrySettings(s3_endpoint_url="ftp://host:21")
    with pytest.raises(ValueError, match="s3_endpoint_url"):
        RegistrySettings(s3_endpoint_url="http://user:pw@host:9000")
