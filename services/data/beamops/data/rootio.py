"""The one module that talks to uproot: open ROOT files (local, root://, https://), find a TTree
or an RNTuple by its path, list its columns at any depth, and iterate over entries in batches.

uproot decides what is readable. The only checks added to it are the ones uproot does not make
before a read: a local TTree's baskets must lie inside the file (a truncated copy is caught at
registration) and decompress to a bounded size.

Everything uproot raises is turned into a domain error that names the file by its source string
(never the server-side path): a missing tree or branch is INVALID_ARGUMENT, a truncated or corrupt
file DATA_LOSS, a remote server that cannot be reached UNAVAILABLE, a missing remote file NOT_FOUND.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import awkward as ak
import uproot

from beamops.runtime.errors import BeamopsError, DataLoss, InvalidArgument, NotFound, Unavailable

from .forms import Shape, classify, project
from .model import BranchInfo, TreeInfo
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
    """uproot's reason, short, without server paths: its first line (uproot names the file on
    later lines), the file's path replaced by its source string; a reason that still holds
    the path of the file's folder is given by its kind only."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    text = text.split(" in file ")[0].replace(ref.open_path, ref.url)
    if ref.is_local and os.path.dirname(ref.open_path) in text:
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
    def borrow(self, ref: SourceFileRef, timeout_s: float = 30.0) -> Iterator[Opened]:
        if not ref.is_local or self._max_idle <= 0:
            with opened(ref, timeout_s) as file:
                yield file
            return
        with errors_for(ref):
            st = os.stat(ref.open_path)
        key = (ref.open_path, st.st_size, st.st_mtime_ns)
        file = self._take(key)
        if file is None:
            file = Opened(open_file(ref, timeout_s))
        try:
            yield file
        except BaseException:
            file.file.close()
            raise
        self._give_back(key, file)

    def _take(self, key: tuple) -> Opened | None:
        with self._lock:
            for i in range(len(self._idle) - 1, -1, -1):
                if self._idle[i][0] == key:
                    return self._idle.pop(i)[1]
        return None

    def _give_back(self, key: tuple, file: Opened) -> None:
        with self._lock:
            self._idle.append((key, file))
            closing = self._idle[:-self._max_idle] if len(self._idle) > self._max_idle else []
            del self._idle[:len(closing)]
        for _, old in closing:
            old.file.close()

    def close(self) -> None:
        with self._lock:
            closing, self._idle = self._idle, []
        for _, file in closing:
            file.file.close()


@dataclass
class Opened:
    """An open uproot file and the tables found in it so far (listing a NanoAOD tree's 1,000
    branches costs more than a small read)."""

    file: Any
    tables: dict[str, Table] = field(default_factory=dict)

    def table(self, ref: SourceFileRef, name: str) -> Table:
        if name not in self.tables:
            self.tables[name] = get_table(self.file, ref, name)
        return self.tables[name]


@contextlib.contextmanager
def opened(ref: SourceFileRef, timeout_s: float = 30.0) -> Iterator[Opened]:
    """A file opened for one read (closed at the end)."""
    with open_file(ref, timeout_s) as file:
        yield Opened(file)


TTREE, RNTUPLE = "TTree", "RNTuple"
BATCH_BYTES = 64 << 20  # a batch's arrays in memory, as uproot estimates them from the baskets
_KINDS = {"TTree": TTREE, "ROOT::RNTuple": RNTUPLE}


def tables_in(file: Any) -> list[tuple[str, str]]:
    """(path, kind) of every TTree and RNTuple in an open file, at any depth, each path once."""
    found: dict[str, str] = {}
    for key, classname in file.classnames(recursive=True).items():
        kind = _KINDS.get(classname)
        if kind is not None:
            found.setdefault(key.rsplit(";", 1)[0], kind)
    return sorted(found.items())


def _missing_table(file: Any, ref: SourceFileRef, what: str) -> InvalidArgument:
    tables = tables_in(file)
    listed = ", ".join(f"{path!r} ({kind})" for path, kind in tables[:20])
    more = f" and {len(tables) - 20} more" if len(tables) > 20 else ""
    has = f"it has {listed}{more}" if tables else "it has no TTree or RNTuple"
    return InvalidArgument(f"{what}; {has}", field="source.tree_name", file=ref.url)


class Table:
    """A TTree or an RNTuple, read the same way: its entry count, its columns (every branch or
    field at any depth, by the full path uproot names it with) and batches of their arrays."""

    def __init__(self, obj: Any, kind: str, ref: SourceFileRef) -> None:
        self._obj, self.kind, self._ref = obj, kind, ref
        if kind == RNTUPLE:
            index_fields(obj)
        self.num_entries = int(obj.num_entries)
        if kind == TTREE:  # by full path; a path listed twice (as in some Delphes files) once
            self._branches: dict[str, Any] = {}
            for path, branch in obj.iteritems(recursive=True):
                self._branches.setdefault(path, branch)
            self._names = list(self._branches)
        else:
            self._names = list(dict.fromkeys(obj.keys(recursive=True)))
        self._known = set(self._names)
        self._addressable: dict[str, bool] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._known

    def columns(self) -> list[BranchInfo]:
        if self.kind == TTREE:
            return [_describe_branch(name, branch, self.num_entries)
                    for name, branch in self._branches.items()]
        form = self._obj.to_akform()[0]
        return [_describe_field(name, self._obj[name], form) for name in self._names]

    def check_baskets(self, names: Sequence[str]) -> None:
        """A local TTree's baskets must lie inside the file and decompress to a bounded size
        (uproot reads each basket's key); RNTuple pages are uproot's to check."""
        size = getattr(self._obj.file.source, "num_bytes", None)
        if self.kind != TTREE or size is None or not self._ref.is_local:
            return
        for name in names:
            _check_baskets(self._branches[name], name, int(size), self._ref)

    def iterate(self, names: Sequence[str], entry_start: int, entry_stop: int,
                step_size: int) -> Iterator[dict[str, ak.Array]]:
        """Batches of at most ``step_size`` entries, fewer when uproot estimates that the
        arrays of that many would take more than :data:`BATCH_BYTES`. When uproot fails
        without saying where, the batch's branches are read one by one so that the error
        names the branch that fails."""
        step_size = self._bounded(names, entry_start, entry_stop, step_size)
        chunks = self._chunks(names, entry_start, entry_stop, step_size)
        start = entry_start
        while True:
            try:
                start, stop, arrays = next(chunks)
            except StopIteration:
                return
            except (OSError, MemoryError, BeamopsError):  # the transport's, ours: no branch's
                raise
            except Exception as exc:
                raise self._unreadable(exc, names, start, min(start + step_size, entry_stop)) from None
            yield self._whole(arrays, stop - start)
            start = stop

    def _bounded(self, names: Sequence[str], entry_start: int, entry_stop: int, step_size: int) -> int:
        # The estimate reads every basket's key: cheap locally; over XRootD a round trip per
        # basket (and uproot's key reads fail there), so remote reads keep ``step_size``.
        if not self._ref.is_local:
            return step_size
        if self._by_paths(names):
            selection: dict[str, Any] = {"expressions": list(names)}
        else:
            wanted = {id(self._branches[name]) for name in names}
            selection = {"filter_branch": lambda branch: id(branch) in wanted}
        fits = self._obj.num_entries_for(BATCH_BYTES, entry_start=entry_start, entry_stop=entry_stop,
                                         **selection)
        return max(1, min(step_size, int(fits)))

    def _chunks(self, names: Sequence[str], entry_start: int, entry_stop: int,
                step_size: int) -> Iterator[tuple[int, int, dict[str, ak.Array]]]:
        """(start, stop, arrays) of consecutive batches."""
        if self.kind == RNTUPLE:
            # uproot decodes a whole cluster for any entries of it: each cluster is read once
            # and its batches are sliced from it.
            for start, stop in self._cluster_spans(entry_start, entry_stop, step_size):
                read = self._obj.arrays(list(names), entry_start=start, entry_stop=stop,
                                        library="ak", how=dict)
                arrays = {name: _member(read, name) for name in names}
                for first in range(start, stop, step_size):
                    last = min(first + step_size, stop)
                    yield first, last, {n: a[first - start:last - start] for n, a in arrays.items()}
        elif self._by_paths(names):
            for arrays, report in self._obj.iterate(list(names), step_size=step_size,
                                                    entry_start=entry_start, entry_stop=entry_stop,
                                                    library="ak", how=dict, report=True):
                yield report.tree_entry_start, report.tree_entry_stop, arrays
        else:
            for start in range(entry_start, entry_stop, step_size):
                stop = min(start + step_size, entry_stop)
                yield start, stop, {name: self._branches[name].array(
                    entry_start=start, entry_stop=stop, library="ak") for name in names}

    def _cluster_spans(self, entry_start: int, entry_stop: int, step_size: int) -> list[tuple[int, int]]:
        """[start, stop) of whole clusters within the entries, small neighbours merged while
        they hold at most ``step_size`` entries together."""
        spans: list[tuple[int, int]] = []
        for cluster in self._obj.cluster_summaries:
            first = int(cluster.num_first_entry)
            start, stop = max(first, entry_start), min(first + int(cluster.num_entries), entry_stop)
            if start >= stop:
                continue
            if spans and spans[-1][1] == start and stop - spans[-1][0] <= step_size:
                spans[-1] = (spans[-1][0], stop)
            else:
                spans.append((start, stop))
        return spans or [(entry_start, entry_stop)]

    def _unreadable(self, exc: Exception, names: Sequence[str], start: int, stop: int) -> Exception:
        """DataLoss naming the branch that fails, when one does alone; else uproot's error."""
        culprit = names[0] if len(names) == 1 else None
        for name in names if culprit is None else ():
            try:
                self._arrays([name], start, stop)
            except (OSError, MemoryError, BeamopsError):
                return exc
            except Exception as alone:  # uproot raises many kinds for bad bytes
                culprit, exc = name, alone
                break
        if culprit is None:
            return exc
        return DataLoss(f"file {self._ref.url!r}: branch {culprit!r} cannot be read (truncated, "
                        f"corrupt or stored in a way uproot does not read): {_clean(exc, self._ref)}",
                        file=self._ref.url)

    def _arrays(self, names: Sequence[str], start: int, stop: int) -> dict[str, ak.Array]:
        return next(self._chunks(names, start, stop, stop - start))[2]

    def _by_paths(self, names: Sequence[str]) -> bool:
        """Whether uproot finds each TTree branch listed in ``names`` by that path. uproot then
        takes a path as a branch, not as an expression, in a few steps (selecting branches by
        object makes it look each up by its short name again, through the whole tree: minutes
        for a tree of 2,000 branches). In a tree holding two branches of one name it may not;
        those branches are then read one by one. RNTuple fields are always found by path."""
        if self.kind == RNTUPLE:
            return True
        for name in names:
            if name not in self._addressable:
                try:
                    found = self._obj.get(name)
                except Exception:  # uproot's lookup raises what the path's pieces make it raise
                    found = None
                self._addressable[name] = found is self._branches[name]
            if not self._addressable[name]:
                return False
        return True

    def _whole(self, arrays: dict[str, ak.Array], entries: int) -> dict[str, ak.Array]:
        """``arrays`` when each has ``entries`` entries; a branch filled fewer times than its
        tree (uproot then gives what it holds) is damage in the file."""
        for name, array in arrays.items():
            if len(array) != entries:
                raise DataLoss(f"file {self._ref.url!r}: branch {name!r} holds fewer entries than "
                               f"its tree ({len(array)} where {entries} were read)", file=self._ref.url)
        return arrays


def index_fields(ntuple: Any) -> None:
    """uproot lists an RNTuple field's children by scanning every field record for each field
    (quadratic: ~20 s for the 2,400 fields of an ATLAS PHYSLITE file). Fill the same lists, by
    uproot's rule (anonymous fields give way to their children), in one pass; uproot uses them
    from then on. Left to uproot when its objects do not have the lists this expects."""
    fields = ntuple.all_fields
    if getattr(ntuple, "_fields", 0) is not None or any(getattr(f, "_fields", 0) is not None
                                                         for f in fields):
        return
    records = ntuple.field_records
    children: dict[int, list[int]] = {}
    for i, record in enumerate(records):
        if record.parent_field_id != i:
            children.setdefault(record.parent_field_id, []).append(i)

    def listed(fid: int) -> list[Any]:
        out: list[Any] = []
        for i in children.get(fid, ()):
            if fields[i].is_anonymous:
                out.extend(listed(i))
            else:
                out.append(fields[i])
        return out

    for fid, rfield in enumerate(fields):
        rfield._fields = listed(fid)
    ntuple._fields = [fields[i] for i, record in enumerate(records) if record.parent_field_id == i]


def _member(arrays: dict[str, ak.Array], name: str) -> ak.Array:
    """An RNTuple column read by its path ("jets.pt"): the top field, then its members."""
    top, *rest = name.split(".")
    out = arrays[top]
    for part in rest:
        out = out[part]
    return out


def get_table(file: Any, ref: SourceFileRef, name: str) -> Table:
    """The TTree or RNTuple at path ``name`` ("Events", "dir/sub/tree")."""
    with errors_for(ref, name):
        try:
            obj = file[name]
        except (uproot.KeyInFileError, KeyError):
            raise _missing_table(file, ref, f"file {ref.url!r} has no TTree or RNTuple named "
                                 f"{name!r}") from None
        kind = TTREE if isinstance(obj, uproot.behaviors.TTree.TTree) else (
            RNTUPLE if isinstance(obj, uproot.behaviors.RNTuple.RNTuple) else None)
        if kind is None:
            kind_name = type(obj).__name__.removeprefix("Model_")
            raise _missing_table(file, ref, f"{name!r} in file {ref.url!r} is a {kind_name}, not "
                                 "a TTree or RNTuple")
        return Table(obj, kind, ref)


