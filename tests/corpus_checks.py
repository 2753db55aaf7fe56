"""The ROOT corpus conformance checks, shared by tests/integration/test_root_corpus_conformance.py
and scripts/corpus_table.py (which writes docs/root-corpus.md).

For one file of tests/data/corpus/, two halves:

- :func:`describe_file` asks uproot alone (no beamops code): can it open the file; which TTrees
  and RNTuples does it hold at any depth (``classnames(recursive=True)``, highest cycle of each
  path); for each, ``keys(recursive=True)`` and, for every key uproot reads as numbers (flat,
  fixed-size arrays, one level of variable-length lists), the values themselves. The result is
  plain data (picklable), so it may be computed in another process.
- :func:`check_file` puts the same file through a running data service: registers each object by
  its path, checks the version's entry count and schema (every key listed by its full path,
  numeric ones with uproot's layout and dtype, the others with a reason), streams every branch the
  schema calls numeric and compares it with uproot value for value (NaN equal to NaN). A file or
  object uproot refuses must be refused with DATA_LOSS or INVALID_ARGUMENT and a clean message.

Every mismatch is collected as a line of text in :attr:`ObjectResult.failures` (nothing raises),
so one run reports everything that fails.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import multiprocessing
import re
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import awkward as ak
import grpc
import numpy as np
import pyarrow as pa
import uproot

from tests.real_data import CORPUS

KINDS = {
    "TTree": "TTree", "TNtuple": "TTree", "TNtupleD": "TTree",
    "ROOT::RNTuple": "RNTuple", "ROOT::Experimental::RNTuple": "RNTuple",
}
TEXT = {"string", "bytestring", "char", "byte"}  # awkward's __array__ of text; "bitset", "set" are numbers
NUMERIC_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                  "float16", "float32", "float64"}
LAYOUTS = {1: "flat", 2: "jagged", 3: "fixed"}  # dataset_pb2.BranchLayout values
REFUSED = (grpc.StatusCode.DATA_LOSS, grpc.StatusCode.INVALID_ARGUMENT)
MAX_READ_CALLS = 64  # per object, when a read fails and the failing branches are searched for
MAX_REFUSED_READS = 5  # per object: branches uproot cannot read, each read alone
MAX_DIAGNOSED = 10   # value mismatches explained (first differing entry) per object
FILE_TIMEOUT_S = 240.0  # all the service calls of one file (pytest-timeout stops a test at 300 s)


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.root"))


def dataset_name(file_name: str) -> str:
    """A dataset name for a corpus file: its stem, case kept, other characters made '_'."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(file_name).stem).replace("..", "_")
    return (stem if stem[:1].isalnum() else "f" + stem)[:100]


def _short(text: object, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _why(exc: BaseException) -> str:
    if isinstance(exc, uproot.KeyInFileError):  # its str() ranks every key by edit distance: slow
        return _short(f"KeyInFileError: no {exc.key!r}")
    text = str(exc)
    return _short(f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}")


# ------------------------------------------------------------------------------ uproot's side

@dataclass
class Expected:
    """What uproot says about one key: its layout and dtype when it reads it as numbers."""

    name: str
    type_text: str = ""       # awkward type as uproot gives it (or why it cannot be read)
    layout: str | None = None  # "flat", "fixed", "jagged" when numeric; else None
    dtype: str | None = None
    shape: tuple[int, ...] = ()
    unreadable: bool = False   # uproot cannot interpret it
    read_error: str = ""       # uproot interprets it as numbers, yet cannot read it: why

    @property
    def numeric(self) -> bool:
        return self.layout is not None and not self.unreadable


@dataclass
class ObjectRef:
    path: str
    kind: str                                      # "TTree" or "RNTuple"
    classname: str = ""
    error: str = ""                                # uproot could not get the object: why
    num_entries: int | None = None
    keys: list[str] = field(default_factory=list)  # keys(recursive=True), each name once
    repeated: list[str] = field(default_factory=list)  # names keys(recursive=True) gives twice or more
    branches: dict[str, Expected] = field(default_factory=dict)
    values: dict[str, Values] = field(default_factory=dict)  # numeric keys uproot read


@dataclass
class Values:
    """uproot's values of one numeric key, as numpy: ``data`` is (entries, *fixed shape) for a
    flat or fixed-size branch, every value in entry order for a jagged one (then ``counts``
    holds the number of values of each entry)."""

    data: np.ndarray
    counts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.counts) if self.counts is not None else len(self.data)


