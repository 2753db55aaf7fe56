"""Cuts whose evaluation would cost unbounded time or recursion are refused before they run.

Red-team finding: the 16-character cut ``NMuon > 9**10**7`` (reader role) froze the whole data
service for ~10 s and then failed INTERNAL (Python's big-integer power runs in C, holding the GIL,
and cannot be interrupted); ``9**3000000 % 7 == 1`` could be *stored* in a derived version, so
every later read froze the service again; ~2,000 nested unary minus signs gave INTERNAL
(RecursionError). Each of these is now INVALID_ARGUMENT, through the real in-process service, as a
reader (ReadDatasetVersion ``cut``), as a publisher (RegisterDatasetVersion ``source.cut``,
DeriveDatasetVersion ``selection.cut``) and when a stored cut is read back; the service answers a
health check and a normal read right after each. No assertion on time: every call has a 30 s
deadline, so a hang fails the test instead of passing slowly.
"""

from __future__ import annotations

import json
import sqlite3

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from beamops.common.v1 import lineage_pb2
from beamops.data.v1 import data_service_pb2 as pb
from beamops.data.v1 import dataset_pb2

from tests.fixtures.data_service import HZZ

from .assertions import expect_error

IA = grpc.StatusCode.INVALID_ARGUMENT
DEADLINE = 30  # seconds: far above what a refused cut takes; a hang fails the call

COSTLY_CUTS = {
    "huge power": "NMuon > 9**10**7",
    "storable huge power": "9**3000000 % 7 == 1",
    "huge exponent": "NMuon > 10**400",
    "huge whole number": "NMuon > 1" + "0" * 400,
    "2000 unary minus": "-" * 1990 + "NMuon > 1",
    "deep nesting": "(NMuon + " * 190 + "1" + ")" * 190 + " > 1",
    "parser's parenthesis limit": "(" * 600 + "NMuon" + ")" * 600 + " > 1",
    "too many parts": "0<NMuon" + "<1" * 600,
}
WORDS = {
    "huge power": "the exponent of '**' must be a number between -64 and 64",
    "storable huge power": "the exponent of '**' must be a number between -64 and 64",
    "huge exponent": "the exponent of '**' must be a number between -64 and 64",
    "huge whole number": "too large",
    "2000 unary minus": "nested too deeply (more than 64 levels)",
    "deep nesting": "nested too deeply (more than 64 levels)",
    "parser's parenthesis limit": "does not parse",
    "too many parts": "more than 500 parts",
}


async def healthy(channel: grpc.aio.Channel) -> bool:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def ref(version) -> lineage_pb2.DatasetVersionRef:
    return lineage_pb2.DatasetVersionRef(dataset=version.dataset, version_id=version.version_id)


def read(data_client, version, **kw):
    return data_client.stub.ReadDatasetVersion(
        pb.ReadDatasetVersionRequest(version=ref(version), branches=["NMuon"], **kw),
        metadata=data_client.md("reader"), timeout=DEADLINE)


async def rows(data_client, version, **kw) -> int:
    return sum([m.num_rows async for m in read(data_client, version, **kw)])


async def assert_still_serving(data_client, version, expected_rows: int) -> None:
    assert await healthy(data_client.channel)
    assert await rows(data_client, version, cut="NMuon >= 2") == expected_rows


@pytest.fixture
async def hzz(data_client):
    version = (await data_client.register("cost", [HZZ])).version
    two_muons = await rows(data_client, version, cut="NMuon >= 2")
    assert 0 < two_muons < version.entry_count
    return version, two_muons


@pytest.mark.parametrize("name", COSTLY_CUTS)
async def test_a_reader_sending_a_costly_cut_gets_invalid_argument_and_the_service_stays_up(
        data_client, hzz, name):
    version, two_muons = hzz
    cut = COSTLY_CUTS[name]
    await expect_error(read(data_client, version, cut=cut), IA, WORDS[name], echo=[cut])
    await assert_still_serving(data_client, version, two_muons)


@pytest.mark.parametrize("name", COSTLY_CUTS)
async def test_a_publisher_cannot_store_a_costly_cut(data_client, hzz, name):
    version, two_muons = hzz
    cut = COSTLY_CUTS[name]
    derive = data_client.stub.DeriveDatasetVersion(
        pb.DeriveDatasetVersionRequest(parent=ref(version), dataset="cost-derived",
                                       selection=dataset_pb2.SelectionDerivation(cut=cut)),
        metadata=data_client.md("publisher"), timeout=DEADLINE)
    await expect_error(derive, IA, WORDS[name], echo=[cut])
    register = data_client.stub.RegisterDatasetVersion(
        pb.RegisterDatasetVersionRequest(dataset="cost-registered", source=dataset_pb2.DatasetSource(
            urls=[HZZ], tree_name="events", cut=cut)),
        metadata=data_client.md("publisher"), timeout=DEADLINE)
    await expect_error(register, IA, WORDS[name], echo=[cut])
    await assert_still_serving(data_client, version, two_muons)
    listed = await data_client.stub.ListDatasets(pb.ListDatasetsRequest(), metadata=data_client.md("reader"),
                                                 timeout=DEADLINE)
    assert [d.name for d in listed.datasets] == ["cost"]  # nothing was stored


@pytest.mark.parametrize("cut,words", [
    (COSTLY_CUTS["storable huge power"], WORDS["storable huge power"]),
    ("-" * 1900 + "NMuon > 1", "nested too deeply"),  # the stored text also has its parent's cut
])
async def test_a_costly_cut_stored_before_the_limits_is_refused_on_every_read(
        data_client, data_settings, hzz, cut, words):
    """A derived version stores its cut text and parses it again on each read: a record written
    before these limits existed (here: edited into the database) is refused, never evaluated."""
    version, two_muons = hzz
    derived = (await data_client.stub.DeriveDatasetVersion(
        pb.DeriveDatasetVersionRequest(parent=ref(version), dataset="cost-old",
                                       selection=dataset_pb2.SelectionDerivation(cut="NMuon >= 1")),
        metadata=data_client.md("publisher"), timeout=DEADLINE)).version
    with sqlite3.connect(data_settings.database_path) as db:
        (record,) = db.execute("SELECT record FROM dataset_versions WHERE version_id = ?",
                               (derived.version_id,)).fetchone()
        data = json.loads(record)
        data["source"]["cut"] = f"(NMuon >= 1) and ({cut})"
        db.execute("UPDATE dataset_versions SET record = ? WHERE version_id = ?",
                   (json.dumps(data), derived.version_id))
    for _ in range(2):
        await expect_error(read(data_client, derived), IA, words)
        await assert_still_serving(data_client, version, two_muons)
    derive_again = data_client.stub.DeriveDatasetVersion(
        pb.DeriveDatasetVersionRequest(parent=ref(derived), dataset="cost-old-2",
                                       selection=dataset_pb2.SelectionDerivation(cut="NMuon >= 2")),
        metadata=data_client.md("publisher"), timeout=DEADLINE)
    await expect_error(derive_again, IA, words)
    await assert_still_serving(data_client, version, two_muons)


async def test_ordinary_powers_and_arithmetic_in_cuts_still_work(data_client, hzz):
    version, two_muons = hzz
    for cut in ("NMuon ** 2 >= 4", "(NMuon + 0.0) ** 0.5 >= 2 ** 0.5", "2 ** NMuon >= 4",
                "NMuon >= 2 ** 1 and MET_px < 1e400", "where(NMuon >= 2, 1, 0) ** -1 == 1"):
        assert await rows(data_client, version, cut=cut) == two_muons, cut
