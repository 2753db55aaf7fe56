"""A corpus of corrupted ROOT files made from the real ones in tests/data/root: truncated,
bit-flipped, and with absurd sizes and offsets in the file header, the tree's key and a basket's
key (what makes a reader allocate or seek far). Deterministic (seeded)."""

from __future__ import annotations

import random
import struct
from pathlib import Path

from tests.real_data import HZZ, ZMUMU

BIG = [2**31 - 1, -1, 2**31 - 2**20]


def _put(data: bytearray, offset: int, fmt: str, value: int) -> None:
    size = struct.calcsize(fmt)
    if offset + size <= len(data):
        # wrap into the field's range (e.g. -1 as an unsigned field)
        bits = size * 8
        signed = fmt[-1].islower()
        value = ((value + (1 << (bits - 1))) % (1 << bits)) - (1 << (bits - 1)) if signed else value % (1 << bits)
        data[offset:offset + size] = struct.pack(fmt, value)


def _layout(data: bytes) -> dict[str, int]:
    """Offsets of the header fields (small-file format, fVersion < 1000000) and of two keys."""
    import uproot

    import io

    with uproot.open(io.BytesIO(data)) as f:
        tree_key = f.key("events").fSeekKey
        tree = f["events"]
        basket = int(next(b for b in tree.branches if b.num_baskets).member("fBasketSeek")[0])
    return {"tree_key": tree_key, "basket_key": basket}


def corpus(seed: int = 7) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    rng = random.Random(seed)
    for source in (ZMUMU, HZZ):
        data = source.read_bytes()
        tag = source.stem
        n = len(data)
        for cut in (0, 3, 40, 100, 1000, n // 10, n // 2, (9 * n) // 10, n - 100, n - 1):
            out[f"{tag}-truncated-{cut}"] = data[:cut]
        # Absurd sizes in the file header (big-endian; small format).
        header = {"fBEGIN": (8, ">i"), "fEND": (12, ">i"), "fSeekFree": (16, ">i"), "fNbytesFree": (20, ">i"),
                  "nfree": (24, ">i"), "fNbytesName": (28, ">i"), "fCompress": (33, ">i"), "fSeekInfo": (37, ">i"),
                  "fNbytesInfo": (41, ">i")}
        for name, (offset, fmt) in header.items():
            for value in BIG:
                b = bytearray(data)
                _put(b, offset, fmt, value)
                out[f"{tag}-header-{name}={value}"] = bytes(b)
        b = bytearray(data)
        _put(b, 4, ">i", 2**31 - 1)  # fVersion: claims the large format
        out[f"{tag}-header-fVersion=max"] = bytes(b)
        b = bytearray(data)
        b[0:4] = b"toor"
        out[f"{tag}-bad-magic"] = bytes(b)
        # Absurd sizes in the tree's key and the first basket's key (TKey: fNbytes i4, fVersion
        # i2, fObjlen i4, fDatime u4, fKeylen i2, fCycle i2, fSeekKey i4, fSeekPdir i4).
        where = _layout(data)
        for key in ("tree_key", "basket_key"):
            base = where[key]
            for name, offset, fmt in (("fNbytes", 0, ">i"), ("fObjlen", 6, ">i"), ("fKeylen", 14, ">h"),
                                      ("fSeekKey", 18, ">i")):
                for value in (2**31 - 1, -1) if fmt == ">i" else (32767, -1):
                    b = bytearray(data)
                    _put(b, base + offset, fmt, value)
                    out[f"{tag}-{key}-{name}={value}"] = bytes(b)
        # Bit flips and overwritten runs, at seeded random places (mostly in the metadata at
        # the start and the end of the file, where a flip changes structure, not a value).
        for i in range(12):
            b = bytearray(data)
            pos = rng.choice([rng.randrange(0, 400), rng.randrange(n - 6000, n), rng.randrange(0, n)])
            b[pos] ^= 1 << rng.randrange(8)
            out[f"{tag}-bitflip-{i}@{pos}"] = bytes(b)
        for i in range(6):
            b = bytearray(data)
            pos = rng.randrange(0, n - 64)
            b[pos:pos + 64] = bytes(rng.randrange(256) for _ in range(64))
            out[f"{tag}-garbage-{i}@{pos}"] = bytes(b)
    return out


def write_corpus(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in corpus().items():
        path = folder / (name.replace("=", "_").replace("@", "_at_") + ".root")
        path.write_bytes(data)
        paths[name] = path
    return paths