@dataclass
class FileRef:
    name: str
    error: str = ""                                # uproot could not open or list the file: why
    objects: list[ObjectRef] = field(default_factory=list)
    other: str = ""                                # a key that is no tree (files without trees)
    other_class: str = ""


def classify(form: ak.forms.Form) -> tuple[str, str, tuple[int, ...]] | None:
    """(layout, dtype, fixed shape) of an awkward form that is numbers; None otherwise."""
    parameters = form.parameters or {}
    if parameters.get("__array__") in TEXT or parameters.get("__categorical__"):
        return None
    if isinstance(form, ak.forms.NumpyForm):
        if form.primitive not in NUMERIC_DTYPES:
            return None
        shape = tuple(int(n) for n in form.inner_shape)
        return ("fixed" if shape else "flat", form.primitive, shape)
    if isinstance(form, ak.forms.RegularForm):
        inner = classify(form.content)
        if inner is None or inner[0] == "jagged":
            return None
        return "fixed", inner[1], (int(form.size),) + inner[2]
    if isinstance(form, (ak.forms.ListOffsetForm, ak.forms.ListForm)):
        inner = classify(form.content)
        if inner is None or inner[0] != "flat":
            return None
        return "jagged", inner[1], ()
    return None


def _expect(name: str, form: ak.forms.Form) -> Expected:
    kind = classify(form)
    text = _short(str(form.type), 120)
    if kind is None:
        return Expected(name, text)
    return Expected(name, text, *kind)


def _objects(file: uproot.ReadOnlyDirectory) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """([(path, class)] of TTrees and RNTuples, [(path, class)] of other objects), each path at
    its highest cycle, in the order of the file."""
    best: dict[str, tuple[int, str]] = {}
    for key, classname in file.classnames(recursive=True).items():
        path = "/".join(part.rpartition(";")[0] if ";" in part else part for part in key.split("/"))
        cycle = int(key.rpartition(";")[2]) if ";" in key else 0
        if path not in best or cycle > best[path][0]:
            best[path] = (cycle, classname)
    trees = [(p, c) for p, (_, c) in best.items() if c in KINDS]
    others = [(p, c) for p, (_, c) in best.items() if c not in KINDS and c != "TDirectory"]
    return trees, others


def describe_file(path: Path) -> FileRef:
    """What uproot alone makes of ``path`` (see the module docstring). uproot raises many kinds
    of exception for what it cannot read: each ``except Exception`` below records why."""
    ref = FileRef(path.name)
    try:
        file = uproot.open(path)
    except Exception as exc:
        ref.error = _why(exc)
        return ref
    with file:
        try:
            trees, others = _objects(file)
        except Exception as exc:
            ref.error = _why(exc)
            return ref
        if others:
            ref.other, ref.other_class = others[0]
        for obj_path, classname in trees:
            ref.objects.append(_describe_object(file, obj_path, classname))
    return ref


def _describe_object(file: uproot.ReadOnlyDirectory, path: str, classname: str) -> ObjectRef:
    ref = ObjectRef(path, KINDS[classname], classname)
    try:
        obj = file[path]
        ref.num_entries = int(obj.num_entries)
        # keys(recursive=True), each with its branch or field: the first of a name repeated
        # (a tree may hold two branches of one name), without looking each name up again
        items: dict[str, object] = {}
        for name, item in obj.items(recursive=True):
            if name in items and name not in ref.repeated:
                ref.repeated.append(name)
            items.setdefault(name, item)
        ref.keys = list(items)
    except Exception as exc:
        ref.error = _why(exc)
        return ref
    if ref.kind == "TTree":
        _describe_ttree(obj, items, ref)
    else:
        _describe_rntuple(items, ref)
    return ref


def _describe_ttree(tree, items: dict, ref: ObjectRef) -> None:
    for name, branch in items.items():
        try:
            interpretation = branch.interpretation
            if isinstance(interpretation, Exception):  # UnknownInterpretation is returned, not raised
                raise interpretation
            ref.branches[name] = _expect(name, interpretation.awkward_form(branch.file))
        except Exception as exc:
            ref.branches[name] = Expected(name, _why(exc), unreadable=True)
    numeric = [n for n, e in ref.branches.items() if e.numeric]
    arrays: dict[str, ak.Array] = {}
    if numeric:
        try:
            arrays = tree.arrays(numeric, library="ak", how=dict)
        except Exception:
            for name in numeric:  # find the ones uproot cannot read
                try:
                    arrays[name] = items[name].array(library="ak")
                except Exception as exc:
                    ref.branches[name].read_error = _why(exc)
    _keep(ref, arrays)


def _describe_rntuple(items: dict, ref: ObjectRef) -> None:
    for name, item in items.items():
        try:
            empty = item.array(entry_start=0, entry_stop=0, library="ak")
            ref.branches[name] = _expect(name, empty.layout.form)
        except Exception as exc:
            ref.branches[name] = Expected(name, _why(exc), unreadable=True)
    arrays: dict[str, ak.Array] = {}
    for name in [n for n, e in ref.branches.items() if e.numeric]:
        try:
            arrays[name] = items[name].array(library="ak")
        except Exception as exc:
            ref.branches[name].read_error = _why(exc)
    _keep(ref, arrays)


def _keep(ref: ObjectRef, arrays: dict[str, ak.Array]) -> None:
    """Keep the values read (as numpy), re-checking each one's layout on the array itself. A
    branch holding fewer entries than its tree (filled fewer times) is no column of it."""
    for name, array in arrays.items():
        expected = ref.branches[name] = _expect(name, array.layout.form)
        if not expected.numeric:
            continue
        if len(array) != ref.num_entries:
            ref.branches[name] = Expected(name, f"{expected.type_text} (uproot reads {len(array)} "
                                                f"entries, its {ref.kind} has {ref.num_entries})")
            continue
        try:
            if expected.layout == "jagged":
                values = Values(_native(ak.to_numpy(ak.flatten(array, axis=1))),
                                ak.to_numpy(ak.num(array, axis=1)).astype(np.int64))
            else:
                values = Values(_native(ak.to_numpy(array)))
        except Exception as exc:
            ref.branches[name] = Expected(name, f"{expected.type_text} (not as numpy: {_why(exc)})")
            continue
        ref.values[name] = values


def _native(data: np.ndarray) -> np.ndarray:
    data = np.asarray(data)
    return data if data.dtype.isnative else data.astype(data.dtype.newbyteorder("="))


class References:
    """:func:`describe_file` of the corpus files, computed in one worker process a few files
    ahead of the caller (uproot's side then takes the second core while the service works in
    this one). ``get(name)`` waits for that file's description."""

    def __init__(self, paths: Sequence[Path], ahead: int = 3) -> None:
        self._paths = list(paths)
        self._index = {p.name: i for i, p in enumerate(self._paths)}
        self._ahead = ahead
        self._futures: dict[str, concurrent.futures.Future] = {}
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        for path in self._paths[:ahead]:
            self._submit(path)

    def _submit(self, path: Path) -> None:
        if path.name not in self._futures:
            self._futures[path.name] = self._pool.submit(describe_file, path)

    def get(self, name: str) -> FileRef:
        if name not in self._index:  # not planned: compute it now
            return describe_file(CORPUS / name)
        i = self._index[name]
        for path in [self._paths[i]] + self._paths[i + 1:i + 1 + self._ahead]:
            self._submit(path)
        future = self._futures.pop(name)
        try:
            return future.result()
        except concurrent.futures.BrokenExecutor:
            return describe_file(self._paths[i])

    async def aget(self, name: str) -> FileRef:
        return await asyncio.get_running_loop().run_in_executor(None, self.get, name)

    def close(self) -> None:
        for future in self._futures.values():
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------ service's side

@dataclass
class ObjectResult:
    file: str
    path: str                  # object path ("" when the file has no TTree/RNTuple)
    kind: str                  # "TTree", "RNTuple" or "-"
    entries: int | None = None
    keys: int = 0              # keys uproot lists
    listed: int = 0            # of them, listed in the version's schema
    numeric: int = 0           # keys uproot reads as numbers
    compared: int = 0          # branches streamed and equal to uproot's values
    note: str = ""             # what was checked when there was nothing to stream
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def result_lines(results: Sequence[ObjectResult]) -> list[str]:
    """One line per failure: "<object path>: <what failed>"."""
    return [f"{r.path or '(file)'} [{r.kind}]: {f}" for r in results for f in r.failures]


def _rpc(err: grpc.aio.AioRpcError) -> str:
    return f"{err.code().name}: {_short(err.details(), 300)}"


def _clean_refusal(err: grpc.aio.AioRpcError, echo: Sequence[str]) -> str | None:
    """None when ``err`` is DATA_LOSS/INVALID_ARGUMENT with a clean message, else why not."""
    from tests.security.assertions import assert_clean_error

    try:
        assert_clean_error(err, REFUSED, echo=echo)
    except AssertionError as exc:
        return f"refused, but not cleanly ({_rpc(err)}): {_short(exc, 200)}"
    return None


async def _expect_refusal(client, dataset: str, url: str, tree: str, what: str,
                          result: ObjectResult) -> None:
    try:
        response = await client.register(dataset, [url], tree=tree)
    except grpc.aio.AioRpcError as err:
        problem = _clean_refusal(err, echo=[url, tree, dataset])
        if problem:
            result.failures.append(f"register {tree!r}: {problem}")
        else:
            result.note = f"refused: {err.code().name}"
        return
    result.failures.append(f"register {tree!r}: {what}, yet the service registered it "
                           f"({response.version.entry_count} entries)")


async def check_file(client, ref: FileRef, url: str, timeout_s: float = FILE_TIMEOUT_S) -> list[ObjectResult]:
    """Put the file (data-root-relative ``url``) through the service; one result per object.
    Calls still running after ``timeout_s`` are cancelled (so the service may stop working on
    them) and the objects not done fail as timed out."""
    results: list[ObjectResult] = []
    try:
        async with asyncio.timeout(timeout_s):
            await _check_file(client, ref, url, results)
    except TimeoutError:
        left = ref.objects[len(results):] or [ObjectRef("", "-")]
        for i, obj in enumerate(left):
            why = (f"timed out: over {timeout_s:.0f} s for the file, cancelled while checking this"
                   if i == 0 else "not checked: the file's checks timed out before")
            results.append(ObjectResult(ref.name, obj.path, obj.kind, obj.num_entries, len(obj.keys),
                                        failures=[why]))
    return results


async def _check_file(client, ref: FileRef, url: str, results: list[ObjectResult]) -> None:
    dataset = dataset_name(ref.name)
    if ref.error:
        result = ObjectResult(ref.name, "", "-")
        await _expect_refusal(client, dataset, url, "events",
                              f"uproot cannot open the file ({ref.error})", result)
        result.note = result.note or "uproot cannot open it"
        results.append(result)
        return
    if not ref.objects:
        result = ObjectResult(ref.name, ref.other, "-")
        target = ref.other or "events"
        await _expect_refusal(client, dataset, url, target,
                              f"{target!r} is a {ref.other_class or 'missing object'}, not a tree",
                              result)
        result.note = f"no TTree/RNTuple; {result.note}" if result.note else "no TTree/RNTuple"
        results.append(result)
        return
    for obj in ref.objects:
        results.append(await check_object(client, dataset, url, ref.name, obj))


