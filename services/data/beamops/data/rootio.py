"""The one module that talks to uproot: open ROOT files (local, root://, https://), discover a
tree's schema, check that its baskets are all in the file, and iterate over entries in batches.

Everything uproot raises is turned into a domain error that names the file by its source string
(never the server-side path): a missing tree or branch is INVALID_ARGUMENT, a truncated or corrupt
file DATA_LOSS, a remote server that cannot be reached UNAVAILABLE, a missing remote file NOT_FOUND.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import struct
from typing import Any, Iterator, Sequence

import awkward as ak
import numpy as np
import uproot

from beamops.runtime.errors import BeamopsError, DataLoss, InvalidArgument, NotFound, Unavailable

from .model import LAYOUT_FIXED, LAYOUT_FLAT, LAYOUT_JAGGED, BranchInfo, TreeInfo
from .sources import SourceFileRef

_LEAF_SPEC = re.compile(r"^[A-Za-z_]\w*(\[[\w]+\])*(/[A-Za-z])?$")
_UNIT = re.compile(r"\[([^\[\]]{1,32})\]\s*$|\(([^()]{1,32})\)\s*$")


@contextlib.contextmanager
def errors_for(ref: SourceFileRef, tree_name: str | None = None) -> Iterator[None]:
    """Map what uproot and the transports raise to domain errors naming ``ref.url``."""
    try:
        try:
            yield
        except BeamopsError:
            raise
        except Exception as exc:
            refusal = _domain_cause(exc)  # e.g. the SSRF guard's refusal, wrapped by fsspec
            if refusal is None:
                raise
            raise refusal from None
    except BeamopsError:
        raise
    except uproot.KeyInFileError as exc:
        key = getattr(exc, "key", None) or tree_name or "?"
        raise InvalidArgument(f"file {ref.url!r} has no tree or branch named {str(key)!r}",
                              field="source.tree_name", file=ref.url) from None
    except FileNotFoundError:
        raise NotFound(f"file {ref.url!r} not found", file=ref.url) from None
    except PermissionError:
        raise DataLoss(f"file {ref.url!r} could not be read (permission refused by its server)",
                       file=ref.url) from None
    except (ConnectionError, TimeoutError) as exc:
        raise Unavailable(f"the server of {ref.url!r} did not answer: {type(exc).__name__}",
                          file=ref.url) from None
    except OSError as exc:
        if not ref.is_local and _looks_like_network(exc):
            raise Unavailable(f"the server of {ref.url!r} could not be reached or went away",
                              file=ref.url) from None
        if not ref.is_local and _looks_missing(exc):
            raise NotFound(f"file {ref.url!r} not found on its server", file=ref.url) from None
        raise DataLoss(f"file {ref.url!r} is truncated or corrupt: {_clean(exc, ref)}",
                       file=ref.url) from None
    except MemoryError:
        raise
    except Exception as exc:  # uproot raises many kinds for bad bytes
        raise DataLoss(f"file {ref.url!r} is not a readable ROOT file (truncated or corrupt): "
                       f"{_clean(exc, ref)}", file=ref.url) from None


def _domain_cause(exc: BaseException) -> BeamopsError | None:
    seen = 0
    cause = exc.__cause__ or exc.__context__
    while cause is not None and seen < 10:
        if isinstance(cause, BeamopsError):
            return cause
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    return None


def _looks_network(text: str) -> bool:
    text = text.lower()
    return any(w in text for w in ("connect", "timed out", "timeout", "socket", "network",
                                   "unreachable", "refused", "reset by peer", "[fatal]", "[error] operation expired"))


def _looks_like_network(exc: BaseException) -> bool:
    return _looks_network(str(exc)) and not _looks_missing(exc)


def _looks_missing(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "no such file" in text or "not found" in text or "404" in text or "[3011]" in text


def _clean(exc: BaseException, ref: SourceFileRef) -> str:
    """A short reason without server paths."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    text = text.replace(ref.open_path, ref.url)
    if "/" in text and ref.is_local:
        return type(exc).__name__
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def open_file(ref: SourceFileRef, timeout_s: float = 30.0) -> Any:
    """An open uproot file (use it as a context manager). Raises domain errors."""
    with errors_for(ref):
        if ref.is_local:
            return uproot.open(ref.open_path, handler=uproot.source.file.MultithreadedFileSource,
                               array_cache=None)
        options = ref.check_connection()  # SSRF guard: before any connection, and on each one
        return uproot.open(ref.open_path, timeout=max(1, int(timeout_s)), array_cache=None, **options)


