"""A synthetic file shaped like CMS NanoAOD, for the data benchmark: tree ``Events`` with 30 flat
event-level branches and 270 jagged ones in 10 collections (``Jet_*``, ``Muon_*``, ...), each with
its counter (``nJet``, ...), so 310 branches in all.

Floats are float32 with their mantissa rounded to 10 bits, as NanoAOD stores most of its floats
(it is what makes its files compress); ids and flags are small int32 and bool values. Written in
chunks with uproot (memory stays bounded), ZSTD level 1. About 1 KB per event on disk.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import uproot

TREE = "Events"
VERSION = 1  # of the generator: part of the cached files' names, raise it when the content changes

# collection: (mean multiplicity, float branches, int32 branches, bool branches)
COLLECTIONS = {
    "Jet": (4.0, 24, 10, 6),
    "Muon": (2.0, 25, 10, 10),
    "Electron": (2.0, 25, 10, 10),
    "Photon": (2.0, 16, 8, 6),
    "Tau": (2.0, 16, 8, 6),
    "FatJet": (2.0, 18, 8, 4),
    "GenPart": (4.0, 5, 4, 1),
    "IsoTrack": (2.0, 8, 4, 3),
    "SV": (3.0, 10, 4, 1),
    "TrigObj": (4.0, 4, 5, 1),
}
KINEMATICS = ("pt", "eta", "phi", "mass")
EVENT_FLOATS = ("PV_x", "PV_y", "PV_z", "MET_pt", "MET_phi", "MET_sumEt", "PuppiMET_pt",
                "PuppiMET_phi", "genWeight", "Pileup_nTrueInt", "fixedGridRhoFastjetAll")
EVENT_INTS = ("PV_npvs", "PV_npvsGood", "Pileup_nPU")
EVENT_FLAGS = tuple(f"HLT_path{i}" for i in range(10)) + tuple(f"Flag_filter{i}" for i in range(3))
# plus run, luminosityBlock (uint32) and event (uint64): 30 event-level branches


def branch_names(collection: str) -> list[str]:
    """The jagged branches of ``collection``: kinematics first, then the other floats, ints, flags."""
    _, floats, ints, flags = COLLECTIONS[collection]
    names = [f"{collection}_{k}" for k in KINEMATICS[:floats]]
    names += [f"{collection}_var{i:02d}" for i in range(len(names), floats)]
    names += [f"{collection}_idx{i}" for i in range(ints)]
    names += [f"{collection}_flag{i}" for i in range(flags)]
    return names


def selection() -> list[str]:
    """A realistic analysis selection: 100 branches, 88 of them jagged (jets, muons, electrons)."""
    return (["run", "luminosityBlock", "event", "MET_pt", "MET_phi", "PV_npvs", "genWeight",
             "fixedGridRhoFastjetAll", "HLT_path0", "nJet", "nMuon", "nElectron"]
            + branch_names("Jet")[:36] + branch_names("Muon")[:26] + branch_names("Electron")[:26])


def _rounded(values: np.ndarray, mantissa_bits: int = 10) -> np.ndarray:
    """float32 with ``mantissa_bits`` of its 23 mantissa bits kept, as NanoAOD stores floats
    (10 bits for most, 6-8 for fractions and scores)."""
    drop = 23 - mantissa_bits
    bits = values.astype(np.float32).view(np.uint32)
    return ((bits + np.uint32(1 << (drop - 1))) & np.uint32((0xFFFFFFFF >> drop) << drop)).view(np.float32)


def make_chunk(rng: np.random.Generator, n: int, first_event: int) -> dict:
    data: dict = {
        "run": np.full(n, 362_000, dtype=np.uint32),
        "luminosityBlock": (first_event + np.arange(n, dtype=np.uint32)) // 1000 + 1,
        "event": first_event + np.arange(n, dtype=np.uint64),
    }
    for name in EVENT_FLOATS:
        data[name] = _rounded(rng.gamma(3.0, 20.0, n))
    for name in EVENT_INTS:
        data[name] = rng.poisson(40, n).astype(np.int32)
    for name in EVENT_FLAGS:
        data[name] = rng.random(n) < 0.3
    for collection, (mean, floats, ints, flags) in COLLECTIONS.items():
        counts = rng.poisson(mean, n).astype(np.int32)
        total = int(counts.sum())
        names = iter(branch_names(collection))
        for i in range(floats):
            if i == 0:
                values = rng.exponential(40.0, total) + 15.0  # pt
            elif i == 1:
                values = rng.normal(0.0, 1.5, total)  # eta
            elif i == 2:
                values = rng.uniform(-np.pi, np.pi, total)  # phi
            elif i % 3 == 0:
                values = rng.exponential(5.0, total)  # masses, impact parameters
            else:  # scores, fractions, isolations: 6 or 8 bits, half of them 0
                values = np.where(rng.random(total) < 0.5, 0.0, rng.random(total))
            bits = 10 if i < 4 or i % 3 == 0 else 8 if i % 3 == 1 else 6
            data[next(names)] = ak.unflatten(_rounded(values, bits), counts)
        for _ in range(ints):
            data[next(names)] = ak.unflatten(rng.integers(-1, 12, total, dtype=np.int32), counts)
        for _ in range(flags):
            data[next(names)] = ak.unflatten(rng.random(total) < 0.5, counts)
    return data


def write_nanoaod(path: Path, events: int, seed: int = 7, chunk: int = 100_000) -> Path:
    """Write ``events`` events to ``path`` (through a temporary name, so an interrupted run
    leaves no half file behind)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with uproot.recreate(partial, compression=uproot.ZSTD(1)) as f:
        written = 0
        while written < events:
            n = min(chunk, events - written)
            data = make_chunk(rng, n, written)
            if written == 0:
                types = {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()}
                f.mktree(TREE, types, counter_name=lambda name: f"n{name.split('_')[0]}",
                         title="synthetic NanoAOD-shaped events")
            f[TREE].extend(data)
            written += n
    partial.rename(path)
    return path
