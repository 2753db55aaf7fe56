"""Parquet conversion (DeriveDatasetVersion with parquet): one content-addressed file written
batch by batch into the service's artifact area, its sha256 recorded, the parent kept; reads of
the converted version stream from the Parquet file and give the same values as the parent."""

from __future__ import annotations

import hashlib

import grpc
import pyarrow.parquet as pq
import pytest

from beamops.common.v1 import lineage_pb2
from beamops.data.v1 import data_service_pb2 as pb
from beamops.data.v1 import dataset_pb2

from tests.fixtures.data_service import HZZ, ZMUMU


def _parquet_files(settings) -> list:
    return sorted((settings.artifacts_path / "parquet").rglob("*.parquet"))


async def _convert(data_client, dataset: str, version_id: str, **options):
    request = pb.DeriveDatasetVersionRequest(
        parent=lineage_pb2.DatasetVersionRef(dataset=dataset, version_id=version_id),
        parquet=dataset_pb2.ParquetConversion(**options))
    return await data_client.stub.DeriveDatasetVersion(request, metadata=data_client.md())


async def test_parquet_copy_reads_like_its_parent_jagged_included(data_client, data_settings):
    v = (await data_client.register("hzz", [HZZ], cut="NMuon >= 1")).version
    first = await _convert(data_client, "hzz", v.version_id, row_group_size=300)
    again = await _convert(data_client, "hzz", v.version_id, row_group_size=300)
    p = first.version
    assert first.created and not again.created and again.version.version_id == p.version_id
    assert p.entry_count == v.entry_count and list(p.parents)[0].version_id == v.version_id
    [f] = p.files
    assert f.format == dataset_pb2.FILE_FORMAT_PARQUET and f.url == f"artifact:sha256:{f.sha256}"
    assert f.entry_count == v.entry_count
    [path] = _parquet_files(data_settings)  # the second request converted nothing
    data = path.read_bytes()
    assert (hashlib.sha256(data).hexdigest(), len(data)) == (f.sha256, f.size_bytes)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == v.entry_count and meta.num_row_groups >= v.entry_count // 300
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert "/" not in f.url.removeprefix("artifact:sha256:")

    ours = await data_client.read_table("hzz", p.version_id, batch_size=250)
    theirs = await data_client.read_table("hzz", v.version_id, batch_size=250)
    assert ours.num_rows == v.entry_count
    assert ours.equals(theirs)  # every numeric branch, value for value, list columns included

    # read options work on the copy too: branches, an extra cut, an entry range
    options = dict(branches=["NMuon", "Muon_Px", "MET_px"], cut="MET_px > 0",
                   entry_start=100, entry_stop=900, include_entry_index=True)
    assert (await data_client.read_table("hzz", p.version_id, **options)).equals(
        await data_client.read_table("hzz", v.version_id, **options))

    lineage = await data_client.stub.GetLineage(pb.GetLineageRequest(dataset="hzz", version_id=p.version_id),
                                                metadata=data_client.md("reader"))
    assert [n.version.version_id for n in lineage.nodes] == [p.version_id, v.version_id]
    assert lineage.nodes[0].derivation.parquet.row_group_size == 300
    assert [o.url for o in lineage.original_files] == [HZZ]


async def test_parquet_copy_of_a_split_keeps_the_parts(data_client):
    v = (await data_client.register("zmumu", [ZMUMU])).version
    split = (await data_client.stub.DeriveDatasetVersion(pb.DeriveDatasetVersionRequest(
        parent=lineage_pb2.DatasetVersionRef(dataset="zmumu", version_id=v.version_id),
        split=dataset_pb2.SplitDerivation(train_fraction=0.7, test_fraction=0.3, seed=9)),
        metadata=data_client.md())).version
    p = (await _convert(data_client, "zmumu", split.version_id,
                        compression=dataset_pb2.PARQUET_COMPRESSION_SNAPPY)).version
    assert [(s.name, s.entry_count) for s in p.splits] == [(s.name, s.entry_count) for s in split.splits]
    for part in ("train", "test"):
        ours = await data_client.read_table("zmumu", p.version_id, split=part, include_entry_index=True)
        theirs = await data_client.read_table("zmumu", split.version_id, split=part, include_entry_index=True)
        assert ours.num_rows > 0 and ours.equals(theirs), part


async def test_a_missing_or_altered_parquet_file_is_data_loss(data_client, data_settings):
    v = (await data_client.register("zmumu", [ZMUMU])).version
    p = (await _convert(data_client, "zmumu", v.version_id)).version
    [path] = _parquet_files(data_settings)
    path.write_bytes(path.read_bytes()[:-100] + b"\0" * 100)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await data_client.read_table("zmumu", p.version_id)
    assert err.value.code() == grpc.StatusCode.DATA_LOSS and "changed" in err.value.details()
    path.unlink()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await data_client.read_table("zmumu", p.version_id)
    assert err.value.code() == grpc.StatusCode.DATA_LOSS and "missing" in err.value.details()
    for leak in ("/tmp", "/work", "Traceback", "artifacts/"):
        assert leak not in err.value.details()
