"""Durable writes: the old content or the new, never half; nothing left behind on failure."""

from __future__ import annotations

import pytest

from beamops.files import write_atomically


def test_write_replaces_and_sets_the_mode(tmp_path):
    path = tmp_path / "index.json"
    path.write_bytes(b"old")
    write_atomically(path, b"new", mode=0o600)
    assert path.read_bytes() == b"new" and path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "index.json"
    path.write_bytes(b"old")

    def broken_replace(*args):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", broken_replace)
    with pytest.raises(OSError):
        write_atomically(path, b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json"]
