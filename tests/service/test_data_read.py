"""Streaming dataset versions through gRPC (Arrow IPC) and derived versions: values equal
uproot's direct read, jagged included; pad mode; entry ranges and cuts; splits; lineage;
statistics; bad read requests."""

from __future__ import annotations

import awkward as ak
import grpc
import numpy as np
import pyarrow as pa
import pytest
import uproot

from beamops.common.v1 import lineage_pb2
from beamops.data.v1 import data_service_pb2 as pb
from beamops.data.v1 import dataset_pb2
from beamops.data_stream import to_numpy, to_pandas

from tests.fixtures.data_service import HZZ, REAL_DATA, ZMUMU


def direct(name: str, branches=None, **kw) -> dict:
    with uproot.open(REAL_DATA / name) as f:
        tree = f["events"]
        names = branches or [b.name for b in tree.branches if b.name != "Type"]
        return tree.arrays(names, library="ak", how=dict, **kw)


def assert_same(table: pa.Table, expected: dict) -> None:
    assert table.num_rows == len(next(iter(expected.values())))
    for name, values in expected.items():
        got = ak.from_arrow(table.column(name))
        assert ak.array_equal(got, values), name
        assert str(ak.type(got).content) == str(ak.type(values).content), name


async def test_streamed_hzz_equals_uproot_value_for_value_jagged_included(data_client):
    v = (await data_client.register("hzz", [HZZ])).version
    table = await data_client.read_table("hzz", v.version_id, batch_size=500)
    assert table.num_rows == 2421
    assert pa.types.is_list(table.schema.field("Muon_Px").type)
    assert_same(table, direct(HZZ))


async def test_streamed_zmumu_equals_uproot_and_string_branches_are_left_out(data_client):
    v = (await data_client.register("zmumu", [ZMUMU])).version
    table = await data_client.read_table("zmumu", v.version_id)
    assert "Type" not in table.column_names
    assert_same(table, direct(ZMUMU))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await data_client.read_table("zmumu", v.version_id, branches=["Type"])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not numeric" in err.value.details()


async def test_stream_messages_carry_schema_first_then_batches(data_client):
    v = (await data_client.register("hzz", [HZZ])).version
    request = pb.ReadDatasetVersionRequest(
        version=lineage_pb2.DatasetVersionRef(dataset="hzz", version_id=v.version_id),
        branches=["NMuon", "Muon_Px"], batch_size=1000, include_entry_index=True)
    messages = [m async for m in data_client.stub.ReadDatasetVersion(request, metadata=data_client.md("reader"))]
    assert messages[0].num_rows == 0 and messages[0].version.content_hash == v.content_hash
    assert messages[0].total_rows == 2421
    assert [m.num_rows for m in messages[1:]] == [1000, 1000, 421]
    assert [m.row_offset for m in messages[1:]] == [0, 1000, 2000]
    stream = b"".join(m.arrow_ipc for m in messages)
    table = pa.ipc.open_stream(stream).read_all()
    assert table.column("__entry__").to_pylist() == list(range(2421))


async def test_version_cut_entry_range_and_read_options_select_the_same_rows_as_uproot(data_client):
    v = (await data_client.register("hzz", [HZZ], cut="NMuon >= 2",
                                    entry_range=dataset_pb2.EntryRange(start=100, stop=2000))).version
    full = direct(HZZ, ["NMuon", "Muon_Px", "MET_px"], entry_start=100, entry_stop=2000)
    keep = ak.to_numpy(full["NMuon"]) >= 2
    expected = {k: a[keep] for k, a in full.items()}
    table = await data_client.read_table("hzz", v.version_id, branches=["NMuon", "Muon_Px", "MET_px"],
                                         batch_size=300)
    assert_same(table, expected)
    part = await data_client.read_table("hzz", v.version_id, branches=["NMuon", "Muon_Px", "MET_px"],
                                        entry_start=10, entry_stop=50, include_entry_index=True)
    assert_same(part.drop_columns(["__entry__"]), {k: a[10:50] for k, a in expected.items()})
    assert part.column("__entry__").to_pylist() == list(range(10, 50))
    extra = await data_client.read_table("hzz", v.version_id, branches=["Muon_Px", "MET_px"],
                                         cut="MET_px > 0")
    mask = ak.to_numpy(expected["MET_px"]) > 0
    assert_same(extra, {k: expected[k][mask] for k in ("Muon_Px", "MET_px")})


