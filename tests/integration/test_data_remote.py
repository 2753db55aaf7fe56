"""The data service against real remote servers: XRootD (xrootd-server) and an HTTP server with
range requests. The same files registered locally and remotely give the same version id, and
remote reads equal local reads."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from beamops.data.server import create_server
from beamops.data.v1 import data_service_pb2 as pb
from beamops.data.v1 import data_service_pb2_grpc, dataset_pb2
from tests.fixtures.data_service import HZZ, ZMUMU
from tests.fixtures.services import running
from tests.fixtures.xrootd import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name,dataset", [(HZZ, "hzz"), (ZMUMU, "zmumu")])
async def test_xrootd_and_local_registrations_have_the_same_version_and_values(
        data_client, xrootd_server, name, dataset):
    local = (await data_client.register(dataset, [name])).version
    url = xrootd_server.url(name)
    remote = await data_client.register(dataset, [url])
    assert remote.version.version_id == local.version_id
    assert not remote.created  # same content and selection: the same version
    assert remote.version.files[0].url == local.files[0].url  # the first registration is kept
    xr = (await data_client.register(dataset + "-xrd", [url])).version
    assert xr.version_id == local.version_id and xr.files[0].url == url
    assert xr.files[0].sha256 == local.files[0].sha256
    local_table = await data_client.read_table(dataset, local.version_id)
    remote_table = await data_client.read_table(dataset + "-xrd", xr.version_id, batch_size=700)
    assert remote_table.equals(local_table)


async def test_xrootd_cut_and_split_reads_equal_local_ones(data_client, xrootd_server):
    local = (await data_client.register("hzz", [HZZ], cut="NMuon >= 1")).version
    xr = (await data_client.register("hzz-xrd", [xrootd_server.url(HZZ)], cut="NMuon >= 1")).version
    assert xr.version_id == local.version_id and xr.entry_count == local.entry_count
    a = await data_client.read_table("hzz", local.version_id, branches=["Muon_Px"], entry_start=5, entry_stop=900)
    b = await data_client.read_table("hzz-xrd", xr.version_id, branches=["Muon_Px"], entry_start=5, entry_stop=900)
    assert a.num_rows == 895 and a.equals(b)


async def test_http_range_server_registration_equals_local(data_client, http_file_server):
    local = (await data_client.register("hzz", [HZZ])).version
    web = (await data_client.register("hzz-web", [http_file_server.url(HZZ)])).version
    assert web.version_id == local.version_id and web.files[0].sha256 == local.files[0].sha256
    a = await data_client.read_table("hzz", local.version_id, branches=["NMuon", "Muon_Px", "MET_px"])
    b = await data_client.read_table("hzz-web", web.version_id, branches=["NMuon", "Muon_Px", "MET_px"])
    assert a.equals(b)


async def test_missing_remote_files_are_not_found(data_client, xrootd_server, http_file_server):
    for url in (xrootd_server.url("missing.root"), http_file_server.url("missing.root")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await data_client.register("gone", [url])
        assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value.details()
        assert "missing.root" in err.value.details() and "Traceback" not in err.value.details()


async def test_a_server_that_is_down_is_unavailable(data_settings, tokens):
    settings = data_settings.model_copy(update={"remote_timeout_s": 3.0})
    url = f"root://127.0.0.1:{free_port()}//data/x.root"
    async with running(create_server, settings) as (_server, channel):
        stub = data_service_pb2_grpc.DataServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.RegisterDatasetVersion(pb.RegisterDatasetVersionRequest(
                dataset="down", source=dataset_pb2.DatasetSource(urls=[url], tree_name="events")),
                metadata=tokens.metadata("publisher"), timeout=60)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
    assert "could not be reached" in err.value.details() or "did not answer" in err.value.details()


async def test_unlisted_hosts_are_refused_before_connecting(data_client, xrootd_server):
    url = f"root://localhost:{xrootd_server.port}/{xrootd_server.export / HZZ}"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await data_client.register("refused", [url])
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "not on this service's list of allowed hosts" in err.value.details()


async def test_a_server_that_goes_away_mid_stream_ends_it_with_unavailable(data_settings, tokens, tmp_path):
    """Stop the real xrootd after the first batches have arrived: the stream must end with
    UNAVAILABLE (within the remote timeout), not hang and not end as if complete."""
    import sys

    from beamops.data_stream import DatasetReader
    from tests.fixtures.xrootd import stop, xrootd_serving

    sys.path.insert(0, str(REPO / "scripts"))
    from generate_root_data import write_file

    source = write_file(tmp_path / "many_baskets.root", 200_000, seed=5, signal=True, chunk=4_000)
    settings = data_settings.model_copy(update={"remote_timeout_s": 3.0})
    with xrootd_serving({"many_baskets.root": source}) as xrd:
        async with running(create_server, settings) as (_server, channel):
            stub = data_service_pb2_grpc.DataServiceStub(channel)
            version = (await stub.RegisterDatasetVersion(pb.RegisterDatasetVersionRequest(
                dataset="far", source=dataset_pb2.DatasetSource(urls=[xrd.url("many_baskets.root")],
                                                               tree_name="events")),
                metadata=tokens.metadata("publisher"))).version
            assert version.entry_count == 200_000
            reader = DatasetReader(channel, metadata=tokens.metadata("reader"), timeout=120)
            rows, stopped = 0, False
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for batch in reader.aiter_batches("far", version.version_id, batch_size=4_000,
                                                        branches=["met", "jet_pt"]):
                    rows += batch.num_rows
                    if not stopped:
                        stop(xrd.process)  # the server goes away mid-read
                        stopped = True
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, (err.value.code(), err.value.details())
    assert 0 < rows < 200_000
    assert "many_baskets.root" in err.value.details() and "Traceback" not in err.value.details()


RNTUPLE = "Run2012BC_DoubleMuParked_Muons_1000evts_rntuple_v1-0-0-0.root"


@pytest.fixture
def xrootd_many(data_root):
    """An XRootD server exporting 12 copies of Zmumu and a CMS RNTuple file; the same files
    under the local data root (folder "many")."""
    from tests.fixtures.xrootd import xrootd_serving
    from tests.real_data import CORPUS, ZMUMU as ZMUMU_PATH

    files = {f"z{i:02d}.root": ZMUMU_PATH for i in range(12)} | {RNTUPLE: CORPUS / RNTUPLE}
    (data_root / "many").mkdir()
    for name, source in files.items():
        (data_root / "many" / name).write_bytes(source.read_bytes())
    with xrootd_serving(files) as server:
        yield server


async def test_xrootd_globs_and_directories_list_files_on_the_server(data_client, xrootd_many):
    local = (await data_client.register("zs", ["many/z*.root"], tree="events")).version
    assert len(local.files) == 12 and local.entry_count == 12 * 2304
    base = f"root://{xrootd_many.host}:{xrootd_many.port}/{xrootd_many.export}"
    by_glob = (await data_client.register("zs-xrd", [base + "/z*.root"])).version
    assert by_glob.version_id == local.version_id
    assert [f.url for f in by_glob.files] == sorted(f.url for f in by_glob.files)
    assert [f.url.rsplit("/", 1)[1] for f in by_glob.files] == [f"z{i:02d}.root" for i in range(12)]
    remote_table = await data_client.read_table("zs-xrd", by_glob.version_id, branches=["M"])
    local_table = await data_client.read_table("zs", local.version_id, branches=["M"])
    assert remote_table.equals(local_table)
    with pytest.raises(grpc.aio.AioRpcError) as err:  # the folder also holds an RNTuple file
        await data_client.register("zs-dir", [base + "/"])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert RNTUPLE in err.value.details() and "events" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await data_client.register("zs-none", [base + "/nothing*.root"])
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_an_rntuple_over_xrootd_equals_the_local_one(data_client, xrootd_many):
    import awkward as ak
    import uproot

    local = (await data_client.register("muons", [f"many/{RNTUPLE}"], tree="Events")).version
    url = f"root://{xrootd_many.host}:{xrootd_many.port}/{xrootd_many.export / RNTUPLE}"
    remote = (await data_client.register("muons-xrd", [url], tree="Events")).version
    assert remote.version_id == local.version_id and local.schema.tree_kind == "RNTuple"
    with uproot.open(xrootd_many.export / RNTUPLE) as f:
        rntuple = f["Events"]
        assert local.entry_count == rntuple.num_entries
        names = [b.name for b in local.schema.branches if b.dtype]
        assert names and set(names) <= set(rntuple.keys(recursive=True))
        read = rntuple.arrays(names, how=dict)  # top-level fields; members by their path
    expected = {}
    for name in names:
        top, *members = name.split(".")
        value = read[top]
        for member in members:
            value = value[member]
        expected[name] = ak.to_list(value)
    remote_table = await data_client.read_table("muons-xrd", remote.version_id, batch_size=300)
    assert remote_table.equals(await data_client.read_table("muons", local.version_id))
    for name in names:
        assert remote_table.column(name).to_pylist() == expected[name], name
