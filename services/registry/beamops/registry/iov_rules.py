"""What a since may be for each kind of IOV tag (CondDB's time types), checked on every append.

- ``run``: a run number, 0 to 2^32 - 1 (runs are 32-bit numbers in CMS and ATLAS).
- ``run_lumi``: ``run << 32 | lumi section``, as CMS packs it. The column is a signed 64-bit
  integer, so the run is at most 2^31 - 1; the lumi section any 32-bit number. A value below
  2^32 is run 0, which no experiment has: it is refused (almost always a plain run number sent
  to a run-lumi tag) except 0 and 1, the usual "valid from the start".
- ``timestamp``: Unix seconds (UTC), at most 9999-12-31T23:59:59Z (milliseconds or nanoseconds
  sent by mistake are far beyond that).

Points of ResolveIov are counted the same way but not checked: any point resolves.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Callable

from beamops.runtime.errors import InvalidArgument

MAX_SINCE = 2**63 - 1
MAX_RUN = 2**32 - 1
MAX_LUMI = 2**32 - 1
MAX_RUN_LUMI_RUN = MAX_SINCE >> 32
MAX_UNIX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z


def pack_run_lumi(run: int, lumi: int) -> int:
    """The since (or point) of (run, lumi section): ``run << 32 | lumi``."""
    return (run << 32) | lumi


def unpack_run_lumi(since: int) -> tuple[int, int]:
    return since >> 32, since & MAX_LUMI


def check_since(kind: str, since: int, tag: str) -> None:
    """INVALID_ARGUMENT, saying what was expected, unless ``since`` fits the tag's kind."""
    if since < 0 or since > MAX_SINCE:
        raise InvalidArgument(f"since must be within 0..{MAX_SINCE} (got {since})", field="since")
    if kind == "run" and since > MAX_RUN:
        run, lumi = unpack_run_lumi(since)
        raise InvalidArgument(f"tag {tag!r} is keyed by run number, and run numbers are at most {MAX_RUN} "
                              f"(got {since}, which would be run {run}, lumi {lumi} packed): for "
                              "lumi-section granularity use a tag of kind IOV_KIND_RUN_LUMI", field="since")
    if kind == "run_lumi" and 1 < since <= MAX_LUMI:
        raise InvalidArgument(
            f"tag {tag!r} is keyed by (run, lumi section) packed as run << 32 | lumi, and {since} is run 0, "
            f"lumi {since}: for run {since} from its first lumi section use since "
            f"{pack_run_lumi(since, 1)} (beamops.api.iov.pack_run_lumi({since}, 1))", field="since")
    if kind == "timestamp" and since > MAX_UNIX_SECONDS:
        raise InvalidArgument(f"tag {tag!r} is keyed by Unix time in seconds, at most {MAX_UNIX_SECONDS} "
                              f"(9999-12-31T23:59:59Z); {since} is later (milliseconds or nanoseconds?)",
                              field="since")


def describe(kind: str, since: int) -> str:
    """``since`` as a physicist reads it (for messages and the audit log)."""
    if kind == "run_lumi":
        run, lumi = unpack_run_lumi(since)
        return f"run {run}, lumi {lumi}"
    if kind == "run":
        return f"run {since}"
    return f"{since} s"


class InsertionClock:
    """Insertion times of IOV entries and the bound on snapshot times, from the registry's clock
    but never going back within this process: each insertion time is past the clock, past every
    insertion time handed out before and past every snapshot time accepted before. So a snapshot
    accepted once (at most "now") is never reached by a later append of this process, even when
    the host's clock steps back or does not move. (The append also stays past its tag's last
    insertion time in the database, which covers other replicas: registry.append_iov.)"""

    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._high_us = 0

    def insertion(self, after_us: int | None) -> int:
        """A new insertion time, past ``after_us`` (the tag's last one; None: none)."""
        with self._lock:
            self._high_us = max(self._clock(), self._high_us + 1, -1 if after_us is None else after_us + 1)
            return self._high_us

    def accept_snapshot(self, snapshot_us: int) -> int:
        """``snapshot_us`` if it has passed, else :class:`InvalidArgument` (its answer could change)."""
        with self._lock:
            now_us = max(self._clock(), self._high_us)
            if snapshot_us > now_us:
                raise InvalidArgument(
                    f"snapshot_time {_iso(snapshot_us)} is later than the registry's clock ({_iso(now_us)}): "
                    "a snapshot must be a time that has passed, so that its answer can never change; leave it "
                    "unset to resolve as the registry stands now", field="snapshot_time")
            self._high_us = max(self._high_us, snapshot_us)
            return snapshot_us


def _iso(us: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=us)).isoformat()
