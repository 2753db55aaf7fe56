"""Item 2: archive uploads (an hls4ml archive as tar.gz, TorchScript as zip) whose members climb
out ('../'), are absolute, or are symlinks / hardlinks pointing out (zip-slip, tar-slip).

The registry stores archives as opaque blobs and never extracts them: whatever the members say,
nothing is written outside the content-addressed store, and the canary they point at is never
read. Any code that does extract must use tarfile's ``filter="data"`` (a scan checks).
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import grpc

from beamops.registry.v1 import model_pb2

from tests.fixtures.registry import make_torchscript

from . import codescan
from .assertions import Canary, assert_clean_error, files_under, sha256

F = model_pb2


def evil_tar(canary: Path, escape: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as t:
        def add(info: tarfile.TarInfo, data: bytes = b"") -> None:
            info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data else None)

        add(tarfile.TarInfo("firmware/myproject.cpp"), b"// hls4ml project\n")
        add(tarfile.TarInfo("../../../../" + str(escape.relative_to("/")) + ".dotdot"), b"escaped")
        add(tarfile.TarInfo(str(escape) + ".absolute"), b"escaped")
        link = tarfile.TarInfo("firmware/link")
        link.type, link.linkname = tarfile.SYMTYPE, str(canary)
        add(link)
        through = tarfile.TarInfo("firmware/link/overwrite")  # writes through the symlink
        add(through, b"overwritten")
        hard = tarfile.TarInfo("firmware/hard")
        hard.type, hard.linkname = tarfile.LNKTYPE, str(canary)
        add(hard)
        rel = tarfile.TarInfo("firmware/rel")
        rel.type, rel.linkname = tarfile.SYMTYPE, "../../../../../" + str(canary.relative_to("/"))
        add(rel)
        dev = tarfile.TarInfo("firmware/dev")
        dev.type = tarfile.CHRTYPE
        add(dev)
    return buffer.getvalue()


def evil_zip(escape: Path, *, torchscript: bool) -> bytes:
    extra = {"model/../../../../" + str(escape.relative_to("/")) + ".dotdot": b"escaped",
             str(escape) + ".absolute": b"escaped", "model/..\\..\\escape.win": b"escaped"}
    if torchscript:
        return make_torchscript(extra)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in {"report.txt": b"ok", **extra}.items():
            z.writestr(name, data)
        link = zipfile.ZipInfo("link")
        link.external_attr = (0o120777 << 16)  # a symlink entry, as zip -y writes
        z.writestr(link, str(escape))
    return buffer.getvalue()


async def test_archives_with_escaping_members_are_never_extracted(registry, tmp_path):
    canary = Canary(tmp_path / "outside" / "canary.txt")
    escape = tmp_path / "outside" / "escaped"
    await registry.create_model("archives")
    var = registry.settings.var_dir
    before = files_under(tmp_path, skip=[var, tmp_path / "db"])
    uploads = [
        (evil_tar(canary.path, escape), F.ARTIFACT_FORMAT_HLS4ML_ARCHIVE),
        (evil_tar(canary.path, escape), F.ARTIFACT_FORMAT_FIRMWARE_REPORT),
        (evil_zip(escape, torchscript=False), F.ARTIFACT_FORMAT_OTHER),
        (evil_zip(escape, torchscript=True), F.ARTIFACT_FORMAT_TORCHSCRIPT),
    ]
    stored = []
    for data, fmt in uploads:
        try:
            artifact = await registry.upload("archives", data, fmt=fmt, filename="../../archive.tar.gz")
        except grpc.aio.AioRpcError as err:  # refused is fine too; extracted never
            assert_clean_error(err, grpc.StatusCode.INVALID_ARGUMENT, echo=["../../archive.tar.gz"])
            continue
        stored.append(artifact)
        _meta, back = await registry.download(artifact.artifact_id)
        assert back == data and artifact.sha256 == sha256(data)  # stored as-is, opaque
    # The hls4ml archive (the format meant for archives) is accepted and kept opaque.
    assert any(a.format == F.ARTIFACT_FORMAT_HLS4ML_ARCHIVE for a in stored)
    root = registry.settings.resolved_artifacts_dir
    assert sorted(p.name for p in registry.blob_files()) == sorted({a.sha256 for a in stored})
    assert all(p.is_relative_to(root / "blobs") for p in registry.blob_files())
    assert not any(p.is_symlink() for p in root.rglob("*"))
    assert files_under(tmp_path, skip=[var, tmp_path / "db"]) == before
    assert not list(escape.parent.glob("escaped*"))
    assert not list(root.rglob("firmware")) and not list(root.rglob("model"))
    canary.assert_untouched()


def test_any_archive_extraction_in_our_code_uses_the_data_filter():
    files = codescan.python_files("services", "sdk")
    found = codescan.scan(files, codescan.unsafe_extraction)
    assert not found, "\n".join(map(str, found))


def test_the_extraction_scan_catches_unsafe_calls(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import tarfile, zipfile, shutil\n"
        "tarfile.open('a').extractall('d')\n"
        "t = tarfile.open('a')\nt.extractall('d', filter='tar')\n"
        "zipfile.ZipFile('a').extractall('d')\n"
        "shutil.unpack_archive('a', 'd')\n"
        "t.extract('m', 'd')\n"
        "t.extractall('d', filter='data')\n")
    found = codescan.scan([bad], codescan.unsafe_extraction)
    assert sorted(f.line for f in found) == [2, 4, 5, 6, 7], [str(f) for f in found]


async def test_a_tar_decompression_bomb_is_refused_without_expanding_it(registry):
    """A tar.gz whose one member is 300 MB of zeros (about 300 KB compressed) and whose second
    member hides behind it: listing the members would mean inflating all of it."""
    import gzip
    import pickle

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        info = tarfile.TarInfo("firmware/zeros.bin")
        info.size = 300 << 20
        t.addfile(info)  # header only; the data is written below as zeros
    header = raw.getvalue()[:512]
    tail = io.BytesIO()
    with tarfile.open(fileobj=tail, mode="w") as t:
        data = pickle.dumps({"x": 1}, protocol=0)
        member = tarfile.TarInfo("model.pkl")
        member.size = len(data)
        t.addfile(member, io.BytesIO(data))
    stream = io.BytesIO()
    with gzip.GzipFile(fileobj=stream, mode="wb", compresslevel=9) as z:
        z.write(header)
        zeros = b"\0" * (1 << 20)
        for _ in range(300):
            z.write(zeros)
        z.write(tail.getvalue())
    bomb = stream.getvalue()
    assert len(bomb) < 1 << 20
    await registry.create_model("bombs")
    try:
        await registry.upload("bombs", bomb, fmt=F.ARTIFACT_FORMAT_HLS4ML_ARCHIVE, chunk=256 * 1024)
    except grpc.aio.AioRpcError as err:
        assert_clean_error(err, grpc.StatusCode.INVALID_ARGUMENT, "expands")
    else:
        raise AssertionError("a decompression bomb was stored")
    assert registry.blob_files() == []
