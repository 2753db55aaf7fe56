"""Item 1: path traversal in every field that names a file or URL (MLflow CVE-2023-1177,
CVE-2023-2356, CVE-2023-6909, CVE-2023-6977, CVE-2024-1560, CVE-2024-1593, CVE-2024-3573).

Data sources are refused before anything is opened; artifact filenames are display names that
never become paths (the blob lands in the content-addressed store); ids and names that could be
read as paths are refused. Each case checks a canary file outside every root: never read, never
changed, never registered.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from beamops.common.v1 import lineage_pb2
from beamops.data.v1 import data_service_pb2 as dpb
from beamops.registry.v1 import model_pb2, registry_service_pb2 as rs

from tests.fixtures.registry import make_onnx
from tests.real_data import REAL_DATA

from .assertions import Canary, assert_clean_error, expect_error, files_under, sha256

PD, IA, NF = grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND


@pytest.fixture
def canary(tmp_path: Path) -> Canary:
    """A real ROOT file outside the data roots: if it were read, it would register fine."""
    return Canary(tmp_path / "outside" / "canary.root", (REAL_DATA / "uproot-HZZ.root").read_bytes())


def traversal_sources(canary: Path) -> list[tuple[str, grpc.StatusCode]]:
    up = "../../outside/canary.root"  # from the data root tmp/roots/main to the canary
    return [
        (up, PD),
        ("mc/../../../outside/canary.root", PD),
        ("uproot-HZZ.root/../../../outside/canary.root", PD),
        (str(canary), PD),
        ("file://" + str(canary), PD),
        ("FILE://" + str(canary), PD),
        ("file:" + str(canary), NF),  # no "//": a relative name that does not exist in the roots
        ("~/canary.root", PD),
        ("/proc/self/environ", PD),
        ("..\\..\\outside\\canary.root", PD),
        ("%2e%2e%2f%2e%2e%2foutside%2fcanary.root", PD),
        ("%2E%2E/%2E%2E/outside/canary.root", PD),
        ("..%2f..%2foutside%2fcanary.root", PD),
        ("%252e%252e%252f%252e%252e%252foutside%252fcanary.root", PD),
        ("%25252e%25252e%25252fcanary.root", PD),
        ("uproot-HZZ.root;/../../../outside/canary.root", PD),
        ("..;/..;/outside/canary.root", PD),
        ("uproot-HZZ.root#/../../../outside/canary.root", PD),
        ("uproot-HZZ.root?/../../../outside/canary.root", PD),
        ("uproot-HZZ.root#x", NF),
        ("uproot-HZZ.root?x", NF),  # "?" is a glob character: it stays inside the roots
        ("uproot-HZZ.root;type=a", NF),
        ("link_out.root", PD),  # a symlink in the root pointing out
        ("[.][.]/[.][.]/outside/canary.root", NF),  # a glob cannot match ".."
        ("*/../../outside/canary.root", PD),
        ("artifact:sha256:" + "0" * 64, NF),
        ("https://eospublic.cern.ch/%2e%2e/%2e%2e/etc/passwd", PD),
        ("https://eospublic.cern.ch/eos;..%2f..%2fetc/passwd", PD),
        ("root://eospublic.cern.ch//eos/../../etc/passwd", PD),
        ("https://eospublic.cern.ch/x.root?file=../../etc/passwd", PD),
        ("https://eospublic.cern.ch/x.root?download=1", IA),
        ("https://eospublic.cern.ch/x.root#fragment", IA),
        ("uproot-HZZ.root\x00.txt", IA),
        ("uproot-HZZ.root\n", IA),
    ]


async def test_data_sources_cannot_leave_the_data_roots(data_client, data_settings, canary, tmp_path):
    before = files_under(tmp_path, skip=[data_settings.var_dir])
    cases = traversal_sources(canary.path)
    for source, code in cases:
        await expect_error(data_client.register("escape", [source], validate_only=False), code,
                           echo=[source], secrets=[str(data_settings.data_roots[0]), str(tmp_path)])
        # the same source in a list with a good file: refused as a whole
        await expect_error(data_client.register("escape", ["uproot-HZZ.root", source]), code, echo=[source])
    canary.assert_untouched()
    listed = await data_client.stub.ListDatasets(dpb.ListDatasetsRequest(), metadata=data_client.md("reader"))
    assert list(listed.datasets) == []
    assert files_under(tmp_path, skip=[data_settings.var_dir]) == before


async def test_data_ids_and_names_that_look_like_paths_are_invalid(data_client, canary):
    ok = (await data_client.register("zmumu", ["uproot-Zmumu.root"])).version
    md = data_client.md("reader")
    for bad in ("../../etc/passwd", "dsv-../../x", "dsv-0123456789abcdef/../x", "dsv-0123456789abcdef\n",
                "/etc/passwd", "%2e%2e%2f"):
        await expect_error(data_client.stub.GetDatasetVersion(
            dpb.GetDatasetVersionRequest(dataset="zmumu", version_id=bad), metadata=md), IA, echo=[bad])
        await expect_error(data_client.stub.ReadDatasetVersion(dpb.ReadDatasetVersionRequest(
            version=lineage_pb2.DatasetVersionRef(dataset="zmumu", version_id=bad)), metadata=md), IA, echo=[bad])
    for bad in ("../zmumu", "zmumu/../x", "/zmumu", "%2e%2e", "zmumu\n", "..", "file:zmumu"):
        await expect_error(data_client.stub.GetDataset(dpb.GetDatasetRequest(dataset=bad), metadata=md), IA,
                           echo=[bad])
        await expect_error(data_client.stub.GetDatasetVersion(
            dpb.GetDatasetVersionRequest(dataset=bad, version_id=ok.version_id), metadata=md), IA, echo=[bad])
    canary.assert_untouched()


async def test_artifact_filenames_are_never_paths(registry, tmp_path, canary):
    """Any filename is a display name: the bytes land in blobs/ab/cd/<sha256>, nothing else is
    written, the filename comes back as given."""
    await registry.create_model("paths")
    var = registry.settings.var_dir
    before = files_under(tmp_path, skip=[var, tmp_path / "db"])
    names = ["../../../../outside/canary.root", str(canary.path), "/etc/passwd", "file://" + str(canary.path),
             "%2e%2e%2f%2e%2e%2fcanary.root", "%252e%252e%252fcanary.root", "model.onnx;../../x",
             "model.onnx#/../../x", "model.onnx?/../../x", "..\\..\\x.onnx", "a/b/../../../c.onnx", "..", ".",
             "~/.ssh/authorized_keys"]
    root = registry.settings.resolved_artifacts_dir
    for i, filename in enumerate(names):
        data = make_onnx(n_features=2 + i)
        artifact = await registry.upload("paths", data, filename=filename)
        assert artifact.filename == filename and artifact.sha256 == sha256(data)
        got, downloaded = await registry.download(artifact.artifact_id)
        assert downloaded == data and got.filename == filename
        assert root / "blobs" / artifact.sha256[:2] / artifact.sha256[2:4] / artifact.sha256 in registry.blob_files()
    blobs = registry.blob_files()
    assert len(blobs) == len(names)
    assert all(p.parent.parent.parent == root / "blobs" and p.name == sha256(p.read_bytes()) for p in blobs)
    assert files_under(tmp_path, skip=[var, tmp_path / "db"]) == before
    assert not (tmp_path / "outside" / "canary.root.onnx").exists()
    canary.assert_untouched()

    # Filenames that could break a log line or a header are refused, and nothing is stored.
    for filename in ("model\x00.onnx", "model\n.onnx", "model\r\nSet-Cookie: x", "a" * 256):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await registry.upload("paths", make_onnx(n_features=40), filename=filename)
        assert_clean_error(err.value, IA, "filename", echo=[filename])
    assert len(registry.blob_files()) == len(names)


async def test_artifact_ids_that_look_like_paths_find_nothing(registry, canary):
    await registry.create_model("ids")
    await registry.create_type("ids", "1.0.0")
    real = await registry.upload("ids", make_onnx())
    md = registry.md("reader")
    for bad in ("../../blobs", "art-../../../etc/passwd",
                f"../blobs/{real.sha256[:2]}/{real.sha256[2:4]}/{real.sha256}",
                real.sha256, "/etc/passwd", "file:///etc/passwd", "%2e%2e%2f%2e%2e%2fregistry.db",
                real.artifact_id + "/../x", real.artifact_id + "\n"):
        await expect_error(registry.stub.GetArtifact(rs.GetArtifactRequest(artifact_id=bad), metadata=md),
                           (NF, IA), echo=[bad])
        await expect_error(registry.stub.DownloadArtifact(rs.DownloadArtifactRequest(artifact_id=bad), metadata=md),
                           (NF, IA), echo=[bad])
        await expect_error(registry.stub.CreateParametersVersion(rs.CreateParametersVersionRequest(
            model="ids", model_type_version="1.0.0", primary_artifact_id=bad), metadata=registry.md()),
            (NF, IA), echo=[bad])
    listed = await registry.stub.ListParametersVersions(rs.ListParametersVersionsRequest(model="ids"), metadata=md)
    assert list(listed.parameters) == []
    canary.assert_untouched()
    assert real.format == model_pb2.ARTIFACT_FORMAT_ONNX
