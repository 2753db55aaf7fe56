"""IOV resolution at snapshot times against the rule itself, on SQLite and PostgreSQL, through
each of the registry's three ways of answering: the cached timeline (memory), the hot SQL
statement (tags too long to cache, or the cache off) and the session query ResolveGlobalTag uses.
The registry's clock is driven by the test, so insertion times and "the future" are exact."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from beamops.common.v1 import auth_pb2
from beamops.registry import records
from beamops.registry.artifacts import LocalArtifactStore
from beamops.registry.entities import Caller, NewParameters, Signature, TensorSpec
from beamops.registry.registry import Registry
from beamops.registry.store import Store
from beamops.runtime.auth import Principal
from beamops.runtime.errors import InvalidArgument, NotFound

pytestmark = pytest.mark.integration

ADMIN = Caller(Principal("alice", auth_pb2.ROLE_ADMIN))
START_US = 1_800_000_000_000_000  # 2027-01-15, as the registry's clock says


class Clock:
    def __init__(self) -> None:
        self.us = START_US

    def __call__(self) -> int:
        return self.us


@pytest.fixture
def clocked(each_registry_engine: str, tmp_path: Path) -> Iterator[tuple[Registry, Clock]]:
    store = Store(each_registry_engine)
    store.migrate()
    clock = Clock()
    registry = Registry(store, LocalArtifactStore(tmp_path / "art", 10**6), clock=clock)
    registry.create_model(ADMIN, "calo")
    registry.create_model_type(ADMIN, "calo", "1.0.0", Signature(inputs=(TensorSpec("x", "float32", (-1, 4)),)))
    for _ in range(4):
        registry.create_parameters(ADMIN, NewParameters("calo", "1.0.0"))
    registry.create_iov_tag(ADMIN, "calib", "calo", "run")
    registry.create_global_tag(ADMIN, "GT", ["calib"])
    yield registry, clock
    store.dispose()


@dataclass(frozen=True)
class Appended:
    since: int
    version: str
    inserted_us: int


def _expected(appended: list[Appended], point: int, snapshot_us: int | None) -> tuple[str, int, int] | None:
    """CondDB's rule, written out: (version, since, until) or None."""
    counted = [e for e in appended if snapshot_us is None or e.inserted_us <= snapshot_us]
    valid = [e for e in counted if e.since <= point]
    if not valid:
        return None
    chosen = max(valid, key=lambda e: (e.since, e.inserted_us))
    later = [e.since for e in counted if e.since > chosen.since]
    return chosen.version, chosen.since, min(later) if later else 0


def test_every_way_of_resolving_follows_the_rule_at_every_snapshot(clocked):
    registry, clock = clocked
    rng = random.Random(21)
    appended: list[Appended] = []
    for _ in range(24):  # corrections of earlier and equal sinces among ordinary appends
        clock.us += rng.choice((0, 0, 1, 7, 1000))  # the clock often does not move
        since, version = rng.choice((1, 50, 100, 150, 200, 300)), f"1.{rng.randrange(4)}"
        entry = registry.append_iov(ADMIN, "calib", since, version)
        appended.append(Appended(since, version, records.to_us(entry.create_time)))
    inserted = [e.inserted_us for e in appended]
    assert inserted == sorted(set(inserted)), "insertion times must strictly increase within a tag"

    snapshots = [None, inserted[0] - 1, *inserted]
    points = (0, 1, 49, 50, 99, 100, 149, 150, 199, 200, 299, 300, 10**9)

    def via_cache(point, snapshot):
        try:
            entry, until = registry.resolve_iov("calib", point, snapshot=snapshot)
        except NotFound:
            return None
        return entry.parameters.version, entry.since, until

    def via_sql(point, snapshot_us):
        found = registry.store.read_once(lambda conn: registry._lookups.resolve_iov(conn, "calib", point,
                                                                                     snapshot_us))
        return None if found is None else (found[0].parameters.version, found[0].since, found[1])

    def via_global_tag(point, snapshot):  # (version, since): a global tag's answer has no until
        entries, unresolved = registry.resolve_global_tag("GT", point, snapshot)
        return None if unresolved else (entries[0].parameters.version, entries[0].since)

    for snapshot_us in snapshots:
        snapshot = None if snapshot_us is None else records.to_datetime(snapshot_us)
        for point in points:
            want = _expected(appended, point, snapshot_us)
            assert via_cache(point, snapshot) == want, (point, snapshot_us)
            assert via_sql(point, snapshot_us) == want, (point, snapshot_us)
            assert via_global_tag(point, snapshot) == (want and want[:2]), (point, snapshot_us)

    def listed(**kw):
        return [(e.since, records.to_us(e.create_time)) for e in registry.list_iovs("calib", size=1000, **kw).items]

    assert listed() == sorted((e.since, e.inserted_us) for e in appended)
    middle = inserted[len(inserted) // 2]
    assert listed(snapshot=records.to_datetime(middle)) == sorted(
        (e.since, e.inserted_us) for e in appended if e.inserted_us <= middle)


def test_insertion_times_increase_even_when_the_clock_goes_back_and_snapshots_must_have_passed(clocked):
    registry, clock = clocked
    first = registry.append_iov(ADMIN, "calib", 100, "1.0")
    clock.us -= 5_000_000  # the host's clock stepped back five seconds
    second = registry.append_iov(ADMIN, "calib", 100, "1.1")
    assert records.to_us(second.create_time) == records.to_us(first.create_time) + 1
    assert registry.resolve_iov("calib", 100)[0].parameters.version == "1.1"
    assert registry.resolve_iov("calib", 100, snapshot=first.create_time)[0].parameters.version == "1.0"

    clock.us = START_US + 10
    now = records.to_datetime(clock.us)
    assert registry.resolve_iov("calib", 100, snapshot=now)[0].parameters.version == "1.1"  # now has passed
    ahead = records.to_datetime(clock.us + 1)
    for call in (lambda: registry.resolve_iov("calib", 100, snapshot=ahead),
                 lambda: registry.resolve_iov("calib", 100, cached_only=True, snapshot=ahead),
                 lambda: registry.resolve_global_tag("GT", 100, ahead),
                 lambda: registry.list_iovs("calib", snapshot=ahead)):
        with pytest.raises(InvalidArgument, match="later than the registry's clock") as err:
            call()
        assert err.value.field == "snapshot_time"
