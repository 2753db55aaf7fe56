"""Item 4: pickle-based content is refused, and nothing in the platform unpickles
(MLflow CVE-2024-37052..37061, BentoML CVE-2024-2912, CVE-2025-27520).

The registry never loads an artifact; it refuses any that is a pickle (protocols 0 to 5, with
or without compression, joblib's formats, numpy object arrays, archives carrying pickles)
whatever format is declared. The payloads here would create a canary file if anything ever
unpickled them; the canary must not exist afterwards, and nothing may be stored.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import pickle
import tarfile
import zipfile
import zlib
from pathlib import Path

import grpc
import joblib
import numpy as np
import pytest

from beamops.registry.v1 import model_pb2, registry_service_pb2 as rs

from tests.fixtures.registry import make_onnx, make_torchscript

from . import codescan
from .assertions import assert_clean_error

IA = grpc.StatusCode.INVALID_ARGUMENT
F = model_pb2


class _Exploit:
    """Unpickling this runs ``touch <path>``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def payloads(target: Path, tmp_path: Path) -> dict[str, bytes]:
    obj = {"weights": np.arange(64, dtype=np.float32).tolist(), "hook": _Exploit(target)}
    out = {f"pickle protocol {p}": pickle.dumps(obj, protocol=p) for p in range(6)}
    big = {"weights": list(range(50_000)), "hook": _Exploit(target)}
    out["protocol 0, larger than the inspected head"] = pickle.dumps(big, protocol=0)
    out["protocol 1, larger than the inspected head"] = pickle.dumps(big, protocol=1)
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    out["joblib"] = buffer.getvalue()
    for method in ("zlib", "gzip", "bz2", "xz", "lzma"):
        path = tmp_path / f"joblib.{method}"
        joblib.dump(obj, path, compress=(method, 3))
        out[f"joblib compress={method}"] = path.read_bytes()
        path.unlink()
    p0 = pickle.dumps(obj, protocol=0)
    out["gzip of protocol 0"] = gzip.compress(p0)
    out["bz2 of protocol 2"] = bz2.compress(pickle.dumps(obj, protocol=2))
    out["xz of protocol 1"] = lzma.compress(pickle.dumps(obj, protocol=1))
    out["zlib of protocol 0"] = zlib.compress(p0)
    buffer = io.BytesIO()
    np.save(buffer, np.array([obj], dtype=object), allow_pickle=True)
    out["numpy object array (.npy)"] = buffer.getvalue()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:  # what torch.save writes: a zip with data.pkl, no code/
        z.writestr("archive/data.pkl", pickle.dumps(obj, protocol=2))
        z.writestr("archive/version", "3\n")
        z.writestr("archive/data/0", b"\0" * 16)
    out["torch.save checkpoint"] = buffer.getvalue()
    out["TorchScript plus an extra pickle"] = make_torchscript({"model/extra.pkl": pickle.dumps(obj, protocol=0)})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as t:
        data = pickle.dumps(obj, protocol=4)
        info = tarfile.TarInfo("model/model.pkl")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    out["tar.gz with a .pkl member"] = buffer.getvalue()
    return out


DECLARED = [F.ARTIFACT_FORMAT_ONNX, F.ARTIFACT_FORMAT_OTHER, F.ARTIFACT_FORMAT_SAFETENSORS,
            F.ARTIFACT_FORMAT_HLS4ML_ARCHIVE, F.ARTIFACT_FORMAT_TORCHSCRIPT, F.ARTIFACT_FORMAT_FIRMWARE_REPORT]


async def test_every_pickle_based_artifact_is_refused_and_nothing_is_stored(registry, tmp_path):
    target = tmp_path / "pwned-by-pickle"
    await registry.create_model("pickles")
    cases = payloads(target, tmp_path)
    for label, data in cases.items():
        for fmt in DECLARED:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await registry.upload("pickles", data, fmt=fmt, filename=f"{label}.bin", chunk=64 * 1024)
            message = assert_clean_error(err.value, IA, echo=[f"{label}.bin"])
            assert "pickle" in message.lower() or "TorchScript" in message, (label, fmt, message)
    assert registry.blob_files() == []
    audit = await registry.stub.ListAuditEvents(rs.ListAuditEventsRequest(action="artifact."),
                                                metadata=registry.md("reader"))
    assert list(audit.events) == []
    assert not target.exists()


async def test_inert_formats_are_still_accepted(registry):
    """The refusal is not a blanket one: ONNX, a real TorchScript archive, safetensors-like bytes
    and text that happens to start with pickle opcode characters are stored."""
    await registry.create_model("inert")
    text = b"(lp0\nsome notes that are not a pickle at all\n" * 200
    safetensors = (8).to_bytes(8, "little") + b'{"a":1} ' + np.ones(16, np.float32).tobytes()
    for data, fmt in [(make_onnx(), F.ARTIFACT_FORMAT_ONNX), (make_torchscript(), F.ARTIFACT_FORMAT_TORCHSCRIPT),
                      (safetensors, F.ARTIFACT_FORMAT_SAFETENSORS), (text, F.ARTIFACT_FORMAT_FIRMWARE_REPORT),
                      (os.urandom(100_000), F.ARTIFACT_FORMAT_OTHER)]:
        artifact = await registry.upload("inert", data, fmt=fmt)
        assert artifact.size_bytes == len(data)
    assert len(registry.blob_files()) == 5


def test_nothing_in_services_or_sdk_unpickles_or_evaluates():
    """pickle/cloudpickle/dill/joblib/marshal loads, numpy.load(allow_pickle=...), torch.load
    without weights_only=True, yaml.load without SafeLoader, eval/exec: none in our code.
    Allowed exceptions, each with its reason (none today; Dask's own use of cloudpickle to ship
    tasks is Dask's code, not ours, and it is not scanned)."""
    allowed: dict[tuple[str, str], str] = {}
    files = codescan.python_files("services", "sdk")
    assert len(files) > 50
    found = [f for f in codescan.scan(files, codescan.unsafe_loading) if (f.path, f.call) not in allowed]
    assert not found, "\n".join(map(str, found))


def test_the_unpickling_scan_sees_aliases_and_arguments(tmp_path):
    """The scan itself catches what it claims to (so an empty result above means something)."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle as p\nfrom joblib import load\nimport numpy as np\nimport torch, yaml\n"
        "from cloudpickle import loads\n"
        "p.loads(b'')\nload('x')\nnp.load('x', allow_pickle=True)\ntorch.load('x')\n"
        "torch.load('x', weights_only=False)\nyaml.load('x')\nyaml.load('x', Loader=yaml.FullLoader)\n"
        "eval('1')\nexec('1')\nloads(b'')\n"
        "np.load('x')\ntorch.load('x', weights_only=True)\nyaml.load('x', Loader=yaml.SafeLoader)\n")
    found = codescan.scan([bad], codescan.unsafe_loading)
    assert sorted(f.line for f in found) == list(range(6, 16)), [str(f) for f in found]
