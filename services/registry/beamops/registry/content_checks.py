"""What the registry accepts as artifact content: never pickles, and ONNX files that check out.

The registry never unpickles anything. It refuses content that is a pickle (a stream starting
with the PROTO opcode of protocols 2 to 5) and zip archives that carry pickles (``data.pkl``
or any ``*.pkl``, as torch.save and TorchScript archives do), whatever format is declared.
"""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

from beamops.runtime.errors import InvalidArgument

from . import onnx_signature
from .entities import Signature

PICKLE_MAGIC = tuple(bytes([0x80, proto]) for proto in (2, 3, 4, 5))
PICKLE_SUFFIXES = (".pkl", ".pickle")


def is_pickle(head: bytes) -> bool:
    """True if ``head`` (the first bytes of a file) starts like a pickle of protocol 2 to 5."""
    return head[:2] in PICKLE_MAGIC


def pickled_members(path: Path) -> list[str]:
    """Names of pickle files inside a zip or tar archive at ``path`` (empty for other files)."""
    names: list[str] = []
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            return []
    else:
        try:
            if tarfile.is_tarfile(path):
                with tarfile.open(path) as archive:
                    names = archive.getnames()
        except (tarfile.TarError, OSError, EOFError):
            return []
    return [n for n in names if n.lower().endswith(PICKLE_SUFFIXES)]


def check_content(path: Path, fmt: str) -> Signature | None:
    """Refuse pickle-based content; check ONNX files and return their signature."""
    with open(path, "rb") as f:
        head = f.read(16)
    if is_pickle(head):
        raise InvalidArgument(
            "the artifact is a Python pickle; the registry refuses pickle-based files because "
            "loading them can run arbitrary code. Export the model to ONNX (or safetensors for raw "
            "weights) and upload that",
            field="chunk",
        )
    members = pickled_members(path)
    if members:
        raise InvalidArgument(
            f"the artifact is an archive that contains pickles ({', '.join(members[:3])}); the "
            "registry refuses pickle-based files. Export the model to ONNX and upload that",
            field="chunk",
        )
    if fmt == "onnx":
        return onnx_signature.signature_of(onnx_signature.load_checked(path))
    return None
