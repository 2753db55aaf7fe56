"""The registry's read cache (pure logic): values live only within the generation they were read
in, a change seen during a read wins, the size is bounded, and a watch that cannot see changes
turns the cache off. IOV timelines resolve exactly like the SQL rule (greatest since <= point, the last inserted of
equal sinces, only entries inserted by the snapshot time)."""

from __future__ import annotations

from beamops.registry.lookups import IovTimeline
from beamops.registry.read_cache import ChangeWatch, ReadCache


class ScriptedWatch(ChangeWatch):
    """A watch whose changes and connectivity the test decides."""

    def __init__(self) -> None:
        self.connected = True
        self.pending_change = False

    def poll(self) -> bool:
        if self.pending_change:
            self.pending_change = False
            self.on_change()
        return self.connected


def test_a_value_is_served_until_a_change_is_seen():
    watch = ScriptedWatch()
    cache = ReadCache(change_watch=watch)
    reads = []
    assert cache.load("k", lambda: reads.append(1) or "v1") == "v1"
    assert cache.load("k", lambda: reads.append(1) or "v2") == "v1"
    assert len(reads) == 1 and cache.hits == 1
    watch.pending_change = True  # another writer committed
    assert cache.load("k", lambda: "v2") == "v2"


def test_local_invalidation_drops_every_value():
    cache = ReadCache()
    cache.load("a", lambda: 1)
    cache.load("b", lambda: 2)
    cache.invalidate()
    assert cache.get("a") is None and cache.get("b") is None


def test_a_value_read_before_a_change_is_not_kept():
    cache = ReadCache()

    def read_racing_a_write() -> str:
        cache.invalidate()  # a commit lands while the old value is being read
        return "old"

    assert cache.load("k", read_racing_a_write) == "old"  # the caller still gets its answer
    assert cache.get("k") is None  # but it is not served to anyone later


def test_not_found_is_not_cached():
    cache = ReadCache()
    assert cache.load("k", lambda: None) is None
    assert cache.load("k", lambda: "now there") == "now there"


def test_the_oldest_entries_leave_first_when_full():
    cache = ReadCache(max_entries=2)
    for key in ("a", "b", "c"):
        cache.load(key, lambda key=key: key.upper())
    assert cache.get("a") is None
    assert cache.get("b") == "B" and cache.get("c") == "C"


def test_a_watch_that_cannot_see_changes_turns_the_cache_off():
    watch = ScriptedWatch()
    cache = ReadCache(change_watch=watch)
    cache.load("k", lambda: "v1")
    watch.connected = False
    assert cache.get("k") is None
    reads = []
    for _ in range(2):
        assert cache.load("k", lambda: reads.append(1) or "v2") == "v2"
    assert len(reads) == 2  # every read went to the database
    watch.connected = True
    assert cache.load("k", lambda: "v3") == "v3"  # back on, filled again


def _timeline(*sinces: int) -> IovTimeline:
    """Entries appended in the order given, each inserted one microsecond after the last."""
    return IovTimeline(tuple(sorted((s, i + 1, f"entry@{s}") for i, s in enumerate(sinces))))


def test_timeline_picks_the_greatest_since_not_after_the_point():
    timeline = _timeline(1, 100, 250)
    assert timeline.resolve(0) is None
    assert timeline.resolve(1) == ("entry@1", 100)
    assert timeline.resolve(99) == ("entry@1", 100)
    assert timeline.resolve(100) == ("entry@100", 250)
    assert timeline.resolve(10**12) == ("entry@250", 0)


def test_timeline_corrections_cover_older_entries_except_in_earlier_snapshots():
    # inserted at 1: since 1 -> v1; at 2: since 300 -> v2; at 3: since 100 -> fix (a past
    # interval corrected); at 4: since 300 again -> v2b (the same since corrected)
    timeline = IovTimeline(tuple(sorted([(1, 1, "v1"), (300, 2, "v2"), (100, 3, "fix"), (300, 4, "v2b")])))
    assert [timeline.resolve(p) for p in (50, 100, 299, 300)] == [
        ("v1", 100), ("fix", 300), ("fix", 300), ("v2b", 0)]
    assert [timeline.resolve(p, 2) for p in (50, 100, 299, 300)] == [  # before the corrections
        ("v1", 300), ("v1", 300), ("v1", 300), ("v2", 0)]
    assert timeline.resolve(300, 3) == ("v2", 0) and timeline.resolve(150, 3) == ("fix", 300)
    assert timeline.resolve(1, 0) is None  # nothing was inserted yet
    at_300 = {0: None, 1: ("v1", 0), 2: ("v2", 0), 3: ("v2", 0), 4: ("v2b", 0)}
    for snapshot in [*at_300, *at_300]:  # views are kept per snapshot; each stays right
        assert timeline.resolve(300, snapshot) == at_300[snapshot]
