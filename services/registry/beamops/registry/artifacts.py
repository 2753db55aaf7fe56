"""Where artifact bytes live: content-addressed blobs behind one small interface.

A blob's location is derived from its sha256 only, never from anything a client sends. Every
upload is streamed into a local staging file while its sha256 and size are computed; only a
complete, checked file is made visible (renamed into place, or sent to the object store), so a
crash or a bad upload never leaves a half-written blob. Reads verify the sha256 again, in one
place (:meth:`ArtifactStore.read`): DATA_LOSS on mismatch, whatever the backend.

:class:`LocalArtifactStore` keeps blobs in a folder (the default). :class:`S3ArtifactStore`
keeps them as objects in an S3-compatible bucket through boto3 (tested against SeaweedFS, see
services/registry/README.md; its ``s3://`` location is parsed in :mod:`.s3_location`).
:func:`artifact_store_from` picks one from the settings.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterable, Iterator

from beamops.files import fsync_dir
from beamops.runtime.errors import DataLoss, FailedPrecondition, ResourceExhausted, Unavailable

from .s3_location import S3Location

if TYPE_CHECKING:
    from .settings import RegistrySettings

log = logging.getLogger(__name__)

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
READ_CHUNK = 1024 * 1024
DEFAULT_MAX_BYTES = 2 * 1024**3


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
    """Content-addressed blob storage; uploads are staged in a local folder first."""

    max_bytes: int
    staging_dir: Path

    def begin_upload(self) -> PendingBlob:
        """A temporary file to stream an upload into."""
        fd, name = tempfile.mkstemp(dir=self.staging_dir, prefix="upload-")
        os.close(fd)
        return PendingBlob(Path(name), self.max_bytes)

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

    def read_verified(self, sha256: str, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        """Checks the whole blob first (DataLoss before any byte is handed out), then returns
        an iterator over its bytes (read a second time: cheap for a local file just read)."""
        self.verify(sha256)
        return self.read(sha256, chunk_size)

    @abc.abstractmethod
    def _chunks(self, sha256: str, chunk_size: int) -> Iterator[bytes]:
        """The stored bytes as they are (unchecked); DataLoss if the blob is missing."""

    @abc.abstractmethod
    def delete(self, sha256: str) -> None: ...

    @abc.abstractmethod
    def blobs(self) -> list[str]:
        """The sha256 of every stored blob."""

    @abc.abstractmethod
    def cleanup(self, referenced: Iterable[str]) -> int:
        """Remove staging leftovers and blobs nobody references; returns how many were removed."""

    def _remove_staged(self) -> int:
        """Remove what interrupted uploads left in the staging folder (run at start only)."""
        removed = 0
        for leftover in self.staging_dir.iterdir():
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed


class LocalArtifactStore(ArtifactStore):
    """Blobs in ``root/blobs/ab/cd/<sha256>``; uploads staged in ``root/tmp``."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._blobs = self.root / "blobs"
        self.staging_dir = self.root / "tmp"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self.staging_dir.mkdir(parents=True, exist_ok=True)

    def path_of(self, sha256: str) -> Path:
        if not SHA256_HEX.fullmatch(sha256):
            raise ValueError("not a sha256 hex digest")
        return self._blobs / sha256[:2] / sha256[2:4] / sha256

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
        removed = self._remove_staged()
        keep = set(referenced)
        for sha256 in self.blobs():
            if sha256 not in keep:
                self.delete(sha256)
                removed += 1
        if removed:
            log.info("removed %d orphaned artifact files", removed)
        return removed


# ------------------------------------------------------------------------------------ S3