def inspect_tree(ref: SourceFileRef, tree_name: str, timeout_s: float = 30.0,
                 check_branches: Sequence[str] | None = None) -> TreeInfo:
    """Entries and columns of the TTree or RNTuple ``tree_name``; the baskets of
    ``check_branches`` (default: every numeric branch) are checked, so a truncated copy is
    caught before it is registered."""
    with open_file(ref, timeout_s) as file:
        table = get_table(file, ref, tree_name)
        with errors_for(ref, tree_name):
            columns = table.columns()
            checked = check_branches if check_branches is not None else [
                c.name for c in columns if c.numeric]
            table.check_baskets(checked)
        return TreeInfo(num_entries=table.num_entries, kind=table.kind, branches=columns)


MAX_OBJLEN = 1 << 30  # one basket decompresses to at most 1 GiB (ROOT's own limit is lower)


def _check_baskets(branch: Any, name: str, size: int, ref: SourceFileRef) -> None:
    # Baskets with a key of their own come first; embedded ones live in the tree's record.
    for i in range(branch.num_baskets - len(branch.embedded_baskets)):
        key = branch.basket_key(i)
        if int(key.fSeekKey) + int(key.fNbytes) > size:
            raise DataLoss(f"file {ref.url!r} is truncated: branch {name!r} has data beyond the "
                           "end of the file", file=ref.url)
        if not 0 <= int(key.data_uncompressed_bytes) <= MAX_OBJLEN:
            raise DataLoss(f"file {ref.url!r} is corrupt: a basket of branch {name!r} claims "
                           f"{int(key.data_uncompressed_bytes)} bytes", file=ref.url)


def _unit(title: str) -> str:
    if title and not _LEAF_SPEC.match(title):
        m = _UNIT.search(title)
        if m:
            return (m.group(1) or m.group(2) or "").strip()
    return ""


def _column(name: str, type_name: str, shape: Shape, title: str) -> BranchInfo:
    return BranchInfo(name=name, type_name=type_name, dtype=shape.dtype, layout=shape.layout,
                      fixed_shape=shape.fixed_shape, title=title, unit=_unit(title),
                      reason=shape.reason)


def _describe_branch(name: str, branch: Any, tree_entries: int) -> BranchInfo:
    title = str(branch.title or "")
    try:
        type_name = str(branch.typename)
    except Exception:  # noqa: BLE001 - uproot names no type for some it cannot interpret
        type_name = "?"
    interp = branch.interpretation
    if isinstance(interp, uproot.interpretation.grouped.AsGrouped):
        shape = Shape(dtype=None, reason="it holds sub-branches: select those")
    elif isinstance(interp, uproot.interpretation.identify.UnknownInterpretation):
        shape = Shape(dtype=None, reason="uproot cannot interpret its contents")
    else:
        try:
            shape = classify(interp.awkward_form(branch.file))
        except Exception:  # noqa: BLE001 - uproot's word: it has no array form for this branch
            shape = Shape(dtype=None, reason="uproot cannot give it as arrays")
    if shape.dtype is not None and int(branch.num_entries) != tree_entries:
        shape = Shape(dtype=None, reason=f"it was filled {int(branch.num_entries)} times, its tree "
                                         f"{tree_entries}: its entries cannot be matched")
    return _column(name, type_name, shape, title)


def _describe_field(name: str, rfield: Any, form: ak.forms.Form) -> BranchInfo:
    try:
        shape = classify(project(form, name.split(".")))
    except Exception:  # noqa: BLE001 - uproot's form has no such member
        shape = Shape(dtype=None, reason="uproot cannot give it as arrays")
    return _column(name, str(rfield.typename), shape, str(getattr(rfield, "description", "") or ""))


def iterate(ref: SourceFileRef, tree_name: str, branches: Sequence[str], entry_start: int,
            entry_stop: int, step_size: int, timeout_s: float = 30.0,
            open_files: OpenFiles | None = None) -> Iterator[tuple[int, dict[str, ak.Array]]]:
    """Yield (first entry number in the file, {branch: array}) for entries [start, stop) of the
    TTree or RNTuple ``tree_name``; the file comes from ``open_files`` when given (and goes back
    to it), else is opened."""
    if entry_stop <= entry_start:
        return
    names = list(dict.fromkeys(branches))
    lent = open_files.borrow(ref, timeout_s) if open_files is not None else opened(ref, timeout_s)
    with lent as file:
        table = file.table(ref, tree_name)
        missing = [n for n in names if n not in table]
        if missing:
            raise InvalidArgument(f"file {ref.url!r} has no branch {missing[0]!r}",
                                  field="branches", file=ref.url)
        if not names:
            # Only entry counting is needed: yield empty dicts per step.
            for start in range(entry_start, entry_stop, step_size):
                yield start, {}
            return
        with errors_for(ref, tree_name):
            chunks = table.iterate(names, entry_start, entry_stop, step_size)
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
        return get_table(file, ref, tree_name).num_entries
