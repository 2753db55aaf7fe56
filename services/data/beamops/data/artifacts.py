"""The service's own files (Parquet conversions): content-addressed, written durably.

A file is written to ``<root>/tmp/`` first, then hashed, fsynced, and renamed to
``<root>/parquet/<ab>/<sha256>.parquet`` (the folder fsynced too), so a crash never leaves a
half-written artifact under its final name. Callers refer to an artifact by the URL
``artifact:sha256:<hex>``; the path never leaves the service. Leftover temporary files are
removed at start.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

from beamops.files import fsync_dir
from beamops.runtime.errors import DataLoss

from .hashing import sha256_local

URL_PREFIX = "artifact:sha256:"
_SHA = re.compile(r"^[0-9a-f]{64}$")


def artifact_url(sha256: str) -> str:
    return URL_PREFIX + sha256


def sha256_of_url(url: str) -> str | None:
    """The sha256 an ``artifact:sha256:<hex>`` URL names, or None for any other URL."""
    if not url.startswith(URL_PREFIX):
        return None
    sha = url[len(URL_PREFIX):]
    return sha if _SHA.match(sha) else None


class ArtifactArea:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def temp_path(self, suffix: str = ".parquet") -> Path:
        """A fresh temporary path to write to (then :meth:`commit` or :meth:`discard` it)."""
        return self._tmp / f"{uuid.uuid4().hex}{suffix}"

    def commit(self, tmp: Path) -> tuple[str, int]:
        """Hash, fsync and move ``tmp`` to its content address; returns (sha256, size)."""
        sha, size = sha256_local(str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        final = self.path_for(sha)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)  # the same content may exist already: same bytes, same name
        fsync_dir(final.parent)
        return sha, size

    @staticmethod
    def discard(tmp: Path) -> None:
        tmp.unlink(missing_ok=True)

    def path_for(self, sha256: str) -> Path:
        return self.root / "parquet" / sha256[:2] / f"{sha256}.parquet"

    def existing_path(self, url: str) -> Path:
        """The path of the artifact ``url`` names; DATA_LOSS if it is gone."""
        sha = sha256_of_url(url)
        path = self.path_for(sha) if sha else None
        if path is None or not path.is_file():
            raise DataLoss(f"the service's file {url!r} is missing from its artifact store")
        return path

    def cleanup(self) -> int:
        """Remove leftover temporary files (run at start); returns how many."""
        removed = 0
        for leftover in self._tmp.glob("*"):
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed
