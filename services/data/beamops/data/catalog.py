"""The data service's domain logic: register, derive, look up, plan reads, lineage, statistics.

No gRPC here. Methods are blocking (they read files); the servicer runs them in a thread.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Callable, Sequence

from beamops.runtime.errors import (
    DataLoss, FailedPrecondition, InvalidArgument, NotFound,
)
from beamops.runtime.pages import Listing, page_size

from . import parquet_io, rootio, splitting, statistics
from .rootio import OpenFiles
from .arrow_codec import arrow_schema, to_record_batch
from .artifacts import ArtifactArea, artifact_url
from .cuts import Cut, combine, parse_cut
from .lru import Lru
from .hashing import FileDigest, FileHasher, content_hash, version_id_for
from .model import (
    BranchInfo, Dataset, DatasetStatistics, DatasetVersion, Derivation, EntryRange, FileRecord,
    LineageNode, SourceSpec, TreeInfo, VersionRef,
)
from .reading import ReadPlan, chain_range, check_numeric, count_entries, read_batches
from .sources import SourceFileRef, SourceKind, SourceResolver
from .store import DataStore

from beamops.runtime.names import check_name  # the one name rule of every resource kind

VERSION_ID = re.compile(r"^dsv-[0-9a-f]{16}$")
MAX_TAGS, MAX_TAG_LENGTH, MAX_DESCRIPTION = 64, 128, 10_000


def check_dataset_name(name: str, field: str = "dataset") -> None:
    """Dataset names follow beamops.runtime.names: case-sensitive, kept as typed (PHYSLITE)."""
    check_name(name, "dataset name", field=field)


def check_version_id(version_id: str, field: str = "version_id") -> None:
    if not VERSION_ID.fullmatch(version_id or ""):
        raise InvalidArgument(f"version id {_shown(version_id)} is not valid (expected dsv- and 16 hex digits)",
                              field=field)


def _shown(value: str) -> str:
    """A name as quoted in messages: ASCII only (no control or bidi characters), cut at 60."""
    value = value or ""
    return ascii(value if len(value) <= 60 else value[:60] + "...")


DATASETS = Listing("data.datasets")  # by offset, ordered by name
VERSIONS = Listing("data.dataset_versions")  # by offset, newest first


def _check_metadata(description: str, tags: Sequence[str]) -> list[str]:
    if len(description) > MAX_DESCRIPTION:
        raise InvalidArgument(f"the description is longer than {MAX_DESCRIPTION} characters",
                              field="description")
    if len(tags) > MAX_TAGS or any(not t or len(t) > MAX_TAG_LENGTH or not t.isprintable() for t in tags):
        raise InvalidArgument(f"tags must be 1 to {MAX_TAG_LENGTH} printable characters, "
                              f"at most {MAX_TAGS} of them", field="tags")
    return sorted(set(tags))


def select_branches(available: Sequence[str], patterns: Sequence[str], field: str) -> list[str]:
    """Branch names matching ``patterns``, in ``available`` order; all if empty. As uproot's
    ``filter_name``: an exact name, a glob ("Jet_*") or a regular expression between slashes
    ("/^Muon_(pt|eta)$/"), matched against the full path."""
    if not patterns:
        return list(available)
    chosen: set[str] = set()
    names = set(available)
    for pattern in patterns:
        if pattern in names:  # a branch's own name, even one with glob characters ("ig[6]")
            hits = [pattern]
        elif len(pattern) > 2 and pattern.startswith("/") and pattern.endswith("/"):
            try:
                regex = re.compile(pattern[1:-1])
            except re.error as exc:
                raise InvalidArgument(f"branch pattern {pattern!r} is not a valid regular "
                                      f"expression: {exc}", field=field) from None
            hits = [name for name in available if regex.search(name)]
        elif any(ch in pattern for ch in "*?["):
            hits = fnmatch.filter(available, pattern)
        else:
            hits = []
        if not hits:
            raise InvalidArgument(f"no branch matches {pattern!r}", field=field)
        chosen.update(hits)
    return [name for name in available if name in chosen]


Progress = Callable[[int, int, int], None]  # (files described, files in all, bytes hashed)


def _shared_columns(refs: Sequence[SourceFileRef], infos: Sequence[TreeInfo],
                    common: bool) -> list[BranchInfo]:
    """The columns every file has (same path, same type), in the first file's order. Unless
    ``common``, a file whose columns differ from the first file's is an error naming both."""
    first = infos[0]
    shared = list(first.branches)
    for ref, info in zip(refs[1:], infos[1:]):
        if info.kind != first.kind:
            raise InvalidArgument(f"file {ref.url!r} holds an {info.kind} and file {refs[0].url!r} "
                                  f"a {first.kind} under the same name", field="source.tree_name")
        theirs = {b.name: b.type_name for b in info.branches}
        if not common:
            ours = {b.name for b in first.branches}
            differ = next((b for b in first.branches if theirs.get(b.name) != b.type_name), None)
            extra = next((b.name for b in info.branches if b.name not in ours), None)
            if differ is not None or extra is not None:
                if differ is None:
                    what = f"has a branch {extra!r} that file {refs[0].url!r} has not"
                elif differ.name in theirs:
                    what = (f"has branch {differ.name!r} of type {theirs[differ.name]}, not "
                            f"{differ.type_name} as in file {refs[0].url!r}")
                else:
                    what = f"has no branch {differ.name!r} ({differ.type_name}) like file {refs[0].url!r}"
                raise InvalidArgument(f"file {ref.url!r} {what}; select the branches all files "
                                      "share, or register their common branches "
                                      "(common_branches)", field="source.branches")
        shared = [b for b in shared if theirs.get(b.name) == b.type_name]
        if not shared and first.branches:
            raise InvalidArgument(f"the files share no branch: file {ref.url!r} has none of the "
                                  f"branches the files before it share", field="source.branches")
    return shared


