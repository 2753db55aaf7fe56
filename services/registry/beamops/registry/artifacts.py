"""Where artifact bytes live: content-addressed blobs behind one small interface.

A blob's location is derived from its sha256 only (``ab/cd/abcd...``), never from anything a
client sends. Uploads are streamed into a temporary file while the sha256 is computed; the file
is fsynced and renamed into place only when the upload is complete and checked, so a crash
never leaves a half-written blob visible. Reads verify the sha256 again (DATA_LOSS on mismatch).

:class:`LocalArtifactStore` keeps blobs in a folder (the default). :class:`S3ArtifactStore`
keeps them in an S3-compatible bucket through boto3; it is written to the same interface but
UNTESTED here (no S3 server could be run on these machines).
"""

from __future__ import annotations

import abc
import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from beamops.files import fsync_dir
from beamops.runtime.errors import DataLoss, ResourceExhausted

log = logging.getLogger(__name__)

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
READ_CHUNK = 1024 * 1024


class PendingBlob:
    """An upload in progress: a local temporary file, its running sha256 and size."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.size = 0
        self._hash = hashlib.sha256()
        self._file: BinaryIO | None = open(path, "wb")

    def write(self, chunk: bytes) -> None:
        if self._file is None:
            raise RuntimeError("upload already closed")
        if self.size + len(chunk) > self.max_bytes:
            self.discard()
            raise ResourceExhausted(
                f"the artifact is larger than the limit of {self.max_bytes} bytes; ask an "
                "administrator to raise max_artifact_bytes or upload a smaller file"
            )
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    def close(self) -> str:
        """Flush and fsync the file; returns the sha256 of what was written."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
        return self.sha256

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.path.unlink(missing_ok=True)


class ArtifactStore(abc.ABC):
    """Content-addressed blob storage."""

    max_bytes: int

    @abc.abstractmethod
    def begin_upload(self) -> PendingBlob:
        """A temporary file to stream an upload into."""

    @abc.abstractmethod
    def commit(self, pending: PendingBlob) -> str:
        """Make a closed upload durable under its sha256 (idempotent); returns the sha256."""

    @abc.abstractmethod
    def exists(self, sha256: str) -> bool: ...

    def read(self, sha256: str, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        """The blob's bytes in chunks; raises DataLoss at the end if they do not hash to sha256."""
        digest = hashlib.sha256()
        for chunk in self._chunks(sha256, chunk_size):
            digest.update(chunk)
            yield chunk
        if digest.hexdigest() != sha256:
            raise DataLoss(f"the stored bytes of artifact sha256 {sha256} are corrupt (checksum mismatch)")

    def verify(self, sha256: str) -> None:
        """Raise DataLoss unless the stored blob exists and hashes to ``sha256``."""
        for _ in self.read(sha256):
            pass

    @abc.abstractmethod
    def _chunks(self, sha256: str, chunk_size: int) -> Iterator[bytes]:
        """The stored bytes as they are (unchecked); DataLoss if the blob is missing."""

    @abc.abstractmethod
    def delete(self, sha256: str) -> None: ...

    @abc.abstractmethod
    def cleanup(self, referenced: Iterable[str]) -> int:
        """Remove temporary files and blobs nobody references; returns how many were removed."""


class LocalArtifactStore(ArtifactStore):
    """Blobs in ``root/blobs/ab/cd/<sha256>``; uploads staged in ``root/tmp``."""

    def __init__(self, root: Path, max_bytes: int = 2 * 1024**3) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._blobs = self.root / "blobs"
        self._tmp = self.root / "tmp"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path_of(self, sha256: str) -> Path:
        if not SHA256_HEX.fullmatch(sha256):
            raise ValueError("not a sha256 hex digest")
        return self._blobs / sha256[:2] / sha256[2:4] / sha256

    def begin_upload(self) -> PendingBlob:
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="upload-")
        os.close(fd)
        return PendingBlob(Path(name), self.max_bytes)

    def commit(self, pending: PendingBlob) -> str:
        sha256 = pending.close()
        target = self.path_of(sha256)
        if target.exists():
            pending.discard()  # same content already stored
            return sha256
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(pending.path, target)
        fsync_dir(target.parent)
        return sha256

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    def _chunks(self, sha256: str, chunk_size: int) -> Iterator[bytes]:
        try:
            handle = open(self.path_of(sha256), "rb")
        except FileNotFoundError:
            raise DataLoss(f"the bytes of artifact sha256 {sha256} are missing from storage") from None
        with handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def delete(self, sha256: str) -> None:
        self.path_of(sha256).unlink(missing_ok=True)

    def blobs(self) -> list[str]:
        return [p.name for p in self._blobs.glob("*/*/*") if SHA256_HEX.fullmatch(p.name)]

    def cleanup(self, referenced: Iterable[str]) -> int:
        removed = 0
        for leftover in self._tmp.iterdir():
            leftover.unlink(missing_ok=True)
            removed += 1
        keep = set(referenced)
        for sha256 in self.blobs():
            if sha256 not in keep:
                self.delete(sha256)
                removed += 1
        if removed:
            log.info("removed %d orphaned artifact files", removed)
        return removed


