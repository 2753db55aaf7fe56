"""RegisterDatasetVersionStream: registering many files with progress, as a physicist registering
a folder of 30 (or 200) files sees it: counts that only grow, a final message with the result
RegisterDatasetVersion would give, errors that name the differing file, and a cancelled stream
that registers nothing."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import uproot

from beamops.data.hashing import FileHasher
from beamops.data.v1 import data_service_pb2 as pb
from beamops.data.v1 import dataset_pb2

from tests.fixtures.data_service import HZZ, REAL_DATA, ZMUMU

COPIES = 30
ZMUMU_SIZE = (REAL_DATA / ZMUMU).stat().st_size
SUBSET = ["Run", "Event", "E1", "px1", "M"]  # branches of Zmumu, same types


def request_for(dataset: str, urls, tree: str = "events", **source) -> pb.RegisterDatasetVersionRequest:
    return pb.RegisterDatasetVersionRequest(
        dataset=dataset, source=dataset_pb2.DatasetSource(urls=list(urls), tree_name=tree, **source))


async def stream(data_client, request: pb.RegisterDatasetVersionRequest, role: str = "publisher"):
    call = data_client.stub.RegisterDatasetVersionStream(
        pb.RegisterDatasetVersionStreamRequest(request=request), metadata=data_client.md(role))
    return [message async for message in call]


def assert_progress(messages, files: int, size: int) -> pb.RegisterDatasetVersionResponse:
    """Counts never decrease, only the last message has the result, and it ends at the total."""
    assert messages, "the stream sent nothing"
    done = [m.files_done for m in messages]
    hashed = [m.bytes_hashed for m in messages]
    assert done == sorted(done) and hashed == sorted(hashed), (done, hashed)
    assert all(m.files_total == files for m in messages)
    assert [m.HasField("result") for m in messages] == [False] * (len(messages) - 1) + [True]
    last = messages[-1]
    assert (last.files_done, last.files_total, last.bytes_hashed) == (files, files, size)
    return last.result


@pytest.fixture
def many(data_root):
    """30 copies of the Zmumu file in data_root/many/."""
    folder = data_root / "many"
    folder.mkdir()
    for i in range(COPIES):
        shutil.copyfile(REAL_DATA / ZMUMU, folder / f"zmumu_{i:03d}.root")
    return folder


def write_subset(path, branches) -> None:
    """A Zmumu file with only ``branches`` (written by uproot, same types)."""
    with uproot.open(REAL_DATA / ZMUMU) as f:
        arrays = f["events"].arrays(branches, library="np")
    with uproot.recreate(path) as out:  # mktree: a TTree (assigning a dict may write an RNTuple)
        tree = out.mktree("events", {name: arrays[name].dtype for name in branches})
        tree.extend({name: np.asarray(arrays[name]) for name in branches})


async def test_a_folder_and_a_glob_stream_progress_and_give_the_unary_result(data_client, many):
    started = time.monotonic()
    messages = await stream(data_client, request_for("zmumu-many", ["many/"]))
    elapsed = time.monotonic() - started
    first = assert_progress(messages, COPIES, COPIES * ZMUMU_SIZE)
    assert first.created and first.version.entry_count == COPIES * 2304
    assert [f.url for f in first.version.files] == [f"many/zmumu_{i:03d}.root" for i in range(COPIES)]
    assert len(messages) <= 10 * elapsed + 2, (len(messages), elapsed)  # throttled: ~10 a second

    unary = await data_client.stub.RegisterDatasetVersion(request_for("zmumu-many", ["many/"]),
                                                          metadata=data_client.md())
    assert not unary.created and unary.version == first.version  # the same version, as stored

    by_glob = assert_progress(await stream(data_client, request_for("zmumu-many", ["many/*.root"])),
                              COPIES, COPIES * ZMUMU_SIZE)
    assert by_glob == unary  # same version, created = false
    again = assert_progress(await stream(data_client, request_for("zmumu-many", ["many"])),
                            COPIES, COPIES * ZMUMU_SIZE)
    assert again == unary

    versions = await data_client.stub.ListDatasetVersions(
        pb.ListDatasetVersionsRequest(dataset="zmumu-many"), metadata=data_client.md("reader"))
    assert [v.version_id for v in versions.versions] == [first.version.version_id]


async def test_validate_only_streams_and_stores_nothing(data_client, many):
    request = request_for("checked", ["many/*.root"], cut="M > 80")
    request.validate_only = True
    result = assert_progress(await stream(data_client, request), COPIES, COPIES * ZMUMU_SIZE)
    assert not result.created and 0 < result.version.entry_count < COPIES * 2304
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await data_client.stub.GetDataset(pb.GetDatasetRequest(dataset="checked"), metadata=data_client.md())
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_files_that_differ_name_the_file_and_branch_unless_common_branches(data_client, data_root):
    mixed = data_root / "mixed"
    mixed.mkdir()
    shutil.copyfile(REAL_DATA / ZMUMU, mixed / "a_zmumu.root")
    write_subset(mixed / "b_subset.root", SUBSET)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stream(data_client, request_for("mixed", ["mixed/"]))
    message = err.value.details()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, message
    assert "'mixed/b_subset.root'" in message and "has no branch 'Type'" in message, message
    assert "common_branches" in message and "/tmp" not in message, message
    with pytest.raises(grpc.aio.AioRpcError) as unary:  # the same error as the unary RPC
        await data_client.register("mixed", ["mixed/"])
    assert (unary.value.code(), unary.value.details()) == (err.value.code(), message)

    shared = assert_progress(await stream(data_client, request_for("mixed", ["mixed/"], common_branches=True)),
                             2, sum(p.stat().st_size for p in mixed.iterdir()))
    assert shared.created and [b.name for b in shared.version.schema.branches] == SUBSET
    assert shared.version.entry_count == 2 * 2304
    table = await data_client.read_table("mixed", shared.version.version_id)
    assert table.column_names == SUBSET and table.num_rows == 2 * 2304


@pytest.fixture
def apart(data_root):
    """HZZ and Zmumu in one folder: they share no branch at all."""
    folder = data_root / "apart"
    folder.mkdir()
    shutil.copyfile(REAL_DATA / HZZ, folder / "hzz.root")
    shutil.copyfile(REAL_DATA / ZMUMU, folder / "zmumu.root")
    return folder


async def test_files_that_share_no_branch_name_the_first_difference(data_client, apart):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stream(data_client, request_for("apart", ["apart/"]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'apart/zmumu.root'" in err.value.details() and "has no branch 'NJet'" in err.value.details()


async def test_common_branches_of_files_that_share_none_is_an_error(data_client, apart):
    with pytest.raises(grpc.aio.AioRpcError) as none_shared:
        await stream(data_client, request_for("apart", ["apart/"], common_branches=True))
    assert none_shared.value.code() == grpc.StatusCode.INVALID_ARGUMENT, none_shared.value.details()
    assert "share no branch" in none_shared.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await data_client.stub.GetDataset(pb.GetDatasetRequest(dataset="apart"), metadata=data_client.md())
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("urls,code,words", [
    (["nothing_*.root"], grpc.StatusCode.NOT_FOUND, "no file matches"),
    (["../outside/secret.root"], grpc.StatusCode.PERMISSION_DENIED, "'..'"),
    (["truncated.root"], grpc.StatusCode.DATA_LOSS, "'truncated.root'"),
])
async def test_errors_map_as_in_the_unary_rpc(data_client, urls, code, words):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stream(data_client, request_for("bad", urls))
    with pytest.raises(grpc.aio.AioRpcError) as unary:
        await data_client.register("bad", urls)
    assert err.value.code() == unary.value.code() == code
    assert err.value.details() == unary.value.details() and words in err.value.details()
    assert dict(err.value.trailing_metadata()).get("x-request-id")


async def test_readers_may_not_register_by_stream(data_client, many):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stream(data_client, request_for("zmumu-many", ["many/"]), role="reader")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_cancelled_stream_registers_nothing(data_client, many, monkeypatch):
    """The client goes away while files are being hashed: the registration stops (the files not
    yet started are not hashed) and no version, no dataset appears."""
    hashed, lock = [0], threading.Lock()
    digest = FileHasher.digest

    def slow_digest(self, ref):
        time.sleep(0.1)  # 30 files, 4 at a time: ~0.8 s in all
        with lock:
            hashed[0] += 1
        return digest(self, ref)

    monkeypatch.setattr(FileHasher, "digest", slow_digest)
    call = data_client.stub.RegisterDatasetVersionStream(
        pb.RegisterDatasetVersionStreamRequest(request=request_for("cancelled", ["many/"])),
        metadata=data_client.md())
    first = await call.read()
    assert 0 < first.files_done < COPIES and not first.HasField("result")
    call.cancel()
    seen, deadline = -1, time.monotonic() + 20
    while seen != hashed[0] and time.monotonic() < deadline:  # until the worker has stopped
        seen = hashed[0]
        await asyncio.sleep(0.5)
    assert hashed[0] < COPIES, "the registration went on after the client cancelled"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await data_client.stub.GetDataset(pb.GetDatasetRequest(dataset="cancelled"), metadata=data_client.md())
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    monkeypatch.setattr(FileHasher, "digest", digest)  # and the same request then registers
    done = assert_progress(await stream(data_client, request_for("cancelled", ["many/"])),
                           COPIES, COPIES * ZMUMU_SIZE)
    assert done.created
