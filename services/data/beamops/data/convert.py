"""Conversion between the data service's protobuf messages and its domain types."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from beamops.common.v1 import lineage_pb2, tensor_pb2
from beamops.data.v1 import dataset_pb2

from .model import (
    LAYOUT_FIXED, LAYOUT_FLAT, LAYOUT_JAGGED, BranchInfo, Dataset, DatasetStatistics,
    DatasetVersion, Derivation, EntryRange, FileRecord, LineageNode, SourceSpec, SplitSpec,
    ValueSummary, VersionRef,
)

_DTYPES = {
    "bool": tensor_pb2.DATA_TYPE_BOOL, "int8": tensor_pb2.DATA_TYPE_INT8,
    "int16": tensor_pb2.DATA_TYPE_INT16, "int32": tensor_pb2.DATA_TYPE_INT32,
    "int64": tensor_pb2.DATA_TYPE_INT64, "uint8": tensor_pb2.DATA_TYPE_UINT8,
    "uint16": tensor_pb2.DATA_TYPE_UINT16, "uint32": tensor_pb2.DATA_TYPE_UINT32,
    "uint64": tensor_pb2.DATA_TYPE_UINT64, "float16": tensor_pb2.DATA_TYPE_FLOAT16,
    "float32": tensor_pb2.DATA_TYPE_FLOAT32, "float64": tensor_pb2.DATA_TYPE_FLOAT64,
}
_LAYOUTS = {
    LAYOUT_FLAT: dataset_pb2.BRANCH_LAYOUT_FLAT,
    LAYOUT_JAGGED: dataset_pb2.BRANCH_LAYOUT_JAGGED,
    LAYOUT_FIXED: dataset_pb2.BRANCH_LAYOUT_FIXED_ARRAY,
}
_COMPRESSION = {
    dataset_pb2.PARQUET_COMPRESSION_NONE: "none",
    dataset_pb2.PARQUET_COMPRESSION_SNAPPY: "snappy",
    dataset_pb2.PARQUET_COMPRESSION_ZSTD: "zstd",
    dataset_pb2.PARQUET_COMPRESSION_UNSPECIFIED: "zstd",
}
_COMPRESSION_BACK = {"none": 1, "snappy": 2, "zstd": 3}


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


# -- requests -> domain ------------------------------------------------------------------------

def entry_range_from(msg: dataset_pb2.EntryRange) -> EntryRange:
    return EntryRange(start=msg.start, stop=msg.stop)


def source_from(msg: dataset_pb2.DatasetSource) -> SourceSpec:
    return SourceSpec(urls=list(msg.urls), tree_name=msg.tree_name, branches=list(msg.branches),
                      cut=msg.cut, entry_range=entry_range_from(msg.entry_range),
                      common_branches=msg.common_branches)


def ref_from(msg: lineage_pb2.DatasetVersionRef) -> VersionRef:
    return VersionRef(dataset=msg.dataset, version_id=msg.version_id,
                      content_hash=msg.content_hash, split=msg.split)


def derivation_from(request) -> Derivation | None:
    kind = request.WhichOneof("derivation")
    if kind == "selection":
        return Derivation(kind="selection", cut=request.selection.cut,
                          branches=list(request.selection.branches))
    if kind == "split":
        s = request.split
        return Derivation(kind="split", split=SplitSpec(
            train=s.train_fraction, validation=s.validation_fraction, test=s.test_fraction,
            seed=s.seed))
    if kind == "parquet":
        return Derivation(kind="parquet",  # an unknown enum value is refused by the catalog
                          compression=_COMPRESSION.get(request.parquet.compression, "unknown"),
                          row_group_size=request.parquet.row_group_size)
    return None


# -- domain -> messages ------------------------------------------------------------------------

def ref_to(ref: VersionRef) -> lineage_pb2.DatasetVersionRef:
    return lineage_pb2.DatasetVersionRef(dataset=ref.dataset, version_id=ref.version_id,
                                         content_hash=ref.content_hash, split=ref.split)


def source_to(spec: SourceSpec) -> dataset_pb2.DatasetSource:
    return dataset_pb2.DatasetSource(
        urls=spec.urls, tree_name=spec.tree_name, branches=spec.branches, cut=spec.cut,
        entry_range=dataset_pb2.EntryRange(start=spec.entry_range.start, stop=spec.entry_range.stop),
        common_branches=spec.common_branches)


def file_to(f: FileRecord) -> dataset_pb2.SourceFile:
    return dataset_pb2.SourceFile(
        url=f.url, sha256=f.sha256, size_bytes=f.size_bytes, entry_count=f.entry_count,
        format=dataset_pb2.FILE_FORMAT_PARQUET if f.format == "parquet" else dataset_pb2.FILE_FORMAT_ROOT)


def branch_to(b: BranchInfo) -> dataset_pb2.Branch:
    return dataset_pb2.Branch(
        name=b.name, type_name=b.type_name,
        dtype=_DTYPES.get(b.dtype or "", tensor_pb2.DATA_TYPE_UNSPECIFIED),
        layout=_LAYOUTS[b.layout], fixed_shape=list(b.fixed_shape), unit=b.unit, title=b.title,
        reason=b.reason)


def schema_to(version: DatasetVersion) -> dataset_pb2.Schema:
    return dataset_pb2.Schema(tree_name=version.source.tree_name, tree_kind=version.tree_kind,
                              branches=[branch_to(b) for b in version.branches])


def derivation_to(d: Derivation | None) -> dataset_pb2.Derivation | None:
    if d is None:
        return None
    if d.kind == "selection":
        return dataset_pb2.Derivation(selection=dataset_pb2.SelectionDerivation(cut=d.cut, branches=d.branches))
    if d.kind == "split" and d.split is not None:
        s = d.split
        return dataset_pb2.Derivation(split=dataset_pb2.SplitDerivation(
            train_fraction=s.train, validation_fraction=s.validation, test_fraction=s.test, seed=s.seed))
    return dataset_pb2.Derivation(parquet=dataset_pb2.ParquetConversion(
        compression=_COMPRESSION_BACK.get(d.compression, 0), row_group_size=d.row_group_size))


def version_to(v: DatasetVersion) -> dataset_pb2.DatasetVersion:
    return dataset_pb2.DatasetVersion(
        dataset=v.dataset, version_id=v.version_id, content_hash=v.content_hash,
        source=source_to(v.source), files=[file_to(f) for f in v.files], schema=schema_to(v),
        entry_count=v.entry_count,
        splits=[dataset_pb2.SplitInfo(name=s.name, fraction=s.fraction, entry_count=s.entry_count)
                for s in v.splits],
        derivation=derivation_to(v.derivation), parents=[ref_to(p) for p in v.parents],
        description=v.description, tags=v.tags, created_by=v.created_by,
        create_time=timestamp(v.create_time), total_size_bytes=v.total_size_bytes,
        statistics_splits=v.statistics_splits)


def dataset_to(d: Dataset) -> dataset_pb2.Dataset:
    return dataset_pb2.Dataset(
        name=d.name, create_time=timestamp(d.create_time), created_by=d.created_by,
        latest_version_id=d.latest_version_id,
        latest_version_create_time=timestamp(d.latest_version_create_time),
        version_count=d.version_count)


def lineage_node_to(n: LineageNode) -> dataset_pb2.LineageNode:
    return dataset_pb2.LineageNode(
        version=ref_to(n.version), derivation=derivation_to(n.derivation),
        parent_version_ids=n.parent_version_ids, create_time=timestamp(n.create_time),
        created_by=n.created_by)


def summary_to(s: ValueSummary | None) -> dataset_pb2.ValueSummary | None:
    if s is None:
        return None
    return dataset_pb2.ValueSummary(
        count=s.count, nan_count=s.nan_count, inf_count=s.inf_count, min=s.min, max=s.max,
        mean=s.mean, std=s.std,
        quantiles=[dataset_pb2.Quantile(probability=p, value=v) for p, v in s.quantiles],
        histogram=dataset_pb2.Histogram(low=s.hist_low, high=s.hist_high, counts=s.hist_counts))


def statistics_to(s: DatasetStatistics) -> dataset_pb2.DatasetStatistics:
    return dataset_pb2.DatasetStatistics(
        version=ref_to(s.version), entry_count=s.entry_count,
        branches=[dataset_pb2.BranchStatistics(
            branch=b.branch, layout=_LAYOUTS[b.layout], values=summary_to(b.values),
            multiplicity=summary_to(b.multiplicity)) for b in s.branches],
        skipped_branches=s.skipped_branches, histogram_bins=s.histogram_bins,
        compute_time=timestamp(s.compute_time), computed_by=s.computed_by)

