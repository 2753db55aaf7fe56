"""Domain types of the data service (no gRPC, no uproot): what a dataset version is."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LAYOUT_FLAT = "flat"
LAYOUT_JAGGED = "jagged"
LAYOUT_FIXED = "fixed"

SPLIT_NAMES = ("train", "validation", "test")


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BranchInfo(Frozen):
    name: str
    type_name: str
    dtype: str | None = None  # numpy dtype name ("float32"); None when the branch is not numeric
    layout: str = LAYOUT_FLAT
    fixed_shape: tuple[int, ...] = ()
    title: str = ""
    unit: str = ""
    reason: str = ""  # why a branch that is not numeric cannot be streamed

    @property
    def numeric(self) -> bool:
        return self.dtype is not None


class TreeInfo(Frozen):
    num_entries: int
    kind: str = "TTree"  # or "RNTuple"
    branches: list[BranchInfo] = Field(default_factory=list)


class EntryRange(Frozen):
    """[start, stop); stop = 0 means to the end."""

    start: int = 0
    stop: int = 0


class SourceSpec(Frozen):
    urls: list[str]
    tree_name: str
    branches: list[str] = Field(default_factory=list)
    cut: str = ""
    entry_range: EntryRange = EntryRange()
    common_branches: bool = False  # files that differ: keep the branches all of them share


class FileRecord(Frozen):
    url: str
    sha256: str
    size_bytes: int
    entry_count: int
    format: Literal["root", "parquet"] = "root"


class SplitSpec(Frozen):
    train: float
    validation: float
    test: float
    seed: int

    @property
    def fractions(self) -> dict[str, float]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


class SplitInfo(Frozen):
    name: str
    fraction: float
    entry_count: int


class Derivation(Frozen):
    kind: Literal["selection", "split", "parquet"]
    cut: str = ""
    branches: list[str] = Field(default_factory=list)
    split: SplitSpec | None = None
    compression: str = ""
    row_group_size: int = 0


class VersionRef(Frozen):
    dataset: str
    version_id: str
    content_hash: str = ""
    split: str = ""


class DatasetVersion(Frozen):
    dataset: str
    version_id: str
    content_hash: str
    source: SourceSpec  # effective: cut ANDed along the lineage, branches resolved
    files: list[FileRecord]
    branches: list[BranchInfo]  # the schema
    tree_kind: str = "TTree"  # or "RNTuple"
    all_branch_names: list[str] = Field(default_factory=list)  # every branch of the tree (for cuts)
    entry_count: int
    split: SplitSpec | None = None
    splits: list[SplitInfo] = Field(default_factory=list)
    derivation: Derivation | None = None
    parents: list[VersionRef] = Field(default_factory=list)
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    created_by: str = ""
    create_time: datetime
    statistics_splits: list[str] = Field(default_factory=list)

    @property
    def total_size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    @property
    def ref(self) -> VersionRef:
        return VersionRef(dataset=self.dataset, version_id=self.version_id,
                          content_hash=self.content_hash)

    def branch(self, name: str) -> BranchInfo | None:
        return next((b for b in self.branches if b.name == name), None)


class Dataset(Frozen):
    name: str
    create_time: datetime
    created_by: str
    latest_version_id: str = ""
    latest_version_create_time: datetime | None = None
    version_count: int = 0


class ValueSummary(Frozen):
    count: int = 0
    nan_count: int = 0
    inf_count: int = 0
    min: float = 0.0
    max: float = 0.0
    mean: float = 0.0
    std: float = 0.0
    quantiles: list[tuple[float, float]] = Field(default_factory=list)
    hist_low: float = 0.0
    hist_high: float = 0.0
    hist_counts: list[int] = Field(default_factory=list)


class BranchStatistics(Frozen):
    branch: str
    layout: str
    values: ValueSummary
    multiplicity: ValueSummary | None = None


class DatasetStatistics(Frozen):
    version: VersionRef
    entry_count: int
    branches: list[BranchStatistics]
    skipped_branches: list[str] = Field(default_factory=list)
    histogram_bins: int
    compute_time: datetime
    computed_by: str


class LineageNode(Frozen):
    version: VersionRef
    derivation: Derivation | None
    parent_version_ids: list[str]
    create_time: datetime
    created_by: str
