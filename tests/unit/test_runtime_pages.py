"""One pagination helper for every list RPC (beamops.runtime.pages): one page-size rule, and
page tokens that are opaque, tamper-evident and bound to their listing and its filters."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest

from beamops.runtime.errors import InvalidArgument
from beamops.runtime.pages import (
    DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, NOT_VALID, Listing, PageTokens, page_size,
)

KEY = b"k" * 32


@dataclass(frozen=True)
class Filter:
    model: str = ""
    tags: tuple[str, ...] = ()
    after: datetime | None = None


def listing(name: str = "test.things", key: bytes = KEY) -> Listing:
    return Listing(name, PageTokens(key))


def refused(call, *args) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as err:
        call(*args)
    assert err.value.field == "page_token", err.value.message
    assert "page_token" in err.value.message and "start again without it" in err.value.message
    return err.value


# ---------------------------------------------------------------- page sizes

@pytest.mark.parametrize("requested, size", [(0, DEFAULT_PAGE_SIZE), (1, 1), (100, 100), (999, 999),
                                             (1000, 1000), (1001, MAX_PAGE_SIZE), (2**31 - 1, MAX_PAGE_SIZE)])
def test_page_size_rule(requested, size):
    assert (DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE) == (100, 1000)  # what the protos promise
    assert page_size(requested) == size


@pytest.mark.parametrize("requested", [-1, -100, -(2**31)])
def test_negative_page_size_is_invalid_argument_naming_page_size(requested):
    with pytest.raises(InvalidArgument) as err:
        page_size(requested)
    assert err.value.field == "page_size" and "page_size" in err.value.message
    assert "negative" in err.value.message


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("position", [0, 1, 12345678901234, "jet-tagger", ["x", 3], [1717171717000000, "job-1"],
                                      {"after": "PHYSLITE"}, "ünïcode ✓"])
@pytest.mark.parametrize("query", [None, {}, {"model": "m", "tags": {"run": "even"}},
                                   Filter("m", ("a", "b"), datetime(2024, 5, 1, tzinfo=timezone.utc))])
def test_a_token_gives_back_its_position(position, query):
    things = listing()
    token = things.token(position, query)
    assert token and token.isascii() and "=" not in token and "/" not in token and "+" not in token
    assert things.position(token, query) == position


def test_the_longest_keys_fit():
    """A model permission's principal: up to 200 printable characters, any script."""
    things = listing()
    for position in ("x" * 200, "\U0001f600" * 200, "ü" * 200):
        assert things.position(things.token(position, {"model": "m" * 100}), {"model": "m" * 100}) == position


def test_an_empty_token_is_the_first_page():
    things = listing()
    assert things.position("", {"model": "m"}) is None
    assert things.offset("", {"model": "m"}) == 0
    assert things.slice(list(range(5)), 0, "")[0] == [0, 1, 2, 3, 4]


def test_tokens_are_opaque():
    token = listing().token("jet-tagger", {"model": "m"})
    assert "jet-tagger" not in token
    assert not token.isdigit()


def test_the_filter_digest_ignores_dict_order():
    things = listing()
    token = things.token(5, {"model": "m", "tags": {"a": "1", "b": "2"}})
    assert things.position(token, {"tags": {"b": "2", "a": "1"}, "model": "m"}) == 5


def test_slice_walks_an_in_memory_list_page_by_page():
    things, items = listing(), list(range(250))
    seen, token, pages = [], "", 0
    while True:
        page, token = things.slice(items, 100, token, {"model": "m"})
        seen += page
        pages += 1
        if not token:
            break
    assert seen == items and pages == 3
    page, token = things.slice(items, 250, "", {"model": "m"})
    assert page == items and token == ""  # empty on the last page, not one empty page later
    assert things.slice([], 10, "")[0] == []


def test_the_page_size_may_change_between_pages():
    things, items = listing(), list(range(30))
    first, token = things.slice(items, 10, "")
    second, _ = things.slice(items, 5, token)
    assert first == items[:10] and second == items[10:15]


# ---------------------------------------------------------------- bad tokens

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


OLD_FORMATS = [
    "100",                                                  # the inference service's bare offset
    _b64(b"o:100"),                                         # the data service's
    _b64(json.dumps([1717171717000000, "job-1"]).encode()),  # the training service's
    _b64(json.dumps({"after": "jet-tagger"}).encode()),     # the registry's
    _b64(json.dumps({"offset": 10}).encode()),
]
GARBAGE = ["garbage", "garbage!", "x", "====", "a b", "\x00", "é", "../../etc/passwd", "x" * 10_000,
           _b64(b"\x00" * 40), _b64(bytes(range(256)))]


@pytest.mark.parametrize("token", OLD_FORMATS + GARBAGE)
def test_garbage_and_old_formats_are_refused(token):
    assert refused(listing().position, token, None).message == NOT_VALID


def test_every_truncation_is_refused():
    things = listing()
    token = things.token(["some-key", 42], {"model": "m"})
    for end in range(1, len(token)):
        refused(things.position, token[:end], {"model": "m"})
    refused(things.position, token[1:], {"model": "m"})


def test_every_altered_character_is_refused():
    things = listing()
    token = things.token(42, {"model": "m"})
    for i, char in enumerate(token):
        for other in {"A", "B", "_", "-", "0"} - {char}:
            altered = token[:i] + other + token[i + 1:]
            refused(things.position, altered, {"model": "m"})


def test_additions_are_refused():
    things = listing()
    token = things.token(42)
    for altered in (token + "A", token + "AAAA", token + "=", token + "==", "A" + token, token + token):
        refused(things.position, altered, None)


