"""beamops services as their own processes, for the benchmarks (import after ROOT is on sys.path)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from beamops.health import health_status
from processes import stop  # benchmarks/processes.py

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def service(name: str, port: int, work: Path, **settings: str) -> Iterator[subprocess.Popen]:
    """``beamops.<name>.server`` on ``port`` with its state in ``work/<name>``, the tokens file
    ``work/tokens.json``, its log in ``work/<name>.log`` and ``settings`` as BEAMOPS_<NAME>_*
    variables; yields once it answers health checks SERVING, and stops it afterwards."""
    prefix = f"BEAMOPS_{name.upper()}_"
    env = {**os.environ, f"{prefix}PORT": str(port), f"{prefix}VAR_DIR": str(work / name),
           f"{prefix}TOKENS_FILE": str(work / "tokens.json"), f"{prefix}LOG_LEVEL": "WARNING",
           **{f"{prefix}{k.upper()}": v for k, v in settings.items()}}
    log = work / f"{name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", f"beamops.{name}.server"], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while health_status(f"127.0.0.1:{port}") != "SERVING":
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the {name} service did not start; see {log}")
            time.sleep(0.2)
        yield proc
    finally:
        stop(proc, 60)


def publish_onnx(registry_address: str, md, model: str, data: bytes, signature, alias: str = "production",
                 new_model: bool = True) -> str:
    """Creates ``model`` (type 1.0.0 with ``signature``; ``new_model=False``: it exists), uploads
    the ONNX ``data`` as a new parameters version, points ``alias`` at it (``""``: none) and
    returns the version."""
    import hashlib

    import grpc

    from beamops.registry.v1 import model_pb2, registry_service_pb2 as rs, registry_service_pb2_grpc

    with grpc.insecure_channel(registry_address) as channel:
        reg = registry_service_pb2_grpc.RegistryServiceStub(channel)
        if new_model:
            reg.CreateModel(rs.CreateModelRequest(name=model), metadata=md)
            reg.CreateModelType(rs.CreateModelTypeRequest(model=model, version="1.0.0", signature=signature,
                                                          framework=model_pb2.FRAMEWORK_ONNX), metadata=md)
        header = rs.UploadArtifactRequest.Header(model=model, format=model_pb2.ARTIFACT_FORMAT_ONNX,
                                                 filename=f"{model}.onnx", sha256=hashlib.sha256(data).hexdigest())
        art = reg.UploadArtifact(iter([rs.UploadArtifactRequest(header=header),
                                       rs.UploadArtifactRequest(chunk=data)]), metadata=md).artifact
        params = reg.CreateParametersVersion(rs.CreateParametersVersionRequest(
            model=model, model_type_version="1.0.0", primary_artifact_id=art.artifact_id), metadata=md).parameters
    if alias:
        set_alias(registry_address, md, model, alias, params.version)
    return params.version


def set_alias(registry_address: str, md, model: str, alias: str, version: str) -> None:
    import grpc

    from beamops.registry.v1 import registry_service_pb2 as rs, registry_service_pb2_grpc

    with grpc.insecure_channel(registry_address) as channel:
        registry_service_pb2_grpc.RegistryServiceStub(channel).SetAlias(
            rs.SetAliasRequest(model=model, alias=alias, version=version, reason="benchmark"), metadata=md)
