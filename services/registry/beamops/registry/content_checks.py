"""What the registry accepts as artifact content: never pickles, and ONNX files that check out.

The registry never unpickles anything. It refuses content that is a pickle (a stream starting
with the PROTO opcode of protocols 2 to 5), and archives that carry pickles (``data.pkl`` or
any ``*.pkl``, as ``torch.save`` and joblib write), whatever format is declared, with one
exception: an artifact declared TorchScript.

TorchScript (``torch.jit.save``) is a zip archive laid out as ``<name>/data.pkl``,
``<name>/constants.pkl``, ``<name>/version`` and ``<name>/code/...`` (the TorchScript source of
the model), plus tensor data. Its two pickles hold only tensors and constants and are read by
TorchScript's own restricted unpickler, which cannot import arbitrary Python; the code is
TorchScript, not Python. So an artifact declared TorchScript with exactly that layout is stored
as declared, opaque, never opened beyond its zip directory. A declared TorchScript that lacks
the layout (a ``torch.save`` checkpoint has ``data.pkl`` but no ``code/`` nor ``constants.pkl``)
or carries any other pickle is refused, and so is a TorchScript archive declared as anything else.

ONNX models must be self-contained (``beamops.onnx_external``): a tensor stored as external data
names a file that ONNX Runtime would read wherever the model is loaded. A declared ONNX model
with such a tensor is refused before onnx.checker runs; an artifact declared as anything else is
parsed as an ONNX model too when it can be one (:func:`could_be_protobuf`, a walk over its
top-level protobuf fields), and refused the same way. The locations are never resolved.
"""

from __future__ import annotations

import bz2
import io
import lzma
import pickletools
import tarfile
import zipfile
import zlib
from pathlib import Path

from beamops.onnx_external import ExternalDataError, load_self_contained
from beamops.runtime.errors import InvalidArgument

from . import onnx_signature
from .entities import Signature

PICKLE_MAGIC = tuple(bytes([0x80, proto]) for proto in (2, 3, 4, 5))
PICKLE_SUFFIXES = (".pkl", ".pickle")
MAX_EXPANSION = 100  # a compressed tar may expand this much (plus 64 MiB) while its members are listed
HEAD = 64 * 1024  # bytes of a file (or of its decompressed start) that are inspected


def is_pickle(head: bytes, whole: bool = False) -> bool:
    """True if ``head`` (the first bytes of a file; all of it when ``whole``) is a pickle: protocol
    2 to 5 by their PROTO opcode, protocols 0 and 1 (no header) by reading the opcodes without
    running them (``pickletools``, which also checks the stack): the bytes are a pickle when they
    form a complete one, or when the whole head is a valid prefix of one."""
    if head[:2] in PICKLE_MAGIC:
        return True
    return _unheaded_pickle(head, whole)


# A stream of nothing but persistent ids cannot be loaded without a persistent_load hook (and a
# zip's "PK..." header reads as one), so those alone do not count.
_PERSISTENT = {"PERSID", "BINPERSID", "STOP"}
_OPCODE_BYTES = {op.code.encode("latin-1")[0] for op in pickletools.opcodes}
_RAN_OUT = ("exhausted", "not enough data", "but only", "no newline found")
_MIN_PREFIX = 4096  # a valid pickle prefix this long is not a coincidence


def _unheaded_pickle(head: bytes, whole: bool) -> bool:
    if not head or head[0] not in _OPCODE_BYTES:
        return False
    names: set[str] = set()
    try:
        for opcode, _arg, _pos in pickletools.genops(io.BytesIO(head)):
            names.add(opcode.name)
    except ValueError:
        pass
    try:
        pickletools.dis(head, out=io.StringIO())  # opcodes, arguments, stack and memo
    except ValueError as exc:
        ran_out = any(word in str(exc) for word in _RAN_OUT)
        if whole or not ran_out or len(head) < _MIN_PREFIX:
            return False
    return bool(names - _PERSISTENT)


def numpy_object_array(head: bytes) -> bool:
    """True for a ``.npy`` file of dtype object: its data is a pickle (``np.load`` needs
    ``allow_pickle=True``)."""
    if not head.startswith(b"\x93NUMPY") or len(head) < 10:
        return False
    size = int.from_bytes(head[8:10], "little") if head[6] == 1 else int.from_bytes(head[8:12], "little")
    header = head[10 if head[6] == 1 else 12:][:size].decode("latin-1", "replace")
    return "'O'" in header or "|O" in header or "object" in header


def _zlib(wbits: int):
    return lambda data: zlib.decompressobj(wbits).decompress(data, HEAD)


# Compressed streams joblib (and others) write: magic bytes -> how to decompress a head of it.
_COMPRESSED = (
    (b"\x1f\x8b", _zlib(31)),  # gzip
    (b"\x78", _zlib(15)),  # zlib (joblib compress=N)
    (b"BZh", lambda data: bz2.BZ2Decompressor().decompress(data, HEAD)),
    (b"\xfd7zXZ\x00", lambda data: lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(data, HEAD)),
    (b"\x5d\x00\x00", lambda data: lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(data, HEAD)),
)