class OpenFiles:
    """Open local ROOT files kept for the next read of the same file.

    Opening a file and reading its tree's metadata costs ~3 ms, more than a small read (100
    entries of 2 branches: ~0.7 ms). A file is lent to one reader at a time (uproot's objects are
    not shared between threads) and given back when the read ends normally; one whose read failed
    or was abandoned is closed. Idle files are keyed by (path, size, mtime), so a file changed on
    disk is opened afresh; at most ``max_idle`` stay open, the least recently used closed first.
    Remote files are opened per read: each connection passes the address guard.
    """

    def __init__(self, max_idle: int = 16) -> None:
        self._max_idle = max_idle
        self._idle: list[tuple[tuple, Any]] = []  # oldest first
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def borrow(self, ref: SourceFileRef, timeout_s: float = 30.0) -> Iterator[Any]:
        if not ref.is_local or self._max_idle <= 0:
            with open_file(ref, timeout_s) as file:
                yield file
            return
        with errors_for(ref):
            st = os.stat(ref.open_path)
        key = (ref.open_path, st.st_size, st.st_mtime_ns)
        file = self._take(key)
        if file is None:
            file = open_file(ref, timeout_s)
        try:
            yield file
        except BaseException:
            file.close()
            raise
        self._give_back(key, file)

    def _take(self, key: tuple) -> Any | None:
        with self._lock:
            for i in range(len(self._idle) - 1, -1, -1):
                if self._idle[i][0] == key:
                    return self._idle.pop(i)[1]
        return None

    def _give_back(self, key: tuple, file: Any) -> None:
        with self._lock:
            self._idle.append((key, file))
            closing = self._idle[:-self._max_idle] if len(self._idle) > self._max_idle else []
            del self._idle[:len(closing)]
        for _, old in closing:
            old.close()

    def close(self) -> None:
        with self._lock:
            closing, self._idle = self._idle, []
        for _, file in closing:
            file.close()


def get_tree(file: Any, ref: SourceFileRef, tree_name: str) -> Any:
    with errors_for(ref, tree_name):
        try:
            tree = file[tree_name]
        except uproot.KeyInFileError:
            raise InvalidArgument(f"file {ref.url!r} has no tree named {tree_name!r}",
                                  field="source.tree_name", file=ref.url) from None
        if not isinstance(tree, uproot.behaviors.TTree.TTree):
            raise InvalidArgument(f"{tree_name!r} in file {ref.url!r} is a {type(tree).__name__}, "
                                  "not a TTree", field="source.tree_name", file=ref.url)
        return tree


def inspect_tree(ref: SourceFileRef, tree_name: str, timeout_s: float = 30.0,
                 check_branches: Sequence[str] | None = None) -> TreeInfo:
    """Entries and branches of ``tree_name``; checks that the baskets of ``check_branches``
    (default: all) lie inside the file, so a truncated copy is caught before registering."""
    with open_file(ref, timeout_s) as file, errors_for(ref, tree_name):
        size = getattr(file.file.source, "num_bytes", None)
        if size is not None:
            _check_header(file.file, size, ref)
        tree = get_tree(file, ref, tree_name)
        if size is not None:
            _check_key(file, file.key(tree_name), size, ref, tree_name)
        branches = [describe_branch(b) for b in tree.branches]
        wanted = set(check_branches) if check_branches is not None else None
        if size is not None:
            with _key_reader(ref) as read_key:
                for branch in tree.branches:
                    if wanted is None or branch.name in wanted:
                        _check_baskets(branch, size, ref, read_key)
        return TreeInfo(num_entries=int(tree.num_entries), branches=branches)


