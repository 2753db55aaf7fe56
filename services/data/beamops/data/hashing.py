"""Content hashes: sha256 of files (streamed, cached for unchanged local files) and the
content-derived id of a dataset version."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Protocol

from beamops.runtime.errors import NotFound

from .rootio import errors_for
from .sources import SourceFileRef

MIN_CHUNK = 1024 * 1024


class HashCache(Protocol):
    """sha256 of local files keyed by (real path, size, mtime_ns)."""

    def get_hash(self, path: str, size: int, mtime_ns: int) -> str | None: ...

    def put_hash(self, path: str, size: int, mtime_ns: int, sha256: str) -> None: ...


@dataclass(frozen=True)
class FileDigest:
    sha256: str
    size_bytes: int
    from_cache: bool = False


def sha256_stream(read_into, chunk_bytes: int) -> tuple[str, int]:
    """sha256 over a stream read with ``read_into(memoryview) -> int`` (0 at the end)."""
    digest = hashlib.sha256()
    buffer = bytearray(max(chunk_bytes, MIN_CHUNK))
    view = memoryview(buffer)
    total = 0
    while True:
        n = read_into(view)
        if not n:
            break
        digest.update(view[:n])
        total += n
    return digest.hexdigest(), total


def sha256_local(path: str, chunk_bytes: int = 4 * MIN_CHUNK) -> tuple[str, int]:
    with open(path, "rb", buffering=0) as f:
        return sha256_stream(f.readinto, chunk_bytes)


class FileHasher:
    """Hashes files: local ones through the cache, remote ones by streaming them."""

    def __init__(self, cache: HashCache, chunk_bytes: int = 4 * MIN_CHUNK,
                 timeout_s: float = 30.0) -> None:
        self._cache = cache
        self._chunk = max(chunk_bytes, MIN_CHUNK)
        self._timeout = timeout_s

    def digest(self, ref: SourceFileRef) -> FileDigest:
        if ref.is_local:
            return self._local(ref)
        return self._remote(ref)

    def local_stat(self, ref: SourceFileRef) -> tuple[int, int]:
        try:
            st = os.stat(ref.open_path)
        except FileNotFoundError:
            raise NotFound(f"file {ref.url!r} not found in the data roots") from None
        return st.st_size, st.st_mtime_ns

    def _local(self, ref: SourceFileRef) -> FileDigest:
        size, mtime_ns = self.local_stat(ref)
        cached = self._cache.get_hash(ref.open_path, size, mtime_ns)
        if cached:
            return FileDigest(cached, size, from_cache=True)
        with errors_for(ref):
            sha, total = sha256_local(ref.open_path, self._chunk)
        new_size, new_mtime = self.local_stat(ref)
        if (new_size, new_mtime) == (size, mtime_ns) == (total, mtime_ns):
            self._cache.put_hash(ref.open_path, size, mtime_ns, sha)
        return FileDigest(sha, total)

    def _remote(self, ref: SourceFileRef) -> FileDigest:
        import fsspec  # imported here: only remote sources need it

        with errors_for(ref):
            kwargs: dict[str, Any] = ref.check_connection()  # SSRF guard, see netguard.py
            if ref.open_path.startswith(("http://", "https://")):
                kwargs["block_size"] = 0  # stream the whole body, no range requests
            with fsspec.open(ref.open_path, "rb", **kwargs) as f:
                digest = hashlib.sha256()
                total = 0
                while True:
                    chunk = f.read(self._chunk)
                    if not chunk:
                        break
                    digest.update(chunk)
                    total += len(chunk)
            return FileDigest(digest.hexdigest(), total)


def canonical_json(payload: Any) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def content_hash(payload: Any) -> str:
    """sha256 hex of the canonical JSON of ``payload``."""
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def version_id_for(content: str) -> str:
    return "dsv-" + content[:16]