async def check_object(client, dataset: str, url: str, file_name: str, ref: ObjectRef) -> ObjectResult:
    from beamops.data.v1 import data_service_pb2 as pb

    result = ObjectResult(file_name, ref.path, ref.kind, ref.num_entries, len(ref.keys),
                          numeric=sum(e.numeric for e in ref.branches.values()))
    if ref.error:
        await _expect_refusal(client, dataset, url, ref.path,
                              f"uproot cannot read the {ref.classname} ({ref.error})", result)
        return result
    try:
        registered = await client.register(dataset, [url], tree=ref.path)
        got = await client.stub.GetDatasetVersion(
            pb.GetDatasetVersionRequest(dataset=dataset, version_id=registered.version.version_id),
            metadata=client.md("reader"))
    except grpc.aio.AioRpcError as err:
        result.failures.append(f"register: {_rpc(err)}")
        return result
    version = got.version
    if version.entry_count != ref.num_entries:
        result.failures.append(f"entry_count {version.entry_count}, uproot has {ref.num_entries}")
    if version.schema.tree_name != ref.path:
        result.failures.append(f"schema.tree_name {version.schema.tree_name!r}, expected {ref.path!r}")
    names, unreadable = _check_schema(version.schema, ref, result)
    if names:
        await _check_values(client, dataset, version.version_id, names, ref, result)
    elif not result.failures:
        result.note = "no numeric branch to stream"
    for name in unreadable[:MAX_REFUSED_READS]:
        await _expect_refused_read(client, dataset, version.version_id, name, ref, result)
    if unreadable:
        result.note = (f"{len(unreadable)} branches uproot cannot read, each refused by name "
                       f"(DATA_LOSS; {min(len(unreadable), MAX_REFUSED_READS)} tried)")
    return result


async def _expect_refused_read(client, dataset: str, version_id: str, name: str, ref: ObjectRef,
                               result: ObjectResult) -> None:
    """A branch uproot cannot read: reading it alone must be refused cleanly, naming it."""
    why = ref.branches[name].read_error
    try:
        table = await client.read_table(dataset, version_id, branches=[name])
    except grpc.aio.AioRpcError as err:
        problem = _clean_refusal(err, echo=[name])
        if problem is None and name not in err.details():
            problem = f"refused without naming the branch ({_rpc(err)})"
        if problem:
            result.failures.append(f"read of {name!r}, which uproot cannot read ({why}): {problem}")
        return
    result.failures.append(f"read of {name!r} gave {table.num_rows} rows, yet uproot cannot read "
                           f"it ({why})")


def _check_schema(schema, ref: ObjectRef, result: ObjectResult) -> tuple[list[str], list[str]]:
    """Compare the schema with uproot's keys; return the branches the schema calls numeric
    whose values uproot read, and those uproot cannot read."""
    listed = [b.name for b in schema.branches]
    by_name = {b.name: b for b in schema.branches}
    if len(by_name) != len(listed):
        seen: set[str] = set()
        dup = list(dict.fromkeys(n for n in listed if n in seen or seen.add(n)))
        also = " (uproot's keys(recursive=True) repeats them too: two branches of one name)" \
            if set(dup) <= set(ref.repeated) else ""
        result.failures.append(f"schema lists {len(dup)} names more than once{also}, e.g. {dup[:3]}")
    missing = [k for k in ref.keys if k not in by_name]
    extra = [n for n in by_name if n not in set(ref.keys)]
    result.listed = len(ref.keys) - len(missing)
    if missing:
        result.failures.append(f"schema misses {len(missing)} of {len(ref.keys)} keys, e.g. {missing[:3]}")
    if extra:
        result.failures.append(f"schema lists {len(extra)} names uproot does not, e.g. {extra[:3]}")
    problems: dict[str, list[str]] = {}
    numeric = []
    from beamops.common.v1 import tensor_pb2

    for name in ref.keys:
        branch = by_name.get(name)
        if branch is None:
            continue
        want = ref.branches[name]
        is_numeric = branch.dtype != tensor_pb2.DATA_TYPE_UNSPECIFIED
        dtype = tensor_pb2.DataType.Name(branch.dtype).removeprefix("DATA_TYPE_").lower()
        layout = LAYOUTS.get(branch.layout, "unspecified")
        if is_numeric:
            numeric.append(name)
            if branch.reason:
                problems.setdefault("numeric, yet with a reason", []).append(name)
        elif not branch.reason:
            problems.setdefault("not numeric, without a reason", []).append(name)
        if want.numeric and not is_numeric:
            problems.setdefault("uproot reads numbers, schema says not numeric", []).append(
                f"{name} ({want.type_text}; reason {branch.reason!r})")
        elif is_numeric and want.unreadable:
            problems.setdefault("schema says numeric, uproot cannot read it", []).append(
                f"{name} ({want.type_text})")
        elif is_numeric and not want.numeric:
            problems.setdefault("schema says numeric, uproot reads no numbers", []).append(
                f"{name} (uproot: {want.type_text}; schema: {layout} {dtype})")
        elif is_numeric:
            if layout != want.layout:
                problems.setdefault("layout differs", []).append(f"{name} ({layout}, uproot {want.layout})")
            if dtype != want.dtype:
                problems.setdefault("dtype differs", []).append(f"{name} ({dtype}, uproot {want.dtype})")
            if want.layout == "fixed" and tuple(branch.fixed_shape) != want.shape:
                problems.setdefault("fixed_shape differs", []).append(
                    f"{name} ({list(branch.fixed_shape)}, uproot {list(want.shape)})")
    for what, which in problems.items():
        result.failures.append(f"{what}: {len(which)} branches, e.g. {which[:3]}")
    return ([n for n in numeric if n in ref.values],
            [n for n in numeric if ref.branches[n].read_error])


