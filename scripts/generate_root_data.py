"""Generate synthetic signal/background ROOT files (flat and jagged branches) with uproot.

    python scripts/generate_root_data.py --out data/synth --events 2000000 --seed 1

Writes <out>/signal.root and <out>/background.root, tree "events", in chunks (memory stays
bounded, so tens of millions of events are fine). Branches:
  flat:   label (int32: 1 signal, 0 background), met (float32, GeV), ht (float32, GeV),
          n_jet (int32), weight (float64)
  jagged: jet_pt, jet_eta (float32[n_jet])
Signal has harder jets and more missing energy, so a classifier has something to learn.
Also importable: ``write_file(path, events, seed, signal, chunk)`` for tests and benchmarks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import awkward as ak
import numpy as np
import uproot


def make_chunk(rng: np.random.Generator, n: int, signal: bool) -> dict:
    n_jet = rng.poisson(4.0 if signal else 2.5, n).astype(np.int32)
    total = int(n_jet.sum())
    scale = 60.0 if signal else 35.0
    pt = (rng.exponential(scale, total) + 20.0).astype(np.float32)
    eta = rng.normal(0.0, 1.4 if signal else 2.0, total).astype(np.float32)
    jet_pt = ak.unflatten(pt, n_jet)
    jet_eta = ak.unflatten(eta, n_jet)
    met = rng.gamma(4.0 if signal else 2.0, 20.0, n).astype(np.float32)
    return {
        "label": np.full(n, 1 if signal else 0, dtype=np.int32),
        "met": met,
        "ht": ak.to_numpy(ak.sum(jet_pt, axis=1)).astype(np.float32),
        "n_jet": n_jet,
        "weight": rng.uniform(0.5, 1.5, n),
        "jet_pt": jet_pt,
        "jet_eta": jet_eta,
    }


def write_file(path: Path, events: int, seed: int, signal: bool, chunk: int = 500_000) -> Path:
    rng = np.random.default_rng([seed, int(signal)])
    path.parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(path) as f:
        written = 0
        while written < events:
            n = min(chunk, events - written)
            data = make_chunk(rng, n, signal)
            if written == 0:
                f.mktree("events", {k: (v.type if isinstance(v, ak.Array) else v.dtype)
                                    for k, v in data.items() if k not in ("jet_pt", "jet_eta")}
                         | {"jet_pt": "var * float32", "jet_eta": "var * float32"},
                         counter_name=lambda name: f"n_{name}",
                         title="synthetic beamops events")
            f["events"].extend(data)
            written += n
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/synth"))
    parser.add_argument("--events", type=int, default=100_000, help="events per file")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=500_000)
    args = parser.parse_args()
    for name, signal in (("signal", True), ("background", False)):
        path = write_file(args.out / f"{name}.root", args.events, args.seed, signal, args.chunk)
        print(f"{path}: {args.events} events, {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
