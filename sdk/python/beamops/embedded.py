"""Embedded mode: run a registry model in this process with ONNX Runtime, no network hop.

>>> import beamops
>>> model = beamops.load_model("jet-tagger", "production")   # or a version, "1.2"
>>> model.predict(x=batch)["probabilities"]

The ONNX artifact is downloaded once into a cache keyed by its sha256
(``~/.cache/beamops/models``, or ``$BEAMOPS_CACHE_DIR``), its sha256 verified on download and on
every load. The cache also remembers what each name resolved to last, so when the registry cannot
be reached the model still loads from the cache (``model.from_cache`` is then True). A model that
stores tensors as external data is refused before ONNX Runtime sees it (it would read files of
this machine, relative to the current directory: ``beamops.onnx_external``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from beamops.files import write_atomically
from beamops.registry.v1 import registry_service_pb2 as rs

from .errors import BeamopsError, DataLossError, InvalidArgumentError, NotFoundError, from_rpc_error
from .onnx_external import load_self_contained

_VERSION = re.compile(r"^\d+\.\d+$")
_OFFLINE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def default_cache_dir() -> Path:
    return Path(os.environ.get("BEAMOPS_CACHE_DIR") or Path.home() / ".cache" / "beamops" / "models")


@dataclass
class EmbeddedModel:
    """A parameters version running in-process. ``predict(**inputs)`` -> dict of numpy arrays."""

    model: str
    version: str
    sha256: str
    session: Any  # onnxruntime.InferenceSession
    from_cache: bool = False

    def __post_init__(self) -> None:
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._run = self.session.run

    def predict(self, inputs: Mapping[str, np.ndarray] | None = None, /,
                **named: np.ndarray) -> dict[str, np.ndarray]:
        feeds = dict(inputs or {}, **named)
        return dict(zip(self.output_names, self._run(self.output_names, feeds)))

    __call__ = predict


def load_model(name: str, version_or_alias: str, client=None, *, cache_dir: Path | str | None = None,
               timeout_s: float = 10.0, intra_op_threads: int = 1) -> EmbeddedModel:
    """Resolves ``version_or_alias`` ("1.2" or an alias) in the registry, downloads the ONNX
    artifact unless cached, and returns it running in ONNX Runtime. Works from the cache when the
    registry is unreachable and this name was loaded before."""
    import onnxruntime as ort  # noqa: PLC0415 - heavy, only for embedded use

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    if client is None:
        from .client import Client  # noqa: PLC0415

        client = Client()
    key = f"{name}/{version_or_alias}"
    from_cache = False
    try:
        version, sha256, artifact_id = _resolve(client, name, version_or_alias, timeout_s)
        path = cache / f"{sha256}.onnx"
        if not (path.exists() and _sha256(path.read_bytes()) == sha256):
            _download(client, artifact_id, sha256, path, timeout_s)
        _remember(cache, key, {"version": version, "sha256": sha256})
    except grpc.RpcError as exc:
        if exc.code() not in _OFFLINE:
            raise from_rpc_error(exc) from None
        entry = _recall(cache, key)
        if entry is None:
            raise BeamopsError(f"the registry is unreachable and {name} {version_or_alias} is not "
                               "in the local model cache", code=exc.code()) from None
        version, sha256, from_cache = entry["version"], entry["sha256"], True
        path = cache / f"{sha256}.onnx"
    data = path.read_bytes()
    if _sha256(data) != sha256:
        path.unlink(missing_ok=True)
        raise DataLossError(f"cached artifact of {name} {version} is corrupt (sha256 mismatch); "
                            "it was removed, load again with the registry reachable")
    try:
        load_self_contained(data, f"{name} {version}")
    except ValueError as exc:
        raise InvalidArgumentError(str(exc), code=grpc.StatusCode.INVALID_ARGUMENT) from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return EmbeddedModel(name, version, sha256, session, from_cache)


def _resolve(client, name: str, version_or_alias: str, timeout_s: float) -> tuple[str, str, str]:
    stub = client.stub("registry")
    if _VERSION.match(version_or_alias):
        params = stub.GetParametersVersion(
            rs.GetParametersVersionRequest(model=name, version=version_or_alias), timeout=timeout_s
        ).parameters
    else:
        params = stub.ResolveAlias(rs.ResolveAliasRequest(model=name, alias=version_or_alias),
                                   timeout=timeout_s).parameters
    artifact = params.primary_artifact
    if not artifact.artifact_id:
        raise NotFoundError(f"{name} {params.version} has no artifact to run")
    return params.version, artifact.sha256, artifact.artifact_id


def _download(client, artifact_id: str, sha256: str, path: Path, timeout_s: float) -> None:
    digest, chunks = hashlib.sha256(), []
    for part in client.stub("registry").DownloadArtifact(
            rs.DownloadArtifactRequest(artifact_id=artifact_id), timeout=max(timeout_s, 60.0)):
        if part.WhichOneof("part") == "chunk":
            digest.update(part.chunk)
            chunks.append(part.chunk)
    if digest.hexdigest() != sha256:
        raise DataLossError(f"artifact {artifact_id} does not match its sha256 {sha256}; not cached")
    write_atomically(path, b"".join(chunks))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _index(cache: Path) -> Path:
    return cache / "index.json"


def _recall(cache: Path, key: str) -> dict | None:
    try:
        return json.loads(_index(cache).read_text()).get(key)
    except (OSError, ValueError):
        return None


def _remember(cache: Path, key: str, entry: dict) -> None:
    try:
        index = json.loads(_index(cache).read_text())
    except (OSError, ValueError):
        index = {}
    if index.get(key) != entry:
        index[key] = entry
        write_atomically(_index(cache), json.dumps(index, indent=1).encode())