async def _check_values(client, dataset: str, version_id: str, names: list[str], ref: ObjectRef,
                        result: ObjectResult) -> None:
    tables: list[pa.Table] = []
    errors: dict[str, list[str]] = {}
    calls = [0]

    def reason(err: grpc.aio.AioRpcError, part: Sequence[str]) -> tuple[str, list[str]]:
        """The message with the branch names it quotes made <branch>, and those names."""
        message, quoted = _rpc(err), []
        for name in sorted(part, key=len, reverse=True):
            for shown in (repr(name), f'"{name}"', f"`{name}`"):
                if shown in message:
                    message = message.replace(shown, "<branch>")
                    quoted.append(name)
        return message, quoted

    async def read(part: list[str]) -> None:
        # A failed read is retried without the branches its message names; when it names none,
        # the branches are halved to find the failing ones (the others are still compared).
        while part:
            calls[0] += 1
            try:
                tables.append(await client.read_table(dataset, version_id, branches=part))
                return
            except grpc.aio.AioRpcError as err:
                message, quoted = reason(err, part)
                if quoted and calls[0] < MAX_READ_CALLS:
                    errors.setdefault(message, []).extend(quoted)
                    part = [n for n in part if n not in set(quoted)]
                    continue
                if len(part) == 1 or calls[0] >= MAX_READ_CALLS:
                    errors.setdefault(message, []).extend(part)
                    return
            half = len(part) // 2
            await read(part[:half])
            await read(part[half:])
            return

    await read(names)
    for message, which in errors.items():
        result.failures.append(f"read of {len(which)} branches, e.g. {which[:3]}: {message}")
    diagnosed = 0
    mismatched: list[str] = []
    short: dict[int, list[str]] = {}   # rows streamed (not uproot's) -> branches of those reads
    repeated: list[str] = []
    for table in tables:
        seen: set[str] = set()
        if table.num_rows != ref.num_entries:
            short.setdefault(table.num_rows, []).extend(table.column_names)
            continue
        for i, name in enumerate(table.column_names):
            if name in seen:
                repeated.append(name)
                continue
            seen.add(name)
            if name not in ref.values:
                continue
            problem = compare(ref.values[name], table.column(i), explain=diagnosed < MAX_DIAGNOSED)
            if problem is None:
                result.compared += 1
            else:
                diagnosed += 1
                mismatched.append(f"{name}: {problem}")
    for rows, which in short.items():
        result.failures.append(f"stream gave {rows} rows, uproot has {ref.num_entries}, reading "
                               f"{len(which)} branches, e.g. {which[:3]}")
    if repeated:
        result.failures.append(f"stream has {len(repeated)} columns more than once, e.g. {repeated[:3]}")
    streamed = {n for t in tables for n in t.column_names}
    absent = [n for n in names if n not in streamed and not any(n in w for w in errors.values())]
    if absent:
        result.failures.append(f"stream has no column for {len(absent)} branches, e.g. {absent[:3]}")
    if mismatched:
        result.failures.append(f"values differ in {len(mismatched)} branches: " + "; ".join(mismatched[:3]))


