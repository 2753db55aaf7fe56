"""Registering dataset versions through gRPC: ids, idempotency, schema, metadata, bad inputs."""

from __future__ import annotations

import grpc
import pytest

from beamops.data.v1 import data_service_pb2 as pb
from beamops.data.v1 import dataset_pb2
from beamops.common.v1 import tensor_pb2

from tests.fixtures.data_service import HZZ, ZMUMU, REAL_DATA

import hashlib


def assert_clean(message: str) -> None:
    for bad in ("/work", "/tmp", "Traceback", "var/"):
        assert bad not in message, message


async def test_register_both_real_files_with_hashes_counts_and_metadata(data_client):
    hzz = await data_client.register("hzz", [HZZ], description="H->ZZ sample", tags=["cms", "mc"])
    zmm = await data_client.register("zmumu", [ZMUMU])
    assert hzz.created and zmm.created
    v = hzz.version
    assert v.version_id.startswith("dsv-") and len(v.version_id) == 20
    assert v.entry_count == 2421 and zmm.version.entry_count == 2304
    assert v.files[0].url == HZZ
    assert v.files[0].sha256 == hashlib.sha256((REAL_DATA / HZZ).read_bytes()).hexdigest()
    assert v.files[0].size_bytes == (REAL_DATA / HZZ).stat().st_size
    assert v.total_size_bytes == v.files[0].size_bytes
    assert v.created_by == "publisher-user" and v.create_time.seconds > 0
    assert v.description == "H->ZZ sample" and list(v.tags) == ["cms", "mc"]
    assert len(v.schema.branches) == 51 and v.schema.tree_name == "events"


async def test_registering_the_same_thing_twice_gives_the_same_version(data_client):
    first = await data_client.register("hzz", [HZZ], cut="NMuon >= 2", branches=["Muon_*", "NMuon"])
    again = await data_client.register("hzz", [HZZ], cut="NMuon>=2", branches=["NMuon", "Muon_*"],
                                       description="ignored")
    assert first.created and not again.created
    assert again.version.version_id == first.version.version_id
    assert again.version.description == ""
    other = await data_client.register("hzz", [HZZ], cut="NMuon >= 3")
    assert other.created and other.version.version_id != first.version.version_id
    versions = await data_client.stub.ListDatasetVersions(
        pb.ListDatasetVersionsRequest(dataset="hzz"), metadata=data_client.md("reader"))
    assert len(versions.versions) == 2


async def test_changing_one_byte_gives_a_new_version(data_client, data_root):
    first = await data_client.register("z", [ZMUMU])
    data = bytearray((data_root / ZMUMU).read_bytes())
    data[-1] ^= 0xFF  # the last byte is padding after the keys list; the file stays readable
    (data_root / ZMUMU).write_bytes(bytes(data))
    second = await data_client.register("z", [ZMUMU])
    assert second.created and second.version.version_id != first.version.version_id


async def test_cut_branches_and_entry_range_shape_the_version(data_client):
    r = await data_client.register("hzz", [HZZ], branches=["Muon_P?", "NMuon"], cut="NMuon >= 2",
                                   entry_range=dataset_pb2.EntryRange(start=100, stop=1100))
    v = r.version
    assert [b.name for b in v.schema.branches] == ["NMuon", "Muon_Px", "Muon_Py", "Muon_Pz"]
    import uproot
    with uproot.open(REAL_DATA / HZZ) as f:
        n = f["events"]["NMuon"].array(library="np", entry_start=100, entry_stop=1100)
    assert v.entry_count == int((n >= 2).sum())
    assert v.source.cut == "NMuon >= 2"