class S3ArtifactStore(ArtifactStore):
    """Blobs as objects ``<prefix>blobs/<sha256>`` in an S3-compatible bucket, through boto3.

    An upload is staged in a local file and hashed there, exactly as for the local store; only
    then is the complete file sent (one PUT, or a multipart upload that S3 makes visible only
    when it is completed), and its stored size checked, so nobody ever sees a partial object.
    Credentials come from boto3's own chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN, ~/.aws/, instance roles). The bucket must exist: :meth:`check_bucket`.
    """

    # Larger files go as multipart uploads of this part size (visible only once completed).
    MULTIPART_BYTES = 64 * 1024**2

    def __init__(self, bucket: str, staging_dir: Path, *, prefix: str = "", endpoint_url: str | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES, client=None) -> None:
        if client is None:
            client = _s3_client(endpoint_url or None)
        self._s3 = client
        self.bucket = bucket
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.staging_dir = Path(staging_dir)
        self.staging_dir.mkdir(parents=True, exist_ok=True)

    @property
    def _blobs_prefix(self) -> str:
        return f"{self.prefix}blobs/"

    def key_of(self, sha256: str) -> str:
        if not SHA256_HEX.fullmatch(sha256):
            raise ValueError("not a sha256 hex digest")
        return f"{self._blobs_prefix}{sha256}"

    def check_bucket(self) -> None:
        """Fail clearly at start when the bucket is missing or the credentials do not open it."""
        with self._errors("open the artifact bucket"):
            self._s3.head_bucket(Bucket=self.bucket)

    def commit(self, pending: PendingBlob) -> str:
        sha256 = pending.close()
        try:
            if not self.exists(sha256):
                self._upload(pending, sha256)
        finally:
            pending.discard()
        return sha256

    def _upload(self, pending: PendingBlob, sha256: str) -> None:
        from boto3.s3.transfer import TransferConfig  # noqa: PLC0415 - optional dependency

        key = self.key_of(sha256)
        config = TransferConfig(multipart_threshold=self.MULTIPART_BYTES, multipart_chunksize=self.MULTIPART_BYTES,
                                use_threads=False)
        with self._errors("store the artifact"):
            self._s3.upload_file(str(pending.path), self.bucket, key, Config=config,
                                 ExtraArgs={"Metadata": {"sha256": sha256}})
            stored = self._s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
        if stored != pending.size:
            self.delete(sha256)
            raise DataLoss(f"the object store kept {stored} bytes of the {pending.size} sent for artifact "
                           f"sha256 {sha256}; nothing was stored, upload it again")

    def exists(self, sha256: str) -> bool:
        with self._errors("look up the artifact"):
            try:
                self._s3.head_object(Bucket=self.bucket, Key=self.key_of(sha256))
                return True
            except self._s3.exceptions.ClientError as err:
                if _error_code(err) in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise

    def _chunks(self, sha256: str, chunk_size: int) -> Iterator[bytes]:
        with self._errors("read the artifact"):
            try:
                body = self._s3.get_object(Bucket=self.bucket, Key=self.key_of(sha256))["Body"]
            except self._s3.exceptions.ClientError as err:
                if _error_code(err) in ("404", "NoSuchKey", "NotFound"):
                    raise DataLoss(f"the bytes of artifact sha256 {sha256} are missing from storage") from None
                raise
            with contextlib.closing(body):
                yield from body.iter_chunks(chunk_size)

    def read_verified(self, sha256: str, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        """One GET: the object is copied into the staging folder while it is hashed, checked,
        and then streamed from that copy (removed once read or dropped; one never read at all is
        removed with the other staging leftovers at the next start)."""
        fd, name = tempfile.mkstemp(dir=self.staging_dir, prefix="download-")
        copy = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in self.read(sha256):  # raises DataLoss on a mismatch
                    out.write(chunk)
        except BaseException:
            copy.unlink(missing_ok=True)
            raise
        return _chunks_then_remove(copy, chunk_size)

    def delete(self, sha256: str) -> None:
        with self._errors("delete the artifact"):
            self._s3.delete_object(Bucket=self.bucket, Key=self.key_of(sha256))

    def blobs(self) -> list[str]:
        found = []
        with self._errors("list the artifacts"):
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                           Prefix=self._blobs_prefix):
                for item in page.get("Contents", []):
                    name = item["Key"][len(self._blobs_prefix):]
                    if SHA256_HEX.fullmatch(name):
                        found.append(name)
        return found

    def cleanup(self, referenced: Iterable[str]) -> int:
        removed = self._remove_staged()
        keep = set(referenced)
        with self._errors("clean up the artifact bucket"):
            # Multipart uploads a crash left unfinished: invisible, but they hold storage.
            for page in self._s3.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket,
                                                                                  Prefix=self._blobs_prefix):
                for upload in page.get("Uploads", []):
                    self._s3.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                    UploadId=upload["UploadId"])
                    removed += 1
            orphans = [self.key_of(sha256) for sha256 in self.blobs() if sha256 not in keep]
            for start in range(0, len(orphans), 1000):  # DeleteObjects takes at most 1000 keys
                batch = orphans[start:start + 1000]
                answer = self._s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
                if answer.get("Errors"):
                    raise Unavailable(f"the object store refused to delete {len(answer['Errors'])} orphaned "
                                      "artifacts; try again later")
                removed += len(batch)
        if removed:
            log.info("removed %d orphaned artifact objects and staging files", removed)
        return removed

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn boto3's errors into domain errors with a message for the caller (no endpoint)."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError  # noqa: PLC0415

        try:
            yield
        except NoCredentialsError:
            raise FailedPrecondition(
                f"the registry could not {action}: it has no S3 credentials (set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY in its environment)") from None
        except ClientError as err:
            code = _error_code(err)
            log.warning("S3 %s failed on bucket %s: %s", action, self.bucket, err)
            if code in ("404", "NoSuchBucket"):
                raise FailedPrecondition(
                    f"the artifact bucket '{self.bucket}' does not exist; create it (the registry does not "
                    "create buckets) or correct artifact_store", bucket=self.bucket) from None
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"):
                raise FailedPrecondition(
                    f"the object store refused to let the registry {action} in bucket '{self.bucket}' ({code}); "
                    "check the registry's S3 credentials and their permissions", bucket=self.bucket) from None
            raise Unavailable(f"the object store failed to {action} ({code or 'no error code'}); try again "
                              "later") from None
        except BotoCoreError as err:
            log.warning("S3 %s failed on bucket %s: %s", action, self.bucket, err)
            raise Unavailable(f"the object store could not be reached to {action}; try again later") from None


