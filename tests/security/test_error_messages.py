"""Item 10: error messages never carry a traceback, a server path (the var_dir, /work, /tmp,
site-packages) or an internal address. Every error in tests/security goes through
``assertions.assert_clean_error``; this module checks the checker, and the errors most likely
to leak a path: a tampered blob, a data file changed under a registered version, a corrupt
file (an unreachable remote server: tests/integration/test_data_remote.py).
"""

from __future__ import annotations

import grpc
import pytest

from beamops.common.v1 import lineage_pb2
from beamops.data.v1 import data_service_pb2 as dpb

from tests.fixtures.registry import make_onnx

from .assertions import expect_error, leaks_in


@pytest.mark.parametrize("message", [
    'Traceback (most recent call last):\n  File "/work/main/x.py", line 3',
    "could not open /tmp/pytest-of-root/var/registry.db",
    "ImportError in /work/main/.venv/lib/python3.11/site-packages/uproot/reading.py",
    "connect to 10.1.2.3:8001 failed", "Triton at localhost:8001 is down", "peer ipv4:127.0.0.1:5555",
    "blob /srv/beamops/var/artifacts/blobs/ab/cd/x changed", "[::1]:50051 refused",
])
def test_the_checker_sees_leaks(message):
    assert leaks_in(message, secrets=["/srv/beamops/var"])


def test_the_checker_lets_the_callers_own_words_through():
    url = "http://10.0.0.1:8080/data/x.root"
    assert leaks_in(f"host '10.0.0.1:8080' of source {url!r} is not allowed", echo=[url]) == []
    assert leaks_in("model 'jets' has no alias 'production'") == []


async def test_a_tampered_blob_is_data_loss_without_its_path(registry):
    await registry.create_model("tamper")
    artifact = await registry.upload("tamper", make_onnx())
    (blob,) = registry.blob_files()
    blob.write_bytes(b"changed on disk")
    var = str(registry.settings.var_dir)
    await expect_error(registry.stub.DownloadArtifact(
        __import__("beamops.registry.v1.registry_service_pb2", fromlist=["x"]).DownloadArtifactRequest(
            artifact_id=artifact.artifact_id), metadata=registry.md("reader")),
        grpc.StatusCode.DATA_LOSS, secrets=[var, str(blob), artifact.sha256[:2] + "/"])


async def test_data_errors_name_sources_not_server_paths(data_client, data_settings, data_root):
    roots = [str(data_root), str(data_settings.var_dir)]
    version = (await data_client.register("changed", ["mc/zmumu_a.root"])).version
    (data_root / "mc" / "zmumu_a.root").write_bytes((data_root / "mc" / "zmumu_b.root").read_bytes()[:-10])
    ref = lineage_pb2.DatasetVersionRef(dataset="changed", version_id=version.version_id)
    await expect_error(data_client.stub.ReadDatasetVersion(dpb.ReadDatasetVersionRequest(version=ref),
                                                           metadata=data_client.md("reader")),
                       grpc.StatusCode.DATA_LOSS, "mc/zmumu_a.root", secrets=roots)
    for source, code in (("truncated.root", grpc.StatusCode.DATA_LOSS), ("garbage.root", grpc.StatusCode.DATA_LOSS),
                         ("missing.root", grpc.StatusCode.NOT_FOUND)):
        await expect_error(data_client.register("bad", [source]), code, source, echo=[source], secrets=roots)