def compressed_pickle(head: bytes) -> bool:
    """True if ``head`` (the first KiBs of a file) is a compressed pickle (joblib with
    compression, pickle.dump into gzip/bz2/xz)."""
    for magic, decompress in _COMPRESSED:
        if head.startswith(magic):
            try:
                if is_pickle(decompress(head)):
                    return True
            except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError):
                pass
    return False


def archive_members(path: Path) -> list[str]:
    """Names of the members of a zip or tar archive at ``path`` (empty for other files)."""
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
                limit = MAX_EXPANSION * path.stat().st_size + (64 << 20)
                with tarfile.open(path) as archive:
                    for member in archive:  # headers only; never extracted
                        names.append(member.name)
                        if archive.offset > limit:  # a decompression bomb: refuse, do not spin
                            raise InvalidArgument(
                                f"the archive expands to more than {MAX_EXPANSION} times its size; "
                                "such archives are refused", field="chunk")
        except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError):
            return []
    return names


def pickled_members(path: Path) -> list[str]:
    """Names of pickle files inside a zip or tar archive at ``path`` (empty for other files)."""
    return [n for n in archive_members(path) if n.lower().endswith(PICKLE_SUFFIXES)]


def torchscript_pickles(path: Path) -> set[str] | None:
    """The two pickles of a TorchScript archive (``<name>/data.pkl``, ``<name>/constants.pkl``)
    if ``path`` is a zip with the TorchScript layout, else None."""
    if not zipfile.is_zipfile(path):
        return None
    names = archive_members(path)
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or any("/" not in n for n in names):
        return None
    root = roots.pop()
    required = {f"{root}/data.pkl", f"{root}/constants.pkl", f"{root}/version"}
    if not required <= set(names) or not any(n.startswith(f"{root}/code/") for n in names):
        return None
    return {f"{root}/data.pkl", f"{root}/constants.pkl"}


_WALKED_FIELDS = 10_000  # top-level fields looked at before the whole file is parsed anyway


def _varint(f, pos: int) -> tuple[int, int] | None:
    f.seek(pos)
    value = 0
    for i, byte in enumerate(f.read(10)):
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    return None  # truncated, or longer than any varint


def could_be_protobuf(path: Path) -> bool:
    """False when the file cannot be a protobuf message (so neither onnx nor ONNX Runtime could
    parse it as a model): a top-level field numbered 0 or with an invalid wire type, or one that
    runs past the end of the file. True otherwise, and whenever unsure (groups; very many
    fields). Reads a few bytes per top-level field, seeking over the values."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        pos = 0
        for _ in range(_WALKED_FIELDS):
            if pos == size:
                return True
            tag = _varint(f, pos)
            if tag is None:
                return False
            key, pos = tag
            wire = key & 7
            if key >> 3 == 0 or wire in (6, 7):  # field number 0 is malformed for every parser
                return False
            if wire in (3, 4):  # groups: let the parser decide
                return True
            if wire == 0:
                value = _varint(f, pos)
                if value is None:
                    return False
                pos = value[1]
            elif wire == 2:
                length = _varint(f, pos)
                if length is None:
                    return False
                pos = length[1] + length[0]
            else:
                pos += 8 if wire == 1 else 4
            if pos > size:
                return False
    return True


def check_self_contained_onnx(path: Path, what: str) -> None:
    """For an artifact not declared ONNX: if its bytes parse as an ONNX model, refuse it when it
    stores tensors as external data, as a declared ONNX model would be."""
    if not could_be_protobuf(path):
        return
    try:
        load_self_contained(path.read_bytes(), what)
    except ExternalDataError as exc:
        raise InvalidArgument(str(exc), field="chunk") from None
    except ValueError:
        pass  # not an ONNX model at all: nothing of it reaches ONNX Runtime


def check_content(path: Path, fmt: str, filename: str = "") -> Signature | None:
    """Refuse pickle-based content and ONNX models with external data; check ONNX files and
    return their signature. ``filename`` (the uploader's) names the file in messages."""
    with open(path, "rb") as f:
        head = f.read(HEAD)
    if is_pickle(head, whole=len(head) < HEAD) or compressed_pickle(head) or numpy_object_array(head):
        raise InvalidArgument(
            "the artifact is a Python pickle (or a compressed one, as joblib writes); the registry refuses "
            "pickle-based files because loading them can run arbitrary code. Export the model to ONNX "
            "(or safetensors for raw "
            "weights) and upload that",
            field="chunk",
        )
    members = pickled_members(path)
    if fmt == "torchscript":
        allowed = torchscript_pickles(path)
        if allowed is None:
            raise InvalidArgument(
                "the artifact is declared TorchScript but is not a TorchScript archive (a zip "
                "written by torch.jit.save, with <name>/data.pkl, <name>/constants.pkl, "
                "<name>/version and <name>/code/); a torch.save checkpoint is a pickle and is "
                "refused: script or trace the model and save it with torch.jit.save",
                field="chunk",
            )
        members = [m for m in members if m not in allowed]
    if members:
        raise InvalidArgument(
            f"the artifact is an archive that contains pickles ({', '.join(members[:3])}); the "
            "registry refuses pickle-based files. Export the model to ONNX and upload that",
            field="chunk",
        )
    what = filename or "the ONNX model"
    if fmt == "onnx":
        return onnx_signature.signature_of(onnx_signature.load_checked(path, what))
    check_self_contained_onnx(path, what)
    return None