class S3ArtifactStore(ArtifactStore):
    """Blobs as objects ``<prefix>blobs/<sha256>`` in an S3-compatible bucket (boto3).

    UNTESTED: no S3 server runs on the development machines; boto3 is imported lazily and is
    not a dependency of beamops. Uploads are staged in a local temporary folder, hashed and
    checked there, then uploaded, so an object only appears when complete.
    """

    def __init__(self, bucket: str, staging_dir: Path, *, prefix: str = "", endpoint_url: str | None = None,
                 max_bytes: int = 2 * 1024**3, client=None) -> None:
        if client is None:
            import boto3  # noqa: PLC0415 - optional dependency

            client = boto3.client("s3", endpoint_url=endpoint_url)
        self._s3 = client
        self.bucket = bucket
        self.prefix = prefix
        self.max_bytes = max_bytes
        self._tmp = Path(staging_dir)
        self._tmp.mkdir(parents=True, exist_ok=True)

    def _key(self, sha256: str) -> str:
        if not SHA256_HEX.fullmatch(sha256):
            raise ValueError("not a sha256 hex digest")
        return f"{self.prefix}blobs/{sha256}"

    def begin_upload(self) -> PendingBlob:
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="upload-")
        os.close(fd)
        return PendingBlob(Path(name), self.max_bytes)

    def commit(self, pending: PendingBlob) -> str:
        sha256 = pending.close()
        try:
            if not self.exists(sha256):
                self._s3.upload_file(str(pending.path), self.bucket, self._key(sha256),
                                     ExtraArgs={"Metadata": {"sha256": sha256}})
        finally:
            pending.discard()
        return sha256

    def exists(self, sha256: str) -> bool:
        try:
            self._s3.head_object(Bucket=self.bucket, Key=self._key(sha256))
            return True
        except Exception:  # botocore ClientError 404
            return False

    def _chunks(self, sha256: str, chunk_size: int) -> Iterator[bytes]:
        body = self._s3.get_object(Bucket=self.bucket, Key=self._key(sha256))["Body"]
        yield from body.iter_chunks(chunk_size)

    def delete(self, sha256: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=self._key(sha256))

    def cleanup(self, referenced: Iterable[str]) -> int:
        removed = 0
        for leftover in self._tmp.iterdir():
            leftover.unlink(missing_ok=True)
            removed += 1
        keep = set(referenced)
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}blobs/"):
            for item in page.get("Contents", []):
                sha256 = item["Key"].rsplit("/", 1)[-1]
                if SHA256_HEX.fullmatch(sha256) and sha256 not in keep:
                    self.delete(sha256)
                    removed += 1
        return removed