# Structural checks at registration: cheap (a few header reads, no decompression), so a
# truncated file or one with impossible sizes or offsets is refused before it is registered.
# A flipped bit inside compressed data is caught when the data is read (the decompressor's
# checksum): DATA_LOSS then.

def _corrupt(ref: SourceFileRef, what: str) -> DataLoss:
    return DataLoss(f"file {ref.url!r} is truncated or corrupt: {what}", file=ref.url)


def _check_header(f: Any, size: int, ref: SourceFileRef) -> None:
    begin, end = int(f.fBEGIN), int(f.fEND)
    if not 0 < begin <= end:
        raise _corrupt(ref, "its header has impossible offsets")
    if end > size:
        raise DataLoss(f"file {ref.url!r} is truncated: it ends at byte {size} but its header says {end}",
                       file=ref.url)
    for seek, nbytes, what in ((f.fSeekInfo, f.fNbytesInfo, "streamer information"),
                               (f.fSeekFree, f.fNbytesFree, "free-segment list")):
        seek, nbytes = int(seek), int(nbytes)
        if nbytes < 0 or seek < 0 or (nbytes and not begin <= seek <= end - nbytes):
            raise _corrupt(ref, f"its {what} lies outside the file")
    if not 0 <= int(f.nfree) <= max(1, int(f.fNbytesFree)) or not 0 <= int(f.fNbytesName) <= begin \
            or not 0 <= int(f.fCompress) < 1000:
        raise _corrupt(ref, "its header has impossible values")


_KEY_HEAD = 26  # fNbytes i4, fVersion i2, fObjlen i4, fDatime u4, fKeylen i2, fCycle i2, fSeekKey i4|i8


def _parse_key(raw: bytes) -> tuple[int, int, int, int] | None:
    """(fNbytes, fObjlen, fKeylen, fSeekKey) of a TKey header, or None when too short."""
    if len(raw) < 22:
        return None
    nbytes, version, objlen, _datime, keylen, _cycle = struct.unpack(">ihiIhh", raw[:18])
    if version > 1000:
        seek = struct.unpack(">q", raw[18:26])[0] if len(raw) >= 26 else -1
    else:
        seek = struct.unpack(">i", raw[18:22])[0]
    return nbytes, objlen, keylen, seek


@contextlib.contextmanager
def _key_reader(ref: SourceFileRef) -> Iterator[Any]:
    """Reads TKey headers: from the local file directly (cheap); None for remote files (one
    round trip per basket would cost too much; their baskets are bounds-checked only)."""
    if not ref.is_local:
        yield None
        return
    with open(ref.open_path, "rb") as handle:
        def read(seek: int) -> bytes:
            handle.seek(seek)
            return handle.read(_KEY_HEAD)

        yield read


def _check_key(file: Any, key: Any, size: int, ref: SourceFileRef, name: str) -> None:
    """The directory's key of ``name`` must match the key written in front of the object."""
    seek = int(key.fSeekKey)
    if not 0 < seek < size or not 0 < int(key.fNbytes) <= size - seek or int(key.fObjlen) < 0:
        raise _corrupt(ref, f"the key of {name!r} points outside the file")
    raw = file.file.source.chunk(seek, seek + min(_KEY_HEAD, size - seek)).raw_data.tobytes()
    written = _parse_key(raw)
    if written != (int(key.fNbytes), int(key.fObjlen), int(key.fKeylen), seek):
        raise _corrupt(ref, f"the key of {name!r} does not match its copy in the directory")


MAX_OBJLEN = 1 << 30  # one basket decompresses to at most 1 GiB (ROOT's own limit is lower)


