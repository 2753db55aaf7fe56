"""Bad names are refused with INVALID_ARGUMENT and a clear message, and leave no trace."""

from __future__ import annotations

import grpc
import pytest

from beamops.registry.v1 import registry_service_pb2 as rs
from tests.fixtures.registry import assert_clear

BAD_NAMES = ["", "a/b", "..", "a..b", "nul\x00", "café", "ｊｅｔ", "-leading", "x" * 101, "sp ace", "../etc/passwd"]


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_bad_model_names(registry, name):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.create_model(name)
    assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "model name", "letters, digits")
    listed = await registry.stub.ListModels(rs.ListModelsRequest(), metadata=registry.md("reader"))
    assert list(listed.models) == []


async def test_good_names_and_listing(registry):
    for name in ("jet-tagger", "ECAL_calib.v2", "0trigger"):
        await registry.create_model(name, tags={"team": "ecal" if "ECAL" in name else "other"})
    md = registry.md("reader")
    names = [m.name for m in (await registry.stub.ListModels(rs.ListModelsRequest(), metadata=md)).models]
    assert names == ["0trigger", "ECAL_calib.v2", "jet-tagger"]
    tagged = await registry.stub.ListModels(rs.ListModelsRequest(tags={"team": "ecal"}), metadata=md)
    assert [m.name for m in tagged.models] == ["ECAL_calib.v2"]
    prefixed = await registry.stub.ListModels(rs.ListModelsRequest(name_prefix="jet"), metadata=md)
    assert [m.name for m in prefixed.models] == ["jet-tagger"]
    page = await registry.stub.ListModels(rs.ListModelsRequest(page_size=2), metadata=md)
    rest = await registry.stub.ListModels(rs.ListModelsRequest(page_size=2, page_token=page.next_page_token),
                                          metadata=md)
    assert [m.name for m in page.models] + [m.name for m in rest.models] == names
    assert rest.next_page_token == ""
    # A token is only good for the query that issued it: other filters, or another list, are refused.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.ListModels(rs.ListModelsRequest(name_prefix="jet", page_token=page.next_page_token),
                                       metadata=md)
    assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "page_token", "other filters")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.ListIovTags(rs.ListIovTagsRequest(page_token=page.next_page_token), metadata=md)
    assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "page_token", "another listing")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.create_model("jet-tagger")
    assert_clear(err.value, grpc.StatusCode.ALREADY_EXISTS, "jet-tagger")


async def test_names_are_case_sensitive_and_kept_as_typed(registry):
    for name in ("JetTagger", "jettagger", "PHYSLITE_tagger"):
        await registry.create_model(name)
    md = registry.md("reader")
    got = await registry.stub.GetModel(rs.GetModelRequest(name="JetTagger"), metadata=md)
    assert got.model.name == "JetTagger"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.GetModel(rs.GetModelRequest(name="JETTAGGER"), metadata=md)
    assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "JETTAGGER")
    for prefix, expected in (("jet", ["jettagger"]), ("Jet", ["JetTagger"]), ("PHYS", ["PHYSLITE_tagger"]),
                             ("phys", [])):
        listed = await registry.stub.ListModels(rs.ListModelsRequest(name_prefix=prefix), metadata=md)
        assert [m.name for m in listed.models] == expected, prefix


async def test_readers_cannot_create(registry):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.create_model("m", role="reader")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