def compare(expected: Values, column: pa.ChunkedArray | pa.Array, explain: bool = True) -> str | None:
    """None when the streamed ``column`` holds uproot's values (same dtype, NaN equal to NaN,
    jagged entries of the same lengths); else a short description of the first difference."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if len(column) != len(expected):
        return f"{len(column)} values, uproot has {len(expected)}"
    try:
        if expected.counts is not None:
            if not pa.types.is_list(column.type) and not pa.types.is_large_list(column.type):
                return f"stream type {column.type}, uproot's is jagged"
            counts = column.value_lengths().to_numpy(zero_copy_only=False)
            data = _flat_values(column.flatten())
            if column.null_count:
                return f"{column.null_count} null entries in the stream"
            if not np.array_equal(counts, expected.counts):
                i = int(np.flatnonzero(counts != expected.counts)[0])
                return f"entry {i} has {counts[i]} values, uproot's {expected.counts[i]}"
        else:
            data = _flat_values(column)
            data = data.reshape((len(column),) + expected.data.shape[1:]) if data.size == expected.data.size \
                else data
    except Exception as exc:
        return f"cannot compare a stream of type {column.type}: {_why(exc)}"
    if data.dtype.name != expected.data.dtype.name:
        return f"dtype differs: stream {data.dtype.name}, uproot {expected.data.dtype.name}"
    if data.shape != expected.data.shape:
        return f"shape differs: stream {data.shape}, uproot {expected.data.shape}"
    nan = data.dtype.kind in "fc"
    if np.array_equal(data, expected.data, equal_nan=nan):
        return None
    if not explain:
        return "values differ"
    same = (data == expected.data) | (np.isnan(data) & np.isnan(expected.data) if nan else False)
    flat = np.flatnonzero(~same.reshape(len(same), -1).all(axis=1)) if same.ndim > 1 else np.flatnonzero(~same)
    k = int(flat[0])
    if expected.counts is not None:
        entry = int(np.searchsorted(np.cumsum(expected.counts), k, side="right"))
        return f"entry {entry}: stream {data[k]!r}, uproot {expected.data[k]!r} (value {k})"
    return f"entry {k}: stream {_short(data[k], 60)}, uproot {_short(expected.data[k], 60)}"


def _flat_values(array: pa.Array) -> np.ndarray:
    """A primitive or (nested) fixed-size-list Arrow array as numpy (fixed sizes as dimensions)."""
    shape: list[int] = []
    while pa.types.is_fixed_size_list(array.type):
        shape.append(array.type.list_size)
        array = array.flatten()
    if array.null_count:
        raise ValueError(f"{array.null_count} null values")
    if not (pa.types.is_integer(array.type) or pa.types.is_floating(array.type)
            or pa.types.is_boolean(array.type)):
        raise ValueError(f"values of type {array.type}")
    data = array.to_numpy(zero_copy_only=False)
    return data.reshape((-1, *shape)) if shape else data


# ------------------------------------------------------------------------------ the service

@contextlib.asynccontextmanager
async def corpus_service(work: Path) -> AsyncIterator[object]:
    """A data service in this process whose data root holds a copy of the corpus under
    ``corpus/``; yields a tests.fixtures.data_service.DataClient."""
    from beamops.data.server import create_server
    from beamops.data.settings import DataSettings
    from beamops.data.v1 import data_service_pb2_grpc
    from beamops.runtime.auth import TokenStore

    from tests.fixtures.data_service import DataClient
    from tests.fixtures.services import ROLES, Tokens, running

    root = work / "data"
    shutil.copytree(CORPUS, root / "corpus")
    store = TokenStore(work / "auth" / "tokens.json")
    tokens = Tokens(path=work / "auth" / "tokens.json", store=store,
                    **{role: store.create(f"{role}-user", value) for role, value in ROLES.items()})
    settings = DataSettings(port=0, var_dir=work / "var", tokens_file=tokens.path, data_roots=[root],
                            log_json=False)
    async with running(create_server, settings) as (_server, channel):
        yield DataClient(data_service_pb2_grpc.DataServiceStub(channel), channel, tokens)
