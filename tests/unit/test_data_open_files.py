"""Open ROOT files kept between reads (rootio.OpenFiles), on the real vendored ROOT files: a file
is reused by the next reader, never lent to two at once, opened afresh when it changed on disk,
dropped after a failed read, and at most ``max_idle`` stay open."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from beamops.data import rootio
from beamops.data.sources import SourceFileRef, SourceKind
from tests.real_data import REAL_DATA


@pytest.fixture
def zmumu(tmp_path: Path) -> SourceFileRef:
    path = tmp_path / "zmumu.root"
    shutil.copy(REAL_DATA / "uproot-Zmumu.root", path)
    return SourceFileRef("zmumu.root", SourceKind.LOCAL, str(path))


def _read(pool: rootio.OpenFiles, ref: SourceFileRef) -> list[float]:
    chunks = rootio.iterate(ref, "events", ["E1"], 0, 5, 100, open_files=pool)
    return [float(x) for _, arrays in chunks for x in arrays["E1"]]


def test_the_next_read_reuses_the_open_file_with_the_same_values(zmumu):
    pool = rootio.OpenFiles()
    with pool.borrow(zmumu) as first:
        pass
    with pool.borrow(zmumu) as second:
        assert second is first
    fresh = _read(rootio.OpenFiles(max_idle=0), zmumu)
    assert _read(pool, zmumu) == _read(pool, zmumu) == fresh and len(fresh) == 5
    pool.close()


def test_a_file_is_lent_to_one_reader_at_a_time(zmumu):
    pool = rootio.OpenFiles()
    with pool.borrow(zmumu) as one, pool.borrow(zmumu) as two:
        assert one is not two
    seen, barrier = [], threading.Barrier(4)

    def reader():
        with pool.borrow(zmumu) as file:
            barrier.wait(10)  # all four hold a file at once
            seen.append(id(file))

    threads = [threading.Thread(target=reader) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(set(seen)) == 4
    pool.close()


def test_a_changed_file_is_opened_afresh(zmumu):
    pool = rootio.OpenFiles()
    with pool.borrow(zmumu) as before:
        pass
    stat = os.stat(zmumu.open_path)
    os.utime(zmumu.open_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # rewritten, say
    with pool.borrow(zmumu) as after:
        assert after is not before
    pool.close()


def test_a_failed_read_does_not_give_its_file_back(zmumu):
    pool = rootio.OpenFiles()
    with pytest.raises(RuntimeError):
        with pool.borrow(zmumu) as broken:
            raise RuntimeError("read failed half way")
    with pool.borrow(zmumu) as next_one:
        assert next_one is not broken
    pool.close()


def test_at_most_max_idle_files_stay_open(zmumu, tmp_path):
    pool = rootio.OpenFiles(max_idle=2)
    refs = [zmumu]
    for i in range(2):
        copy = tmp_path / f"copy{i}.root"
        shutil.copy(zmumu.open_path, copy)
        refs.append(SourceFileRef(copy.name, SourceKind.LOCAL, str(copy)))
    opened = {}
    for ref in refs:
        with pool.borrow(ref) as file:
            opened[ref.url] = file
    with pool.borrow(refs[0]) as again:  # the oldest was closed to keep two
        assert again is not opened[refs[0].url]
    with pool.borrow(refs[2]) as again:
        assert again is opened[refs[2].url]
    pool.close()