async def test_schema_describes_types_layouts_and_dtypes(data_client):
    hzz = await data_client.register("hzz", [HZZ])
    schema = (await data_client.stub.GetSchema(
        pb.GetSchemaRequest(dataset="hzz", version_id=hzz.version.version_id),
        metadata=data_client.md("reader"))).schema
    by_name = {b.name: b for b in schema.branches}
    assert by_name["NMuon"].layout == dataset_pb2.BRANCH_LAYOUT_FLAT
    assert by_name["NMuon"].dtype == tensor_pb2.DATA_TYPE_INT32
    assert by_name["Muon_Px"].layout == dataset_pb2.BRANCH_LAYOUT_JAGGED
    assert by_name["Muon_Px"].dtype == tensor_pb2.DATA_TYPE_FLOAT32
    assert by_name["Muon_Px"].type_name == "float[]"
    assert by_name["Jet_ID"].dtype == tensor_pb2.DATA_TYPE_BOOL
    assert by_name["Muon_Px"].title == "Muon_Px[NMuon]/F"
    zmm = await data_client.register("zmumu", [ZMUMU])
    types = {b.name: b for b in zmm.version.schema.branches}
    assert types["Type"].dtype == tensor_pb2.DATA_TYPE_UNSPECIFIED  # a string branch
    assert types["M"].dtype == tensor_pb2.DATA_TYPE_FLOAT64


async def test_globs_register_several_files_in_sorted_order(data_client):
    r = await data_client.register("zz", ["mc/zmumu_b.root", "mc/*.root"])
    assert [f.url for f in r.version.files] == ["mc/zmumu_a.root", "mc/zmumu_b.root"]
    assert r.version.entry_count == 2 * 2304
    d = await data_client.register("zz", ["mc"])
    assert d.version.version_id == r.version.version_id and not d.created