async def test_pad_mode_gives_fixed_length_values_and_masks(data_client):
    v = (await data_client.register("hzz", [HZZ])).version
    table = await data_client.read_table("hzz", v.version_id, branches=["NMuon", "Muon_Px"],
                                         pad_length=2, pad_value=-999.0)
    assert table.column_names == ["NMuon", "Muon_Px", "Muon_Px_mask"]
    arrays = to_numpy(table)
    px = direct(HZZ, ["Muon_Px"])["Muon_Px"]
    expected = ak.to_numpy(ak.fill_none(ak.pad_none(px, 2, clip=True), -999.0))
    assert arrays["Muon_Px"].shape == (2421, 2)
    assert np.array_equal(arrays["Muon_Px"], expected)
    counts = ak.to_numpy(ak.num(px))
    assert np.array_equal(arrays["Muon_Px_mask"].sum(axis=1), np.minimum(counts, 2))
    frame = to_pandas(table)
    assert len(frame) == 2421


async def test_splits_are_deterministic_disjoint_and_complete(data_client):
    v = (await data_client.register("hzz", [HZZ], cut="NMuon >= 1")).version
    split = pb.DeriveDatasetVersionRequest(
        parent=lineage_pb2.DatasetVersionRef(dataset="hzz", version_id=v.version_id),
        split=dataset_pb2.SplitDerivation(train_fraction=0.6, validation_fraction=0.2,
                                          test_fraction=0.2, seed=12345))
    md = data_client.md()
    first = await data_client.stub.DeriveDatasetVersion(split, metadata=md)
    again = await data_client.stub.DeriveDatasetVersion(split, metadata=md)
    assert first.created and not again.created
    assert again.version.version_id == first.version.version_id
    s = first.version
    assert [p.name for p in s.splits] == ["train", "validation", "test"]
    assert sum(p.entry_count for p in s.splits) == v.entry_count
    parts = {}
    for info in s.splits:
        table = await data_client.read_table("hzz", s.version_id, split=info.name,
                                             branches=["NMuon", "MET_px"], include_entry_index=True)
        assert table.num_rows == info.entry_count
        parts[info.name] = table
    again_train = await data_client.read_table("hzz", s.version_id, split="train",
                                               branches=["NMuon", "MET_px"], include_entry_index=True)
    assert again_train.equals(parts["train"])
    whole = await data_client.read_table("hzz", v.version_id, branches=["MET_px"])
    union = np.sort(np.concatenate([p.column("MET_px").to_numpy() for p in parts.values()]))
    assert np.array_equal(union, np.sort(whole.column("MET_px").to_numpy()))
    other_seed = await data_client.stub.DeriveDatasetVersion(pb.DeriveDatasetVersionRequest(
        parent=split.parent, split=dataset_pb2.SplitDerivation(
            train_fraction=0.6, validation_fraction=0.2, test_fraction=0.2, seed=1)), metadata=md)
    assert other_seed.version.version_id != s.version_id
    other_train = await data_client.read_table("hzz", other_seed.version.version_id, split="train",
                                               branches=["MET_px"])
    assert not np.array_equal(other_train.column("MET_px").to_numpy()[:100],
                              parts["train"].column("MET_px").to_numpy()[:100])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await data_client.read_table("hzz", s.version_id, split="holdout")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_selection_and_lineage_run_back_to_the_files(data_client):
    v = (await data_client.register("hzz", [HZZ], cut="NMuon >= 1")).version
    md = data_client.md()
    parent = lineage_pb2.DatasetVersionRef(dataset="hzz", version_id=v.version_id)
    sel = (await data_client.stub.DeriveDatasetVersion(pb.DeriveDatasetVersionRequest(
        parent=parent, dataset="hzz-2mu", selection=dataset_pb2.SelectionDerivation(
            cut="NMuon >= 2", branches=["NMuon", "Muon_*"])), metadata=md)).version
    assert sel.dataset == "hzz-2mu" and sel.source.cut == "(NMuon >= 1) and (NMuon >= 2)"
    expected_n = int((ak.to_numpy(direct(HZZ, ["NMuon"])["NMuon"]) >= 2).sum())
    assert sel.entry_count == expected_n
    table = await data_client.read_table("hzz-2mu", sel.version_id)
    assert table.num_rows == expected_n and "MET_px" not in table.column_names
    split = (await data_client.stub.DeriveDatasetVersion(pb.DeriveDatasetVersionRequest(
        parent=lineage_pb2.DatasetVersionRef(dataset="hzz-2mu", version_id=sel.version_id),
        split=dataset_pb2.SplitDerivation(train_fraction=0.5, validation_fraction=0.5, seed=3)),
        metadata=md)).version
    lineage = await data_client.stub.GetLineage(
        pb.GetLineageRequest(dataset="hzz-2mu", version_id=split.version_id), metadata=data_client.md("reader"))
    assert [n.version.version_id for n in lineage.nodes] == [split.version_id, sel.version_id, v.version_id]
    assert lineage.nodes[0].derivation.WhichOneof("kind") == "split"
    assert lineage.nodes[1].derivation.selection.cut == "NMuon >= 2"
    assert list(lineage.nodes[1].parent_version_ids) == [v.version_id]
    assert not lineage.nodes[2].HasField("derivation")
    assert [f.url for f in lineage.original_files] == [HZZ]
    assert lineage.original_files[0].sha256 == v.files[0].sha256
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await data_client.stub.DeriveDatasetVersion(pb.DeriveDatasetVersionRequest(
            parent=parent, selection=dataset_pb2.SelectionDerivation(cut="NMuon > 100")), metadata=md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "keeps no entry" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await data_client.stub.DeriveDatasetVersion(pb.DeriveDatasetVersionRequest(
            parent=parent, split=dataset_pb2.SplitDerivation(train_fraction=0.9, test_fraction=0.9)),
            metadata=md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "sum to 1" in err.value.details()


async def test_statistics_match_numpy_and_are_stored(data_client):
    v = (await data_client.register("zmumu", [ZMUMU])).version
    ref = lineage_pb2.DatasetVersionRef(dataset="zmumu", version_id=v.version_id)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await data_client.stub.GetStatistics(pb.GetStatisticsRequest(version=ref), metadata=data_client.md("reader"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    stats = (await data_client.stub.ComputeStatistics(pb.ComputeStatisticsRequest(
        version=ref, branches=["M", "Q1", "Type"], histogram_bins=20), metadata=data_client.md())).statistics
    m = ak.to_numpy(direct(ZMUMU, ["M"])["M"])
    by = {b.branch: b for b in stats.branches}
    assert list(stats.skipped_branches) == ["Type"]
    s = by["M"].values
    assert s.count == len(m) and s.min == m.min() and s.max == m.max()
    assert s.mean == pytest.approx(m.mean()) and s.std == pytest.approx(m.std())
    assert sum(s.histogram.counts) == len(m) and len(s.histogram.counts) == 20
    median = next(q.value for q in s.quantiles if q.probability == 0.5)
    assert abs(median - np.median(m)) < (m.max() - m.min()) / 1000
    stored = (await data_client.stub.GetStatistics(pb.GetStatisticsRequest(version=ref),
                                                   metadata=data_client.md("reader"))).statistics
    assert stored == stats.__class__.FromString(stored.SerializeToString())
    assert {b.branch for b in stored.branches} == {"M", "Q1"}
    got = await data_client.stub.GetDatasetVersion(pb.GetDatasetVersionRequest(
        dataset="zmumu", version_id=v.version_id), metadata=data_client.md("reader"))
    assert list(got.version.statistics_splits) == [""]


async def test_jagged_statistics_summarise_values_and_multiplicity(data_client):
    v = (await data_client.register("hzz", [HZZ], branches=["Muon_Px"])).version
    ref = lineage_pb2.DatasetVersionRef(dataset="hzz", version_id=v.version_id)
    stats = (await data_client.stub.ComputeStatistics(pb.ComputeStatisticsRequest(version=ref),
                                                      metadata=data_client.md())).statistics
    px = direct(HZZ, ["Muon_Px"])["Muon_Px"]
    b = stats.branches[0]
    assert b.layout == dataset_pb2.BRANCH_LAYOUT_JAGGED
    assert b.values.count == len(ak.flatten(px))
    assert b.multiplicity.max == ak.max(ak.num(px))
    assert b.values.mean == pytest.approx(float(np.mean(ak.to_numpy(ak.flatten(px)))), rel=1e-5)


async def test_bad_read_requests(data_client, data_root):
    v = (await data_client.register("hzz", [HZZ])).version

    async def read(**options):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await data_client.read_table("hzz", options.pop("version_id", v.version_id), **options)
        assert "/work" not in err.value.details() and "/tmp" not in err.value.details()
        return err.value

    assert (await read(version_id="dsv-00000000000000ff")).code() == grpc.StatusCode.NOT_FOUND
    e = await read(branches=["Tau_Px"])
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "Tau_Px" in e.details()
    e = await read(cut="NMuon >>> 2")
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "does not parse" in e.details()
    e = await read(cut="NTau > 2")
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "NTau" in e.details()
    e = await read(branch_pad_lengths={"Muon_Px": 2}, branches=["Muon_Px", "Jet_Px"])
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "'Jet_Px'" in e.details()
    e = await read(split="train")
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "not split" in e.details()
    data = (data_root / HZZ).read_bytes()
    (data_root / HZZ).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    e = await read()
    assert e.code() == grpc.StatusCode.DATA_LOSS and "'uproot-HZZ.root' changed" in e.details()