class DataCatalog:
    def __init__(self, store: DataStore, resolver: SourceResolver, hasher: FileHasher,
                 artifacts: ArtifactArea, timeout_s: float = 30.0, step_size: int = 100_000,
                 open_files: OpenFiles | None = None, workers: int = 4) -> None:
        self._store = store
        self._workers = workers
        # (file sha256, tree path) -> its description: a file's bytes decide it, so it never
        # goes stale.
        self._schemas: Lru[tuple[str, str], TreeInfo] = Lru(4096)
        self._open_files = open_files
        self._artifacts = artifacts
        self._resolver = resolver
        self._hasher = hasher
        self._timeout = timeout_s
        self._step = step_size

    # -- registration -------------------------------------------------------------------------

    def register(self, dataset: str, source: SourceSpec, description: str, tags: Sequence[str],
                 created_by: str, validate_only: bool = False,
                 progress: Progress | None = None) -> tuple[DatasetVersion, bool]:
        check_dataset_name(dataset)
        tags = _check_metadata(description, tags)
        tree = source.tree_name.strip()
        if not tree:
            raise InvalidArgument("give the path of the TTree or RNTuple to read (e.g. 'Events')",
                                  field="source.tree_name")
        r = source.entry_range
        if r.start < 0 or r.stop < 0 or (r.stop and r.stop <= r.start):
            raise InvalidArgument(f"entry range [{r.start}, {r.stop}) is not valid: need "
                                  "0 <= start < stop (stop = 0: to the end)", field="source.entry_range")
        refs = self._resolver.resolve_all(source.urls)
        described = self._describe_files(refs, tree, progress)
        digests = [d for d, _ in described]
        infos = [i for _, i in described]
        first = infos[0]
        columns = _shared_columns(refs, infos, source.common_branches)
        all_names = [b.name for b in columns]
        selected = select_branches(all_names, source.branches, "source.branches")
        cut = parse_cut(source.cut, all_names, field="source.cut")
        total = sum(i.num_entries for i in infos)
        start = min(r.start, total)
        stop = total if r.stop == 0 else min(r.stop, total)
        if r.start > total:
            raise InvalidArgument(f"entry range starts at {r.start} but the files hold {total} entries",
                                  field="source.entry_range")
        files = [
            FileRecord(url=ref.url, sha256=d.sha256, size_bytes=d.size_bytes,
                       entry_count=info.num_entries)
            for ref, d, info in zip(refs, digests, infos)
        ]
        payload = {
            "kind": "files",
            "files": [f.sha256 for f in files],
            "tree": tree,
            "branches": selected,
            "cut": cut.text if cut else "",
            "entry_range": [start, stop],
        }
        chash = content_hash(payload)
        vid = version_id_for(chash)
        existing = self._store.get_version(dataset, vid)
        if existing is not None:
            return existing, False
        effective = SourceSpec(urls=[f.url for f in files], tree_name=tree, branches=selected,
                               cut=cut.text if cut else "", entry_range=EntryRange(start=start, stop=stop))
        version = DatasetVersion(
            dataset=dataset, version_id=vid, content_hash=chash, source=effective, files=files,
            branches=[b for b in columns if b.name in set(selected)], tree_kind=first.kind,
            all_branch_names=all_names, entry_count=stop - start, description=description,
            tags=tags, created_by=created_by, create_time=datetime.now(timezone.utc),
        )
        if cut is not None:
            count = count_entries(ReadPlan(version=version, files=refs, branches=[],
                                           version_cut=cut, extra_cut=None,
                                           step_size=self._step, timeout_s=self._timeout))
            version = version.model_copy(update={"entry_count": count})
        if validate_only:
            return version, False
        return self._store.add_version(version)

    def _describe_files(self, refs: Sequence[SourceFileRef], tree: str,
                        progress: Progress | None) -> list[tuple[FileDigest, TreeInfo]]:
        """Hash and inspect every file, ``self._workers`` at a time, in the order of ``refs``.
        A file's description is a function of its bytes: an unchanged local file (its hash
        cached by size and mtime) is not opened again."""
        done = [0, 0]  # files, bytes
        lock = threading.Lock()

        def describe(ref: SourceFileRef) -> tuple[FileDigest, TreeInfo]:
            if not ref.is_local:  # uproot opens it first: its timeout and errors come first
                info = rootio.inspect_tree(ref, tree, self._timeout)
                return counted(self._hasher.digest(ref), info)
            digest = self._hasher.digest(ref)
            info = self._schemas.get((digest.sha256, tree))
            if info is None:
                info = rootio.inspect_tree(ref, tree, self._timeout)
                self._schemas.put((digest.sha256, tree), info)
            return counted(digest, info)

        def counted(digest: FileDigest, info: TreeInfo) -> tuple[FileDigest, TreeInfo]:
            if progress is not None:
                with lock:
                    done[0] += 1
                    done[1] += digest.size_bytes
                    progress(done[0], len(refs), done[1])
            return digest, info

        if len(refs) == 1 or self._workers <= 1:
            return [describe(ref) for ref in refs]
        with ThreadPoolExecutor(min(self._workers, len(refs)), "register") as pool:
            return list(pool.map(describe, refs))

    # -- derivation ---------------------------------------------------------------------------

    def derive(self, parent_ref: VersionRef, dataset: str, derivation: Derivation,
               description: str, tags: Sequence[str], created_by: str) -> tuple[DatasetVersion, bool]:
        if parent_ref.split:
            raise InvalidArgument("derive from a whole version: leave parent.split empty",
                                  field="parent.split")
        parent = self.get_version(parent_ref.dataset, parent_ref.version_id, "parent")
        dataset = dataset or parent.dataset
        check_dataset_name(dataset)
        tags = _check_metadata(description, tags)
        if parent.split is not None and derivation.kind != "parquet":
            raise FailedPrecondition(
                f"version {parent.version_id} is a split; derive selections and splits from the "
                "version it was split from")
        update: dict = {}
        if derivation.kind == "selection":
            cut = parse_cut(derivation.cut, parent.all_branch_names, field="selection.cut")
            if cut is None:
                raise InvalidArgument("a selection needs a cut", field="selection.cut")
            branches = select_branches([b.name for b in parent.branches], derivation.branches,
                                       "selection.branches")
            derivation = derivation.model_copy(update={"cut": cut.text, "branches": branches})
            combined = combine(parent.source.cut, cut.text)
            update = {
                "source": parent.source.model_copy(update={"cut": combined, "branches": branches}),
                "branches": [b for b in parent.branches if b.name in set(branches)],
            }
        elif derivation.kind == "split":
            assert derivation.split is not None
            splitting.check_split(derivation.split)
            update = {"split": derivation.split,
                      "splits": splitting.split_counts(derivation.split, parent.entry_count)}
        else:
            derivation = derivation.model_copy(update={
                "compression": derivation.compression or "zstd",
                "row_group_size": derivation.row_group_size or parquet_io.DEFAULT_ROW_GROUP})
            if derivation.compression not in ("none", "snappy", "zstd"):
                raise InvalidArgument("choose a Parquet compression: none, snappy or zstd",
                                      field="parquet.compression")
            if not 1 <= derivation.row_group_size <= 10_000_000:
                raise InvalidArgument("parquet.row_group_size must be in [1, 10000000] (0: 100000)",
                                      field="parquet.row_group_size")
        chash = content_hash({"kind": "derived", "parent": parent.content_hash,
                              "derivation": derivation.model_dump(mode="json")})
        vid = version_id_for(chash)
        existing = self._store.get_version(dataset, vid)
        if existing is not None:
            return existing, False
        if derivation.kind == "parquet":
            update = self._convert_to_parquet(parent, derivation)
        version = parent.model_copy(update={
            **update, "dataset": dataset, "version_id": vid, "content_hash": chash,
            "derivation": derivation, "parents": [parent.ref], "description": description,
            "tags": tags, "created_by": created_by, "create_time": datetime.now(timezone.utc),
            "statistics_splits": [],
        })
        if derivation.kind == "selection":
            refs = self.file_refs(version)
            count = count_entries(ReadPlan(
                version=version, files=refs, branches=[],
                version_cut=parse_cut(version.source.cut, version.all_branch_names),
                extra_cut=None, step_size=self._step, timeout_s=self._timeout))
            if count == 0:
                raise InvalidArgument(f"the cut {derivation.cut!r} keeps no entry of the parent",
                                      field="selection.cut")
            version = version.model_copy(update={"entry_count": count})
        return self._store.add_version(version)

    def _convert_to_parquet(self, parent: DatasetVersion, derivation: Derivation) -> dict:
        """Write the parent's entries (after its cut and entry range; every numeric branch) to
        one Parquet file in the artifact area, batch by batch; the new version's fields."""
        branches = [b for b in parent.branches if b.numeric]
        if not branches:
            raise FailedPrecondition(f"version {parent.version_id} has no numeric branch to convert")
        plan = ReadPlan(version=parent, files=self.file_refs(parent), branches=[b.name for b in branches],
                        version_cut=parse_cut(parent.source.cut, parent.all_branch_names),
                        extra_cut=None, step_size=derivation.row_group_size, timeout_s=self._timeout)
        self.verify_files(parent, plan.files)
        schema = arrow_schema(branches, None, False)
        records = (to_record_batch(batch.arrays, branches, schema, None, None)[0]
                   for batch in read_batches(plan))
        tmp = self._artifacts.temp_path()
        try:
            rows = parquet_io.write(tmp, schema, records, derivation.compression)
            sha, size = self._artifacts.commit(tmp)
        finally:
            self._artifacts.discard(tmp)
        if rows != parent.entry_count:
            raise DataLoss(f"converting version {parent.version_id} wrote {rows} entries, not the "
                           f"{parent.entry_count} it has: its files changed or could not be read")
        names = [b.name for b in branches]
        return {
            "source": SourceSpec(urls=[artifact_url(sha)], tree_name=parent.source.tree_name,
                                 branches=names),
            "files": [FileRecord(url=artifact_url(sha), sha256=sha, size_bytes=size,
                                 entry_count=rows, format="parquet")],
            "branches": branches, "all_branch_names": names, "entry_count": rows,
        }

    # -- lookups ------------------------------------------------------------------------------

    def get_version(self, dataset: str, version_id: str, field: str = "") -> DatasetVersion:
        prefix = f"{field}." if field else ""
        check_dataset_name(dataset, prefix + "dataset")
        check_version_id(version_id, prefix + "version_id")
        version = self._store.get_version(dataset, version_id)
        if version is None:
            raise NotFound(f"dataset {dataset!r} has no version {version_id!r}",
                           dataset=dataset, version_id=version_id)
        return version

    def get_dataset(self, name: str) -> Dataset:
        check_dataset_name(name)
        found = self._store.get_dataset(name)
        if found is None:
            raise NotFound(f"no dataset named {name!r}", dataset=name)
        return found

    def list_datasets(self, size: int, token: str, prefix: str, tags: Sequence[str],
                      created_by: str) -> tuple[list[Dataset], str]:
        limit, query = page_size(size), {"name_prefix": prefix, "tags": sorted(tags), "created_by": created_by}
        offset = DATASETS.offset(token, query)
        items = self._store.list_datasets(offset, limit + 1, prefix, created_by, list(tags))
        return items[:limit], (DATASETS.token(offset + limit, query) if len(items) > limit else "")

    def list_versions(self, dataset: str, size: int, token: str, tags: Sequence[str],
                      only_from_files: bool) -> tuple[list[DatasetVersion], str]:
        limit = page_size(size)
        self.get_dataset(dataset)
        query = {"dataset": dataset, "tags": sorted(tags), "only_registered_from_files": only_from_files}
        offset = VERSIONS.offset(token, query)
        items = self._store.list_versions(dataset, offset, limit + 1, list(tags), only_from_files)
        return items[:limit], (VERSIONS.token(offset + limit, query) if len(items) > limit else "")

    def lineage(self, dataset: str, version_id: str) -> tuple[list[LineageNode], list[FileRecord]]:
        start = self.get_version(dataset, version_id)
        nodes: list[LineageNode] = []
        files: list[FileRecord] = []
        seen: set[tuple[str, str]] = set()
        queue = [start]
        while queue:
            version = queue.pop(0)
            key = (version.dataset, version.version_id)
            if key in seen:
                continue
            seen.add(key)
            nodes.append(LineageNode(
                version=version.ref, derivation=version.derivation,
                parent_version_ids=[p.version_id for p in version.parents],
                create_time=version.create_time, created_by=version.created_by))
            if not version.parents:
                files.extend(f for f in version.files if f not in files)
            for p in version.parents:
                parent = self._store.get_version(p.dataset, p.version_id)
                if parent is None:
                    raise DataLoss(f"version {p.version_id}, a parent in the lineage, is missing")
                queue.append(parent)
        return nodes, files

    # -- reading ------------------------------------------------------------------------------

    def file_refs(self, version: DatasetVersion) -> list[SourceFileRef]:
        refs = []
        for f in version.files:
            if f.format == "parquet":  # the service's own file: never resolved as a source
                path = self._artifacts.existing_path(f.url)
                refs.append(SourceFileRef(url=f.url, kind=SourceKind.LOCAL, open_path=str(path)))
                continue
            found = self._resolver.resolve(f.url)
            if len(found) != 1:
                raise DataLoss(f"file {f.url!r} of version {version.version_id} is no longer a single file")
            refs.append(found[0])
        return refs

    def verify_files(self, version: DatasetVersion, refs: Sequence[SourceFileRef]) -> None:
        """Local files must still have their recorded sha256 (cheap when unchanged: cached)."""
        for ref, record in zip(refs, version.files):
            if ref.is_local:
                digest = self._hasher.digest(ref)
                if digest.sha256 != record.sha256:
                    raise DataLoss(f"file {record.url!r} changed since version {version.version_id} "
                                   "was registered (its sha256 differs)", file=record.url)

    def plan_read(self, ref: VersionRef, branches: Sequence[str], cut: str, entry_range: EntryRange,
                  batch_size: int, max_batch: int) -> ReadPlan:
        version = self.get_version(ref.dataset, ref.version_id, "version")
        if ref.content_hash and ref.content_hash != version.content_hash:
            raise FailedPrecondition(f"version {version.version_id} has content hash "
                                     f"{version.content_hash}, not the one given")
        if ref.split:
            names = [s.name for s in version.splits]
            if ref.split not in names:
                raise InvalidArgument(
                    f"version {version.version_id} has no split {ref.split!r}"
                    + (f" (it has {', '.join(names)})" if names else " (it is not split)"),
                    field="version.split")
        names = [b.name for b in version.branches]
        if branches:
            chosen = select_branches(names, branches, "branches")
            check_numeric(version, chosen)
        else:
            chosen = [b.name for b in version.branches if b.numeric]
        if entry_range.start < 0 or entry_range.stop < 0 or (
                entry_range.stop and entry_range.stop <= entry_range.start):
            raise InvalidArgument(f"entry range [{entry_range.start}, {entry_range.stop}) is not valid",
                                  field="entry_range")
        extra = parse_cut(cut, version.all_branch_names, field="cut")
        step = self._step if batch_size <= 0 else min(batch_size, max_batch)
        refs = self.file_refs(version)
        self.verify_files(version, refs)
        return ReadPlan(
            version=version, files=refs, branches=chosen,
            version_cut=parse_cut(version.source.cut, version.all_branch_names),
            extra_cut=extra, split=ref.split, entry_range=entry_range, step_size=step,
            timeout_s=self._timeout, open_files=self._open_files)

    def compute_statistics(self, ref: VersionRef, branches: Sequence[str], bins: int,
                           recompute: bool, computed_by: str, max_batch: int) -> DatasetStatistics:
        bins = bins or 50
        if not 1 <= bins <= 10_000:
            raise InvalidArgument("histogram_bins must be in [1, 10000]", field="histogram_bins")
        version = self.get_version(ref.dataset, ref.version_id, "version")
        names = [b.name for b in version.branches]
        chosen = select_branches(names, branches, "branches") if branches else names
        numeric = [n for n in chosen if version.branch(n).numeric]  # type: ignore[union-attr]
        skipped = [n for n in chosen if n not in numeric]
        if not recompute:
            stored = self._store.get_statistics(version.dataset, version.version_id, ref.split)
            if stored is not None and stored.histogram_bins == bins and set(numeric) <= {
                    b.branch for b in stored.branches}:
                return stored.model_copy(update={
                    "branches": [b for b in stored.branches if b.branch in set(numeric)],
                    "skipped_branches": skipped})
        plan = self.plan_read(ref, numeric, "", EntryRange(), 0, max_batch) if numeric else None
        infos = [version.branch(n) for n in numeric]
        result = statistics.compute(lambda: read_batches(plan) if plan else iter(()), infos, bins)  # type: ignore[arg-type]
        stats = DatasetStatistics(
            version=VersionRef(dataset=version.dataset, version_id=version.version_id,
                               content_hash=version.content_hash, split=ref.split),
            entry_count=result.entry_count, branches=result.branches, skipped_branches=skipped,
            histogram_bins=bins, compute_time=datetime.now(timezone.utc), computed_by=computed_by)
        self._store.put_statistics(stats)
        return stats

    def get_statistics(self, ref: VersionRef, branches: Sequence[str]) -> DatasetStatistics:
        version = self.get_version(ref.dataset, ref.version_id, "version")
        stats = self._store.get_statistics(version.dataset, version.version_id, ref.split)
        if stats is None:
            what = f"split {ref.split!r} of " if ref.split else ""
            raise NotFound(f"no statistics stored for {what}version {version.version_id}; "
                           "call ComputeStatistics first")
        if branches:
            stats = stats.model_copy(update={"branches": [b for b in stats.branches if b.branch in set(branches)]})
        return stats


def expected_total(plan: ReadPlan) -> int:
    """Rows the stream will carry, or -1 when an extra cut makes it unknown."""
    if plan.extra_cut is not None:
        return -1
    version = plan.version
    if plan.split:
        total = next(s.entry_count for s in version.splits if s.name == plan.split)
    else:
        total = version.entry_count
    start = min(plan.entry_range.start, total)
    stop = total if plan.entry_range.stop == 0 else min(plan.entry_range.stop, total)
    return max(stop - start, 0)


__all__ = ["DataCatalog", "expected_total", "chain_range", "Cut"]