async def test_datasets_are_listed_and_described(data_client):
    await data_client.register("hzz", [HZZ])
    await data_client.register("zmumu", [ZMUMU], tags=["dimuon"])
    md = data_client.md("reader")
    listed = await data_client.stub.ListDatasets(pb.ListDatasetsRequest(), metadata=md)
    assert [d.name for d in listed.datasets] == ["hzz", "zmumu"]
    tagged = await data_client.stub.ListDatasets(pb.ListDatasetsRequest(tags=["dimuon"]), metadata=md)
    assert [d.name for d in tagged.datasets] == ["zmumu"]
    page = await data_client.stub.ListDatasets(pb.ListDatasetsRequest(page_size=1), metadata=md)
    assert len(page.datasets) == 1 and page.next_page_token
    rest = await data_client.stub.ListDatasets(
        pb.ListDatasetsRequest(page_size=1, page_token=page.next_page_token), metadata=md)
    assert [d.name for d in rest.datasets] == ["zmumu"]
    assert rest.next_page_token == ""  # a full last page is the last page
    with pytest.raises(grpc.aio.AioRpcError) as err:  # the token of another query
        await data_client.stub.ListDatasets(
            pb.ListDatasetsRequest(page_size=1, page_token=page.next_page_token, tags=["dimuon"]), metadata=md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in err.value.details()
    got = await data_client.stub.GetDataset(pb.GetDatasetRequest(dataset="zmumu"), metadata=md)
    assert got.dataset.version_count == 1 and got.dataset.created_by == "publisher-user"


async def test_validate_only_stores_nothing(data_client):
    r = await data_client.register("hzz", [HZZ], validate_only=True)
    assert not r.created and r.version.entry_count == 2421
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await data_client.stub.GetDataset(pb.GetDatasetRequest(dataset="hzz"), metadata=data_client.md())
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("urls,source,code,words", [
    (["../outside/secret.root"], {}, grpc.StatusCode.PERMISSION_DENIED, "'..'"),
    (["/work/shared/data/root/uproot-HZZ.root"], {}, grpc.StatusCode.PERMISSION_DENIED, "absolute path"),
    (["link_out.root"], {}, grpc.StatusCode.PERMISSION_DENIED, "outside the data roots"),
    (["file:///etc/passwd"], {}, grpc.StatusCode.PERMISSION_DENIED, "file://"),
    (["missing.root"], {}, grpc.StatusCode.NOT_FOUND, "'missing.root' not found"),
    (["nothing_*.root"], {}, grpc.StatusCode.NOT_FOUND, "no file matches"),
    ([HZZ], {"cut": "NMuon >="}, grpc.StatusCode.INVALID_ARGUMENT, "does not parse"),
    ([HZZ], {"cut": "NTau > 1"}, grpc.StatusCode.INVALID_ARGUMENT, "unknown branch 'NTau'"),
    ([HZZ], {"cut": "__import__('os').getcwd() == 1"}, grpc.StatusCode.INVALID_ARGUMENT, "not an allowed"),
    ([HZZ], {"cut": "Muon_Px > 1"}, grpc.StatusCode.INVALID_ARGUMENT, "several values per entry"),
    ([HZZ], {"tree": "nope"}, grpc.StatusCode.INVALID_ARGUMENT, "has no TTree or RNTuple named 'nope'"),
    ([HZZ], {"branches": ["Tau_Px"]}, grpc.StatusCode.INVALID_ARGUMENT, "no branch matches 'Tau_Px'"),
    ([HZZ, ZMUMU], {}, grpc.StatusCode.INVALID_ARGUMENT, "select the branches all files share"),
    ([HZZ], {"entry_range": dataset_pb2.EntryRange(start=10, stop=5)}, grpc.StatusCode.INVALID_ARGUMENT, "entry range"),
    (["truncated.root"], {}, grpc.StatusCode.DATA_LOSS, "'truncated.root'"),
    (["garbage.root"], {}, grpc.StatusCode.DATA_LOSS, "'garbage.root'"),
    (["root://evil.example.org//data/x.root"], {}, grpc.StatusCode.PERMISSION_DENIED, "not on this service's list"),
    (["gsiftp://eospublic.cern.ch/x.root"], {}, grpc.StatusCode.INVALID_ARGUMENT, "unknown scheme"),
])
async def test_bad_sources_get_their_status_and_register_nothing(data_client, urls, source, code, words):
    tree = source.pop("tree", "events")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await data_client.register("bad", urls, tree=tree, **source)
    assert err.value.code() == code, err.value.details()
    assert words in err.value.details()
    assert_clean(err.value.details())
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await data_client.stub.GetDataset(pb.GetDatasetRequest(dataset="bad"), metadata=data_client.md())
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_names_keep_their_case_and_differ_by_case(data_client):
    """Dataset names are case-sensitive and kept as typed (beamops.runtime.names)."""
    upper = await data_client.register("PHYSLITE", [ZMUMU])
    ttbar = await data_client.register("ttbar_2018", [HZZ])
    lower = await data_client.register("physlite", [ZMUMU])
    assert upper.created and ttbar.created and lower.created  # physlite is not PHYSLITE again
    assert (upper.version.dataset, ttbar.version.dataset, lower.version.dataset) == \
        ("PHYSLITE", "ttbar_2018", "physlite")
    md = data_client.md("reader")
    listed = await data_client.stub.ListDatasets(pb.ListDatasetsRequest(), metadata=md)
    assert sorted(d.name for d in listed.datasets) == ["PHYSLITE", "physlite", "ttbar_2018"]
    for prefix, expected in (("PHYS", ["PHYSLITE"]), ("phys", ["physlite"]), ("ttbar_", ["ttbar_2018"]),
                             ("TTBAR", [])):
        got = await data_client.stub.ListDatasets(pb.ListDatasetsRequest(name_prefix=prefix), metadata=md)
        assert [d.name for d in got.datasets] == expected, prefix
    for name, version in (("PHYSLITE", upper.version), ("physlite", lower.version)):
        got = await data_client.stub.GetDataset(pb.GetDatasetRequest(dataset=name), metadata=md)
        assert got.dataset.name == name and got.dataset.version_count == 1
        versions = await data_client.stub.ListDatasetVersions(pb.ListDatasetVersionsRequest(dataset=name),
                                                              metadata=md)
        assert [v.version_id for v in versions.versions] == [version.version_id]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await data_client.stub.GetDataset(pb.GetDatasetRequest(dataset="Physlite"), metadata=md)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await data_client.register("PHYS/LITE", [ZMUMU])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    message = err.value.details()
    assert "invalid dataset name 'PHYS/LITE'" in message and "case-sensitive" in message, message


async def test_readers_may_not_register(data_client):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await data_client.register("hzz", [HZZ], role="reader")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_bad_names_and_unknown_versions(data_client):
    md = data_client.md("reader")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await data_client.register("Bad Name!", [HZZ])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await data_client.stub.GetDatasetVersion(
            pb.GetDatasetVersionRequest(dataset="hzz", version_id="dsv-0000000000000000"), metadata=md)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await data_client.stub.ListDatasets(pb.ListDatasetsRequest(page_token="garbage"), metadata=md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
