"""Where dataset files come from: parse a source string into files the service may read.

A source string is one of
  - a path RELATIVE to one of the configured data roots ("mc/signal.root", "mc/*.root", "mc/"),
  - an XRootD URL "root://host[:port]//path/file.root", also a glob ("root://host//mc/*.root")
    or a directory ("root://host//mc/": every "*.root" in it), listed on the server,
  - an HTTPS URL "https://host/path/file.root" (plain http:// only when settings allow it).

Everything is checked here, before any file is opened or any connection made: absolute paths,
``..`` segments, ``file://`` URLs and symlinks that leave a data root are PERMISSION_DENIED, a host
that is not on the allowlist is PERMISSION_DENIED, an unknown scheme or credentials in a URL are
INVALID_ARGUMENT, a local file that does not exist is NOT_FOUND. Error messages quote the source
string as the caller wrote it, never the server-side path.

Symbolic links: a path is checked against its root before anyone asks whether it exists, so a
path through a link that leaves the root is PERMISSION_DENIED whether or not its target exists
(no answer tells which files exist outside). A glob or a directory lists only what is inside the
root: a link in it that leads out is left out (and logged), not an error for the whole listing.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence
from urllib.parse import unquote, urlsplit

from beamops.runtime.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable

from .netguard import AddressGuard, host_allowed

GLOB_CHARS = set("*?[")
MAX_SOURCE_LENGTH = 4096
MAX_LISTED_FILES = 100_000  # files one glob or directory may name

log = logging.getLogger("beamops.data.sources")


class SourceKind(str, Enum):
    LOCAL = "local"
    XROOTD = "xrootd"
    HTTP = "http"


@dataclass(frozen=True)
class SourceFileRef:
    """One concrete file to read.

    ``url`` is the normalised, caller-visible name (data-root-relative path or remote URL); it is
    what is stored and shown. ``open_path`` is what the reader opens (the real local path, or the
    URL); it never leaves the service.
    """

    url: str
    kind: SourceKind
    open_path: str
    # Remote files: checks the host's addresses before (and, for HTTP, during) every connection.
    guard: AddressGuard | None = field(default=None, compare=False, repr=False)

    def check_connection(self) -> dict:
        """For a remote file: refuse a host whose addresses are not allowed (before connecting);
        return the fsspec options that keep checking every HTTP connection and redirect."""
        if self.is_local:
            return {}
        if self.guard is None:
            raise PermissionDenied(f"remote source {self.url!r} has no address policy")
        self.guard.check_url(self.open_path, what=f" of source {self.url!r}")
        return dict(self.guard.http_options) if self.kind is SourceKind.HTTP else {}

    @property
    def is_local(self) -> bool:
        return self.kind is SourceKind.LOCAL


@dataclass(frozen=True)
class SourcePolicy:
    """What sources are allowed: the data roots, the remote host allowlist, plain http or not."""

    data_roots: Sequence[Path]
    remote_hosts: Sequence[str] = ()
    allow_http: bool = False


class SourceResolver:
    """Turns source strings into :class:`SourceFileRef` lists under a :class:`SourcePolicy`."""

    def __init__(self, policy: SourcePolicy) -> None:
        self._policy = policy
        self._roots = [Path(root).resolve() for root in policy.data_roots]
        self._guard = AddressGuard(tuple(policy.remote_hosts))

    def resolve_all(self, sources: Sequence[str]) -> list[SourceFileRef]:
        """Every file of every source, de-duplicated, sorted by normalised URL."""
        if not sources:
            raise InvalidArgument("give at least one source file or URL", field="source.urls")
        files: dict[str, SourceFileRef] = {}
        for source in sources:
            for ref in self.resolve(source):
                files.setdefault(ref.url, ref)
        return [files[url] for url in sorted(files)]

    def resolve(self, source: str) -> list[SourceFileRef]:
        """The files one source string names (several for a glob or a directory)."""
        self.check_syntax(source)
        scheme = urlsplit(source).scheme.lower() if "://" in source else ""
        if scheme == "":
            return self._resolve_local(source)
        return self._resolve_remote(source)

    def check_syntax(self, source: str) -> None:
        """Refuse what is never allowed, without touching the file system or the network."""
        if not source or not source.strip():
            raise InvalidArgument("a source is empty", field="source.urls")
        if len(source) > MAX_SOURCE_LENGTH or not source.isprintable():
            raise InvalidArgument(
                "a source is too long or has unprintable characters", field="source.urls"
            )
        if _hidden_traversal(source):
            raise PermissionDenied(
                f"source {source!r} contains '..' (possibly percent-encoded); paths must stay in a data root")
        if "://" not in source:
            if source.startswith("/") or source.startswith("~") or Path(source).is_absolute():
                raise PermissionDenied(  # the path is not echoed: it may be a server path
                    "a source is an absolute path; give a path relative to a data root "
                    "or a root:// / https:// URL"
                )
            if ".." in PurePosixPath(source).parts or ".." in source.split("\\"):
                raise PermissionDenied(f"source {source!r} contains '..'; paths must stay in a data root")
            return
        parts = urlsplit(source)
        scheme = parts.scheme.lower()
        if scheme == "file":
            raise PermissionDenied(
                "file:// URLs are not accepted as sources; give a path relative to a data root"
            )
        if scheme not in ("root", "https", "http"):
            raise InvalidArgument(
                f"source {source!r} has an unknown scheme {scheme!r}; use a data-root-relative path, "
                "root:// or https://",
                field="source.urls",
            )
        if scheme == "http" and not self._policy.allow_http:
            raise InvalidArgument(
                f"source {source!r}: plain http:// is not accepted by this service; use https://",
                field="source.urls",
            )
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise InvalidArgument(
                f"source URLs must not carry credentials ({scheme}://user@...)", field="source.urls"
            )
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            raise InvalidArgument(f"source {source!r} has a malformed host or port", field="source.urls") from None
        if not host:
            raise InvalidArgument(f"source {source!r} names no host", field="source.urls")
        if not host_allowed(host, port, self._policy.remote_hosts):
            where = f"{host}:{port}" if port else host
            raise PermissionDenied(
                f"host {where!r} of source {source!r} is not on this service's list of allowed hosts"
            )
        if ".." in PurePosixPath(parts.path).parts:
            raise PermissionDenied(f"source {source!r} contains '..'")
        if parts.query or parts.fragment:
            raise InvalidArgument(f"source {source!r}: query strings and fragments are not supported",
                                  field="source.urls")

    # -- local --------------------------------------------------------------------------------

    def _resolve_local(self, source: str) -> list[SourceFileRef]:
        if not self._roots:
            raise PermissionDenied("this service has no data roots configured; use a root:// or https:// URL")
        rel = source.strip().rstrip("/") if source.strip() != "/" else ""
        is_glob = any(ch in rel for ch in GLOB_CHARS)
        for root in self._roots:
            if is_glob:
                refs = self._listed(root, sorted(glob.glob(rel, root_dir=root)))
                if refs:
                    return refs
                continue
            candidate = root / rel
            real = candidate.resolve()  # before existence: a link out is refused, target or not
            if not real.is_relative_to(root):
                raise PermissionDenied(
                    f"source {source!r} leads outside the data roots (through a symbolic link)")
            if not os.path.lexists(candidate):
                continue
            if real.is_dir():
                children = sorted(p.name for p in real.iterdir() if p.name.endswith(".root"))
                refs = self._listed(root, [f"{rel}/{name}" for name in children])
                if not refs:
                    raise NotFound(f"directory {source!r} holds no .root file{_LINKS_LEFT_OUT}")
                return refs
            if not real.is_file():
                raise InvalidArgument(f"source {source!r} is not a regular file", field="source.urls")
            return [SourceFileRef(_posix(rel), SourceKind.LOCAL, str(real))]
        if is_glob:
            raise NotFound(f"no file matches {source!r} in the data roots{_LINKS_LEFT_OUT}")
        raise NotFound(f"file {source!r} not found in the data roots")

    def _listed(self, root: Path, rels: list[str]) -> list[SourceFileRef]:
        """The regular files among ``rels`` (paths a glob or directory listing named under
        ``root``) that stay inside ``root``; links that lead out are left out and logged."""
        refs = []
        for rel in rels:
            real = (root / rel).resolve()
            if not real.is_relative_to(root):
                log.warning("left %s out of a listing: a symbolic link leading out of data root %s",
                            rel, root)
            elif real.is_file():
                refs.append(SourceFileRef(_posix(rel), SourceKind.LOCAL, str(real)))
        return refs

    # -- remote -------------------------------------------------------------------------------

    def _resolve_remote(self, source: str) -> list[SourceFileRef]:
        parts = urlsplit(source)
        scheme = parts.scheme.lower()
        listing = any(ch in parts.path for ch in GLOB_CHARS) or parts.path.endswith("/")
        if scheme != "root" and listing:
            raise InvalidArgument(
                f"source {source!r}: https:// sources must name single files (no glob or "
                "directory); root:// sources may be globs or directories", field="source.urls")
        if not parts.path.strip("/"):
            raise InvalidArgument(f"source {source!r} must name a file", field="source.urls")
        if scheme == "root":
            # XRootD URLs are root://host[:port]//absolute/path; keep the double slash.
            path = parts.path if parts.path.startswith("//") else "/" + parts.path
            url = f"root://{parts.netloc.lower()}{path}"
            ref = SourceFileRef(url, SourceKind.XROOTD, url, self._guard)
            return self._list_xrootd(source, ref) if listing else [ref]
        url = f"{scheme}://{parts.netloc.lower()}{parts.path}"
        return [SourceFileRef(url, SourceKind.HTTP, url, self._guard)]

    def _list_xrootd(self, source: str, pattern: SourceFileRef) -> list[SourceFileRef]:
        """The files an XRootD glob or directory names, listed on its server (after the address
        guard has passed its host), sorted."""
        from fsspec_xrootd import XRootDFileSystem  # imported here: only root:// listings need it

        pattern.check_connection()
        netloc = urlsplit(pattern.url).netloc
        path = "/" + urlsplit(pattern.url).path.lstrip("/")
        try:
            fs = XRootDFileSystem(hostid=netloc, timeout=30)
            if path.endswith("/"):
                folder = path.rstrip("/")
                found = [f"{folder}/{name}" for name in fs.ls(folder, detail=False)
                         if name.endswith(".root")]
            else:
                found = list(fs.glob(path))
        except OSError as exc:
            text = str(exc).lower()
            if "no such file" in text or "not found" in text or "[3011]" in text or "_ls_from_cache" in text:
                raise NotFound(f"no file matches {source!r} on its server") from None
            raise Unavailable(f"the server of {source!r} could not list it") from None
        if not found:
            raise NotFound(f"no file matches {source!r} on its server")
        if len(found) > MAX_LISTED_FILES:
            raise InvalidArgument(f"source {source!r} names {len(found)} files, more than "
                                  f"{MAX_LISTED_FILES}; split the dataset", field="source.urls")
        refs = []
        for name in sorted(found):
            url = f"root://{netloc}//{name.lstrip('/')}"
            refs.append(SourceFileRef(url, SourceKind.XROOTD, url, self._guard))
        return refs


_LINKS_LEFT_OUT = " (symbolic links leading out of the data roots are never listed)"


def _hidden_traversal(source: str) -> bool:
    """True when ``source``, as written or percent-decoded once or twice, has a ".." segment
    (between '/', '\\' or ';'): a server that decodes it would climb out of its folder."""
    text = source
    for _ in range(3):
        segments = text.replace("\\", "/").replace(";", "/").split("/")
        if any(seg.strip() == ".." for seg in segments):
            return True
        decoded = unquote(text)
        if decoded == text:
            return False
        text = decoded
    return True  # still encoded after two decodings: refuse rather than guess


def _posix(rel: str) -> str:
    return PurePosixPath(rel).as_posix()


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)
