"""The Triton model repository the service owns: one folder per Triton model name.

``<repository>/<triton name>/config.pbtxt`` and ``<repository>/<triton name>/1/model.onnx``;
for the bundled Triton (Python backend) ``1/model.py`` (``triton/model/model.py``) sits beside
the ONNX file. The config comes from the version's signature (:func:`config_for`). Triton model
names are ``<deployment>__<version with . as _>`` (``__g<generation>`` appended when that name is
already in use, e.g. a replace with other serving settings).

Deployment names are case-sensitive (``beamops.runtime.names``) and Triton names keep their case,
but the repository may sit on a case-insensitive filesystem (macOS, Windows), where the folders
of ``JetTagger`` and ``jettagger`` would be one. So the Triton name of a deployment name with
upper-case letters also carries ``__c<mask>``: which of its characters are upper case, as hex
(bit i for character i). Two names that differ only in case then never share a folder, and the
Triton names of all-lower-case deployment names are what they always were.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from beamops.common.v1 import tensor_pb2
from beamops.onnx_external import ExternalDataError, load_self_contained
from beamops.runtime.errors import FailedPrecondition

from ..domain import ServingConfig, Signature
from .config import config_pbtxt

MODEL_PY = Path(__file__).resolve().parent / "model" / "model.py"

TRITON_TYPES = {
    tensor_pb2.DATA_TYPE_BOOL: "TYPE_BOOL",
    tensor_pb2.DATA_TYPE_INT8: "TYPE_INT8",
    tensor_pb2.DATA_TYPE_INT16: "TYPE_INT16",
    tensor_pb2.DATA_TYPE_INT32: "TYPE_INT32",
    tensor_pb2.DATA_TYPE_INT64: "TYPE_INT64",
    tensor_pb2.DATA_TYPE_UINT8: "TYPE_UINT8",
    tensor_pb2.DATA_TYPE_UINT16: "TYPE_UINT16",
    tensor_pb2.DATA_TYPE_UINT32: "TYPE_UINT32",
    tensor_pb2.DATA_TYPE_UINT64: "TYPE_UINT64",
    tensor_pb2.DATA_TYPE_FLOAT16: "TYPE_FP16",
    tensor_pb2.DATA_TYPE_FLOAT32: "TYPE_FP32",
    tensor_pb2.DATA_TYPE_FLOAT64: "TYPE_FP64",
    tensor_pb2.DATA_TYPE_BYTES: "TYPE_STRING",
}
DEFAULT_QUEUE_DELAY_US = 100


def triton_name(deployment: str, version: str, generation: int = 0) -> str:
    """The Triton model (and repository folder) name of a deployment's version: case kept, and
    different, even ignoring case, for deployment names that differ only in case."""
    base = f"{deployment}__{version.replace('.', '_')}{_case_mask(deployment)}"
    return f"{base}__g{generation}" if generation else base


def _case_mask(deployment: str) -> str:
    mask = sum(1 << i for i, c in enumerate(deployment) if c.isupper())
    return f"__c{mask:x}" if mask else ""


def is_triton_name_of(name: str, deployment: str) -> bool:
    """Whether ``name`` is a Triton name :func:`triton_name` gives ``deployment`` (any version or
    generation); the names of deployment ``jets__v2`` are not names of ``jets``."""
    pattern = rf"{re.escape(deployment)}__[0-9]+(?:_[0-9]+)*{re.escape(_case_mask(deployment))}(?:__g[0-9]+)?"
    return re.fullmatch(pattern, name) is not None


def effective_max_batch_size(signature: Signature, serving: ServingConfig, default: int) -> int:
    """0 (no batch dimension) unless every tensor's first dimension is variable."""
    if not signature.batched:
        return 0
    return serving.max_batch_size or default


def config_for(name: str, signature: Signature, serving: ServingConfig, backend: str, *,
               default_max_batch_size: int = 64, intra_op_threads: int = 1) -> str:
    """config.pbtxt text for a version's signature; ValueError if Triton cannot express it."""
    max_batch = effective_max_batch_size(signature, serving, default_max_batch_size)

    def specs(tensors):
        out = []
        for t in tensors:
            if t.dtype not in TRITON_TYPES:
                raise ValueError(f"tensor {t.name!r} has a dtype Triton cannot serve")
            dims = list(t.shape[1:] if max_batch else t.shape) or [1]
            out.append((t.name, TRITON_TYPES[t.dtype], dims))
        return out

    delay = serving.max_queue_delay_us
    return config_pbtxt(
        name, specs(signature.inputs), specs(signature.outputs),
        max_batch_size=max_batch, backend=backend,
        instance_count=serving.instance_count or 1,
        preferred_batch_sizes=serving.preferred_batch_sizes,
        max_queue_delay_us=DEFAULT_QUEUE_DELAY_US if delay is None else delay,
        parameters={"intra_op_threads": str(intra_op_threads)} if backend == "python" else None,
        dynamic_batching=not serving.dynamic_batching_disabled,
    )


class ModelRepository:
    """Writes and removes model folders; ``backend`` is "python" (bundled) or "onnxruntime"."""

    def __init__(self, root: Path, backend: str) -> None:
        self.root = root
        self.backend = backend
        root.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, onnx_bytes: bytes, config: str) -> None:
        """Writes the folder atomically (a temp folder renamed into place). A model that stores
        tensors as external data (which ONNX Runtime would read from beside it) is refused with
        FAILED_PRECONDITION, and nothing is written."""
        try:
            load_self_contained(onnx_bytes, "the version's ONNX artifact")
        except ExternalDataError as exc:
            raise FailedPrecondition(f"this version cannot be served: {exc}") from None
        except ValueError:
            pass  # not an ONNX model at all: Triton refuses to load it
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=".tmp-"))
        try:
            (tmp / "1").mkdir()
            (tmp / "1" / "model.onnx").write_bytes(onnx_bytes)
            if self.backend == "python":
                shutil.copyfile(MODEL_PY, tmp / "1" / "model.py")
            (tmp / "config.pbtxt").write_text(config)
            os.chmod(tmp, 0o755)
            self.remove(name)
            os.replace(tmp, self.root / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def sha256(self, name: str) -> str | None:
        """sha256 of the stored model.onnx, or None when the entry is missing."""
        path = self.root / name / "1" / "model.onnx"
        if not path.is_file() or not (self.root / name / "config.pbtxt").is_file():
            return None
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def remove(self, name: str) -> None:
        shutil.rmtree(self.root / name, ignore_errors=True)

    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
