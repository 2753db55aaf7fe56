"""Parsing and checking of data sources: paths under data roots, root:// and https:// URLs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from beamops.data.netguard import host_allowed
from beamops.data.sources import SourceKind, SourcePolicy, SourceResolver
from beamops.runtime.errors import InvalidArgument, NotFound, PermissionDenied


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "mc").mkdir(parents=True)
    b.mkdir()
    (a / "one.root").write_bytes(b"1")
    (a / "mc" / "x_1.root").write_bytes(b"x1")
    (a / "mc" / "x_2.root").write_bytes(b"x2")
    (a / "mc" / "notes.txt").write_text("not data")
    (b / "two.root").write_bytes(b"2")
    outside = tmp_path / "outside.root"
    outside.write_bytes(b"secret")
    os.symlink(outside, a / "escape.root")
    os.symlink(tmp_path, a / "updir")
    return a, b


def resolver(roots, hosts=("127.0.0.1:1094", "eospublic.cern.ch", "*.example.org"), http=False):
    return SourceResolver(SourcePolicy(list(roots), list(hosts), http))


def test_relative_paths_resolve_under_the_first_root_that_holds_them(roots):
    r = resolver(roots)
    (one,) = r.resolve("one.root")
    (two,) = r.resolve("two.root")
    assert (one.url, one.kind) == ("one.root", SourceKind.LOCAL)
    assert Path(one.open_path) == (roots[0] / "one.root").resolve()
    assert Path(two.open_path) == (roots[1] / "two.root").resolve()


def test_globs_and_directories_expand_to_sorted_root_files(roots):
    r = resolver(roots)
    assert [f.url for f in r.resolve("mc/x_*.root")] == ["mc/x_1.root", "mc/x_2.root"]
    assert [f.url for f in r.resolve("mc")] == ["mc/x_1.root", "mc/x_2.root"]
    assert [f.url for f in r.resolve_all(["mc/x_2.root", "one.root", "mc/*.root"])] == [
        "mc/x_1.root", "mc/x_2.root", "one.root"]


@pytest.mark.parametrize("source", [
    "../b/two.root", "mc/../../outside.root", "/etc/passwd", "file:///etc/passwd", "~/x.root",
])
def test_traversal_and_absolute_paths_are_permission_denied(roots, source):
    with pytest.raises(PermissionDenied) as err:
        resolver(roots).resolve(source)
    assert str(roots[0]) not in err.value.message


def test_symlinks_leading_out_of_a_root_are_refused(roots):
    r = resolver(roots)
    with pytest.raises(PermissionDenied, match="outside the data roots"):
        r.resolve("escape.root")
    with pytest.raises(PermissionDenied):
        r.resolve("updir/outside.root")


def test_a_path_through_a_link_out_is_refused_whether_or_not_its_target_exists(roots):
    """PERMISSION_DENIED for both: the answer must not tell which files exist outside the root."""
    r = resolver(roots)
    for source in ("updir/outside.root", "updir/no-such-file.root", "updir/b/two.root", "updir/nope/x.root"):
        with pytest.raises(PermissionDenied, match="outside the data roots"):
            r.resolve(source)
    os.symlink(roots[0].parent / "gone.root", roots[0] / "dangling.root")
    with pytest.raises(PermissionDenied, match="outside the data roots"):
        r.resolve("dangling.root")


def test_globs_and_directories_leave_out_links_that_lead_out(roots):
    """One link leading out does not make every listing that matches it fail: it is not listed."""
    r = resolver(roots)
    assert [f.url for f in r.resolve("*.root")] == ["one.root"]  # escape.root is left out
    os.symlink(roots[0].parent / "outside.root", roots[0] / "mc" / "x_3.root")
    assert [f.url for f in r.resolve("mc/x_*.root")] == ["mc/x_1.root", "mc/x_2.root"]
    assert [f.url for f in r.resolve("mc")] == ["mc/x_1.root", "mc/x_2.root"]
    for source in ("updir/*.root", "updir/b/*.root", "updir/nothing*.root"):  # listings outside: nothing
        with pytest.raises(NotFound, match="never listed"):
            r.resolve(source)


def test_missing_files_are_not_found(roots):
    with pytest.raises(NotFound, match="'nope.root' not found"):
        resolver(roots).resolve("nope.root")
    with pytest.raises(NotFound):
        resolver(roots).resolve("mc/y_*.root")


@pytest.mark.parametrize("source,error", [
    ("root://evil.org//data/x.root", PermissionDenied),
    ("root://127.0.0.1:2000//data/x.root", PermissionDenied),
    ("https://cern.ch.evil.org/x.root", PermissionDenied),
    ("https://example.org/x.root", PermissionDenied),
    ("ftp://eospublic.cern.ch/x.root", InvalidArgument),
    ("s3://bucket/x.root", InvalidArgument),
    ("http://eospublic.cern.ch/x.root", InvalidArgument),
    ("root://user:pw@eospublic.cern.ch//x.root", InvalidArgument),
    ("https://eospublic.cern.ch/x_*.root", InvalidArgument),
    ("", InvalidArgument),
])
def test_remote_sources_are_refused_before_any_connection(roots, source, error):
    with pytest.raises(error):
        resolver(roots).resolve(source)


def test_allowed_remote_sources_are_normalised(roots):
    r = resolver(roots)
    (x,) = r.resolve("root://127.0.0.1:1094//eos/data/x.root")
    assert (x.url, x.kind) == ("root://127.0.0.1:1094//eos/data/x.root", SourceKind.XROOTD)
    (h,) = r.resolve("https://EOSPUBLIC.cern.ch/data/x.root")
    assert (h.url, h.kind) == ("https://eospublic.cern.ch/data/x.root", SourceKind.HTTP)
    (w,) = r.resolve("https://data.example.org/x.root")
    assert w.kind is SourceKind.HTTP
    (p,) = resolver(roots, http=True).resolve("http://eospublic.cern.ch/x.root")
    assert p.kind is SourceKind.HTTP


def test_host_allowlist_matching():
    assert host_allowed("127.0.0.1", 1094, ["127.0.0.1:1094"])
    assert not host_allowed("127.0.0.1", 1095, ["127.0.0.1:1094"])
    assert host_allowed("127.0.0.1", 1095, ["127.0.0.1"])
    assert host_allowed("a.cern.ch", None, ["*.cern.ch"])
    assert not host_allowed("cern.ch", None, ["*.cern.ch"])
    assert not host_allowed("evilcern.ch", None, ["*.cern.ch"])


def test_no_data_roots_refuses_local_paths():
    with pytest.raises(PermissionDenied, match="no data roots"):
        SourceResolver(SourcePolicy([])).resolve("x.root")