def _check_baskets(branch: Any, size: int, ref: SourceFileRef, read_key=None) -> None:
    seeks = branch.member("fBasketSeek")
    for i in range(branch.num_baskets):
        seek = int(seeks[i])
        nbytes = int(branch.basket_compressed_bytes(i))
        if seek + nbytes > size:
            raise DataLoss(
                f"file {ref.url!r} is truncated: branch {branch.name!r} has data beyond the end "
                "of the file", file=ref.url,
            )
        if seek <= 0 or nbytes <= 0:
            raise _corrupt(ref, f"branch {branch.name!r} has a basket at an impossible place")
        if read_key is not None:
            key = _parse_key(read_key(seek))
            if key is None or key[0] != nbytes or key[3] != seek or not 0 < key[2] < nbytes \
                    or not 0 <= key[1] <= MAX_OBJLEN:
                raise _corrupt(ref, f"branch {branch.name!r} has a damaged basket header")


def describe_branch(branch: Any) -> BranchInfo:
    interp = branch.interpretation
    title = str(branch.title or "")
    unit = ""
    if title and not _LEAF_SPEC.match(title):
        m = _UNIT.search(title)
        if m:
            unit = (m.group(1) or m.group(2) or "").strip()
    type_name = str(branch.typename)
    if isinstance(interp, uproot.interpretation.numerical.AsDtype):
        inner = interp.inner_shape
        dtype = np.dtype(interp.to_dtype).base.name if inner else interp.to_dtype.name
        layout = LAYOUT_FIXED if inner else LAYOUT_FLAT
        return BranchInfo(name=branch.name, type_name=type_name, dtype=dtype, layout=layout,
                          fixed_shape=tuple(int(n) for n in inner), title=title, unit=unit)
    if isinstance(interp, uproot.interpretation.jagged.AsJagged) and isinstance(
        interp.content, uproot.interpretation.numerical.AsDtype
    ) and not interp.content.inner_shape:
        return BranchInfo(name=branch.name, type_name=type_name, dtype=interp.content.to_dtype.name,
                          layout=LAYOUT_JAGGED, title=title, unit=unit)
    return BranchInfo(name=branch.name, type_name=type_name, dtype=None, layout=LAYOUT_FLAT,
                      title=title, unit=unit)


def iterate(ref: SourceFileRef, tree_name: str, branches: Sequence[str], entry_start: int,
            entry_stop: int, step_size: int, timeout_s: float = 30.0,
            open_files: OpenFiles | None = None) -> Iterator[tuple[int, dict[str, ak.Array]]]:
    """Yield (first entry number in the file, {branch: array}) for entries [start, stop);
    the file comes from ``open_files`` when given (and goes back to it), else is opened."""
    if entry_stop <= entry_start:
        return
    names = list(dict.fromkeys(branches))
    wanted = set(names)
    opened = open_files.borrow(ref, timeout_s) if open_files is not None else open_file(ref, timeout_s)
    with opened as file:
        tree = get_tree(file, ref, tree_name)
        with errors_for(ref, tree_name):
            missing = [n for n in names if n not in tree]
            if missing:
                raise InvalidArgument(f"file {ref.url!r} has no branch {missing[0]!r}",
                                      field="branches", file=ref.url)
            if not names:
                # Only entry counting is needed: yield empty dicts per step.
                for start in range(entry_start, entry_stop, step_size):
                    yield start, {}
                return
            chunks = tree.iterate(
                filter_name=lambda n: n in wanted, step_size=step_size, entry_start=entry_start,
                entry_stop=entry_stop, library="ak", how=dict,
            )
            start = entry_start
            while True:
                with errors_for(ref, tree_name):
                    try:
                        arrays = next(chunks)
                    except StopIteration:
                        return
                yield start, arrays
                start += len(next(iter(arrays.values())))


def num_entries(ref: SourceFileRef, tree_name: str, timeout_s: float = 30.0) -> int:
    with open_file(ref, timeout_s) as file:
        return int(get_tree(file, ref, tree_name).num_entries)
