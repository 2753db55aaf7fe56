"""File hashes (streamed, cached by path/size/mtime) and content-derived version ids."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from beamops.data.hashing import FileHasher, content_hash, sha256_local, version_id_for
from beamops.data.sources import SourceFileRef, SourceKind
from beamops.data.store import SqlDataStore


def test_streamed_sha256_equals_hashlib(tmp_path: Path):
    path = tmp_path / "f.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    path.write_bytes(data)
    assert sha256_local(str(path), 1024 * 1024) == (hashlib.sha256(data).hexdigest(), len(data))


class CountingStore(SqlDataStore):
    def __init__(self, path):
        super().__init__(path)
        self.puts = 0

    def put_hash(self, *args):
        self.puts += 1
        super().put_hash(*args)


def test_cache_is_used_until_the_file_changes(tmp_path: Path):
    store = CountingStore(tmp_path / "data.db")
    path = tmp_path / "f.root"
    path.write_bytes(b"a" * 1000)
    ref = SourceFileRef("f.root", SourceKind.LOCAL, str(path))
    hasher = FileHasher(store)
    first = hasher.digest(ref)
    second = hasher.digest(ref)
    assert not first.from_cache and second.from_cache and first.sha256 == second.sha256
    path.write_bytes(b"a" * 999 + b"b")
    third = hasher.digest(ref)
    assert not third.from_cache and third.sha256 != first.sha256
    assert third.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert store.puts == 2


def test_version_ids_are_deterministic_and_sensitive_to_every_input():
    base = {"kind": "files", "files": ["aa", "bb"], "tree": "events", "branches": ["x"],
            "cut": "x > 1", "entry_range": [0, 10]}
    same = dict(reversed(list(base.items())))
    assert content_hash(base) == content_hash(same)
    vid = version_id_for(content_hash(base))
    assert vid.startswith("dsv-") and len(vid) == 20
    for key, value in [("files", ["aa", "bc"]), ("tree", "t"), ("branches", ["y"]),
                       ("cut", "x > 2"), ("entry_range", [0, 11])]:
        assert content_hash({**base, key: value}) != content_hash(base)