def test_a_forged_payload_is_refused():
    """Rewriting the position inside a token (to skip ahead) breaks its tag."""
    things = listing()
    raw = base64.urlsafe_b64decode(things.token(100) + "==")
    forged = raw.replace(b'"p":100', b'"p":900')
    assert forged != raw
    refused(things.position, base64.urlsafe_b64encode(forged).decode().rstrip("="), None)


def test_a_token_signed_with_another_key_is_refused_as_expired():
    """A token of a server process that has since restarted (a new key)."""
    token = listing(key=b"a" * 32).token(42)
    err = refused(listing(key=b"b" * 32).position, token, None)
    assert err.message == NOT_VALID and "expired" in err.message


def test_a_token_of_another_listing_is_refused():
    token = listing("test.models").token("m")
    err = refused(listing("test.aliases").position, token, None)
    assert "another listing" in err.message


@pytest.mark.parametrize("other", [None, {"model": "n"}, {"model": "m", "extra": ""}, {"model": "M"},
                                   {"model": "m", "tags": ["a"]}])
def test_a_token_of_other_filters_is_refused(other):
    things = listing()
    token = things.token(7, {"model": "m"})
    err = refused(things.position, token, other)
    assert "other filters" in err.message


def test_a_token_of_other_dataclass_filters_is_refused():
    things = listing()
    when = datetime(2024, 5, 1, tzinfo=timezone.utc)
    token = things.token(7, Filter("m", ("a",), when))
    assert things.position(token, Filter("m", ("a",), when)) == 7
    for other in (Filter("m", ("a",)), Filter("m", ("b",), when), Filter("n", ("a",), when)):
        refused(things.position, token, other)


def test_an_offset_listing_refuses_a_signed_position_that_is_no_offset():
    things = listing()
    for position in ("7", -1, 1.5, True, [3]):
        refused(things.offset, things.token(position), None)
    with pytest.raises(ValueError):
        things.token(None)  # the first page has no token


def test_a_key_must_be_long_enough():
    with pytest.raises(ValueError):
        PageTokens(b"short")


def test_listings_share_the_process_key_unless_given_one():
    """Listings without their own PageTokens use the process's random key; tokens round-trip there."""
    a, b = Listing("test.default"), Listing("test.default")
    assert b.position(a.token(3)) == 3
    assert Listing("test.default", PageTokens()).tokens is not a.tokens


# ---------------------------------------------------------------- every list RPC uses it

def test_every_list_rpc_has_its_own_listing():
    from beamops.data import catalog
    from beamops.inference import servicer as inference
    from beamops.registry import registry, token_admin
    from beamops.training import store

    listings = [value for module in (catalog, inference, registry, token_admin, store)
                for value in vars(module).values() if isinstance(value, Listing)]
    names = [listing.name for listing in listings]
    assert len(names) == len(set(names)) == 15, names  # the 15 list RPCs of the four services


def test_training_jobs_page_with_signed_keyset_tokens(tmp_path):
    from beamops.training.spec import DatasetRef, ModelChoice, TrainingSpec
    from beamops.training.store import JobFilter, JobRecord, SqlJobStore

    store = SqlJobStore(tmp_path / "jobs.db")
    try:
        spec = TrainingSpec(features=("px",), label_branch="y", dataset=DatasetRef("PHYSLITE", "dsv-1"),
                            model=ModelChoice(builtin="mlp", task="regression"))
        for i in range(5):
            store.create(JobRecord(job_id=f"job-{i}", spec=spec, state="QUEUED", executor="local",
                                   submitted_by="alice",
                                   submit_time=datetime(2024, 1, 1, 0, 0, i, tzinfo=timezone.utc)),
                         ("submitted", {}))
        mine = JobFilter(submitted_by="alice")
        seen, token = [], ""
        while True:
            jobs, token = store.list(mine, 2, token)
            seen += [j.job_id for j in jobs]
            if not token:
                break
        assert seen == [f"job-{i}" for i in reversed(range(5))]  # newest first, each once
        _, token = store.list(mine, 2, "")
        refused(store.list, JobFilter(submitted_by="bob"), 2, token)
        refused(store.list, mine, 2, "garbage!")
        with pytest.raises(InvalidArgument) as err:
            store.list(mine, -1, "")
        assert err.value.field == "page_size"
    finally:
        store.close()


async def test_inference_deployments_page_by_signed_offsets():
    from beamops.inference.servicer import InferenceServicer
    from beamops.inference.v1 import inference_service_pb2 as pb

    from tests.unit.test_inference_control import dep

    class Deployments:
        def list(self, model, state):
            return [d for d in (dep(f"jets-{i}", "1.0") for i in range(5)) if not model or d.model == model]

    servicer = InferenceServicer(Deployments(), None, None)
    seen, token = [], ""
    while True:
        reply = await servicer.ListDeployments(pb.ListDeploymentsRequest(page_size=2, page_token=token), None)
        seen += [d.name for d in reply.deployments]
        token = reply.next_page_token
        if not token:
            break
    assert seen == [f"jets-{i}" for i in range(5)]
    first = await servicer.ListDeployments(pb.ListDeploymentsRequest(page_size=2), None)
    for request in (pb.ListDeploymentsRequest(page_token="2"),  # the old bare offset
                    pb.ListDeploymentsRequest(model="jets", page_token=first.next_page_token)):
        with pytest.raises(InvalidArgument) as err:
            await servicer.ListDeployments(request, None)
        assert err.value.field == "page_token"
    with pytest.raises(InvalidArgument) as err:
        await servicer.ListDeployments(pb.ListDeploymentsRequest(page_size=-1), None)
    assert err.value.field == "page_size"
