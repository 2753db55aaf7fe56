"""Item 8: no RPC takes a server file path to read or write, and Triton's repository, log and
shared-memory APIs are not reachable through the gateway (Triton CVE-2023-31036, CVE-2024-0087).

A descriptor scan lists every request field (nested messages included) whose name suggests a
path, file, folder, URL or address; each must be in the documented list below, with the test
that proves it safe. Triton's own method paths called on the inference port answer UNIMPLEMENTED,
and Triton itself listens on 127.0.0.1 only.
"""

from __future__ import annotations

import re

import grpc

from beamops.common.v1 import lineage_pb2
from beamops.registry.v1 import registry_service_pb2 as rs

from tests.fixtures.registry import signature
from tests.protos import services

from .assertions import Canary, assert_clean_error

SUSPECT = re.compile(r"path|file|dir|folder|url|uri|location|host|address|endpoint|socket|mount|repo", re.I)

# Every request field with a suspect name, why it is safe, and the test that proves it.
DOCUMENTED = {
    "beamops.data.v1.DatasetSource.urls": "data-root-relative path or allowlisted URL: "
        "test_paths.test_data_sources_cannot_leave_the_data_roots, test_ssrf",
    "beamops.registry.v1.UploadArtifactRequest.Header.filename": "display name, never a path: "
        "test_paths.test_artifact_filenames_are_never_paths",
    "beamops.common.v1.GitSource.path": "lineage text, never opened: test_lineage_code_paths_are_text",
    "beamops.common.v1.GitSource.repository": "lineage text, never fetched: test_lineage_code_paths_are_text",
    "beamops.data.v1.ListDatasetVersionsRequest.only_registered_from_files": "a boolean filter",
}
# Words that match SUSPECT but are not about files (e.g. "direction" contains "dir").
NOT_SUSPECT = {"direction", "description", "profile"}

TRITON_METHODS = [
    "RepositoryModelLoad", "RepositoryModelUnload", "RepositoryIndex", "LogSettings", "TraceSetting",
    "SystemSharedMemoryRegister", "SystemSharedMemoryStatus", "SystemSharedMemoryUnregister",
    "CudaSharedMemoryRegister", "CudaSharedMemoryStatus", "CudaSharedMemoryUnregister", "ModelInfer",
    "ModelStreamInfer", "ServerMetadata", "ModelConfig", "ModelStatistics",
]


def request_fields() -> dict[str, str]:
    """full field name -> service, for every field of every request message (recursively)."""
    out: dict[str, str] = {}
    seen: set[str] = set()

    def walk(message, service: str) -> None:
        if message.full_name in seen or message.full_name.startswith("google."):
            return
        seen.add(message.full_name)
        for field in message.fields:
            out[f"{message.full_name}.{field.name}"] = service
            if field.message_type is not None:
                walk(field.message_type, service)

    for service in services():
        for method in service.methods:
            walk(method.input_type, service.name)
    return out


def test_no_request_field_names_a_server_path_except_documented_ones():
    fields = request_fields()
    assert len(fields) > 100  # the scan sees the nested messages too
    suspect = {name for name in fields
               if SUSPECT.search(name.rsplit(".", 1)[1]) and name.rsplit(".", 1)[1] not in NOT_SUSPECT}
    undocumented = suspect - set(DOCUMENTED)
    assert not undocumented, f"request fields that may name a file or address: {sorted(undocumented)}"
    assert set(DOCUMENTED) <= set(fields), set(DOCUMENTED) - set(fields)


def test_no_rpc_is_named_like_a_file_or_engine_administration_call():
    for service in services():
        for method in service.methods:
            assert not re.search(r"Repository|Log(Settings|File)|SharedMemory|Trace|Upload(File|Path)|Exec|Shell",
                                 method.name), method.full_name


async def test_lineage_code_paths_are_text(registry, tmp_path):
    canary = Canary(tmp_path / "outside" / "code.py")
    await registry.create_model("coded")
    for i, (repository, path) in enumerate([(f"file://{canary.path.parent}", str(canary.path)),
                                            ("../../../", "../../outside/code.py"),
                                            ("https://169.254.169.254/latest", "%2e%2e/%2e%2e/etc/passwd")]):
        code = lineage_pb2.CodeRef(git=lineage_pb2.GitSource(repository=repository, commit="a" * 40, path=path))
        req = rs.CreateModelTypeRequest(model="coded", version=f"{i + 1}.0.0", signature=signature(), code=code)
        created = (await registry.stub.CreateModelType(req, metadata=registry.md())).model_type
        assert created.code.git.path == path and created.code.git.repository == repository
    canary.assert_untouched()


async def test_triton_administration_paths_are_unimplemented_on_the_gateway(inference_stack):
    stack = inference_stack
    async with stack.inference() as (server, _stub):
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        try:
            for method in TRITON_METHODS:
                for md in (None, stack.md("admin")):
                    call = channel.unary_unary(f"/inference.GRPCInferenceService/{method}",
                                               request_serializer=lambda b: b, response_deserializer=lambda b: b)
                    try:
                        await call(b"", metadata=md, timeout=10)
                    except grpc.aio.AioRpcError as err:
                        assert err.code() == grpc.StatusCode.UNIMPLEMENTED, (method, err.code(), err.details())
                        if err.details():
                            assert_clean_error(err, grpc.StatusCode.UNIMPLEMENTED)
                    else:
                        raise AssertionError(f"{method} answered through the gateway")
        finally:
            await channel.close()
        # The bundled Triton runs inside the gateway, whose Triton API for the service listens on
        # the loopback interface only (its command line says so); Triton itself has no fronts.
        pid = int((stack.settings().var_dir / "triton" / "tritonserver.pid").read_text().split()[0])
        argv = open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\0")
        assert argv[0].endswith("beamops-gateway") and "--triton-library" in argv, argv
        assert argv[argv.index("--triton") + 1].startswith("127.0.0.1:"), argv
        assert not [a for a in argv if re.match(r"--(grpc|http|metrics)-address", a)], argv
