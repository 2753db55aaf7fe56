"""Points of intervals of validity keyed by (run, luminosity section), packed as CMS packs them.

A tag of kind ``run_lumi`` counts its sinces (and the points it is resolved at) as
``run << 32 | lumi``:

>>> pack_run_lumi(362000, 120)
1554778161152120
>>> unpack_run_lumi(1554778161152120)
(362000, 120)

The registry stores since as a signed 64-bit number, so the run is at most 2^31 - 1; the lumi
section is any 32-bit number.
"""

from __future__ import annotations

MAX_RUN = 2**31 - 1
MAX_LUMI = 2**32 - 1


def pack_run_lumi(run: int, lumi: int) -> int:
    """The since (or point) of lumi section ``lumi`` of run ``run``."""
    if not 0 <= run <= MAX_RUN:
        raise ValueError(f"run must be within 0..{MAX_RUN} to pack it with a lumi section (got {run})")
    if not 0 <= lumi <= MAX_LUMI:
        raise ValueError(f"lumi section must be within 0..{MAX_LUMI} (got {lumi})")
    return (run << 32) | lumi


def unpack_run_lumi(since: int) -> tuple[int, int]:
    """``(run, lumi)`` of a packed since."""
    if not 0 <= since < 2**63:
        raise ValueError(f"a packed (run, lumi) is within 0..{2**63 - 1} (got {since})")
    return since >> 32, since & MAX_LUMI


def parse_point(text: str) -> int:
    """``"362000:120"`` (run:lumi, packed) or a plain number (a run or Unix seconds)."""
    run, sep, lumi = text.partition(":")
    try:
        return pack_run_lumi(int(run), int(lumi)) if sep else int(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a number or RUN:LUMI ({exc})") from None