def _error_code(err) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _s3_client(endpoint_url: str | None):
    try:
        import boto3  # noqa: PLC0415 - only needed when artifacts live in S3
        from botocore.config import Config  # noqa: PLC0415
    except ImportError:  # pragma: no cover - boto3 is a dependency of beamops
        raise FailedPrecondition("artifact_store is an s3:// URL but boto3 is not installed") from None
    config = Config(
        retries={"mode": "standard", "max_attempts": 4}, connect_timeout=10, read_timeout=60,
        # S3-compatible servers (SeaweedFS, MinIO, Ceph) are addressed by path, not by DNS name.
        s3={"addressing_style": "path"} if endpoint_url else {},
    )
    # A session of its own: credentials are read from the environment now, not cached process-wide.
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)


def artifact_store_from(settings: RegistrySettings) -> ArtifactStore:
    """The artifact store the settings select: the local folder, or an S3 bucket that must exist."""
    if not settings.artifact_store:
        return LocalArtifactStore(settings.resolved_artifacts_dir, settings.max_artifact_bytes)
    location = S3Location.parse(settings.artifact_store)
    store = S3ArtifactStore(location.bucket, settings.resolved_artifacts_dir / "tmp", prefix=location.prefix,
                            endpoint_url=settings.s3_endpoint_url or None, max_bytes=settings.max_artifact_bytes)
    store.check_bucket()
    log.info("artifacts in %s", location)
    return store


def _chunks_then_remove(path: Path, chunk_size: int) -> Iterator[bytes]:
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(chunk_size):
                yield chunk
    finally:
        path.unlink(missing_ok=True)
