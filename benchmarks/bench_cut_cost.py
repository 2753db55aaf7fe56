"""The costliest cut the data service accepts, and the health check while it runs.

A cut at the limits (``cuts.py``: close to 2,000 characters, 500 parts and 64 levels; square
roots, powers and a reduction over a jagged branch in every term) is read over the 2M-event flat
file of ``bench_data.py`` by two clients at once, through the data service in its own process;
meanwhile the health check is timed from a third process, and again with nothing running. Also
the read with that cut against the same read without a cut.

    .venv/bin/python benchmarks/bench_cut_cost.py --out bench-results/bench_cut_cost.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import grpc  # noqa: E402

import bench_data  # noqa: E402  (benchmarks/bench_data.py)
from beamops.common.v1 import auth_pb2  # noqa: E402
from beamops.data import cuts  # noqa: E402
from beamops.data_stream import DatasetReader  # noqa: E402
from beamops.data.v1 import data_service_pb2 as pb, data_service_pb2_grpc, dataset_pb2  # noqa: E402
from beamops.runtime.auth import TokenStore  # noqa: E402
from health_probe import probe  # noqa: E402  (benchmarks/health_probe.py)
from services import free_port, service  # noqa: E402  (benchmarks/services.py)



def worst_cut() -> str:
    """Terms of a reduction over a jagged branch, or-ed together, as many as the limits allow."""
    terms, k = [], 0
    while True:
        term = f"any(sqrt(jet_pt**2 + jet_eta**2) * {k + 1} > met)"
        candidate = " | ".join(terms + [term]) + " | (ht > 1e9)"
        try:
            cuts.parse_cut(candidate, bench_data.FLAT_BRANCHES)
        except Exception:  # noqa: BLE001 - one term too many
            break
        terms.append(term)
        k += 1
    return " | ".join(terms) + " | (ht > 1e9)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "beamops-bench-data")
    parser.add_argument("--batch-size", type=int, default=200_000)
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    path = args.data / f"signal_{args.events}.root"
    if not path.exists():
        bench_data.write_flat_file(path, args.events, seed=1)
    cut = worst_cut()
    work = Path(tempfile.mkdtemp(prefix="beamops-bench-cut-"))
    token = TokenStore(work / "tokens.json").create("bench", auth_pb2.ROLE_ADMIN)
    md = (("authorization", f"Bearer {token}"),)
    port = free_port()
    address = f"127.0.0.1:{port}"
    with service("data", port, work, data_roots=json.dumps([str(args.data)])), \
            grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 256 * 2**20)]) as channel:
        stub = data_service_pb2_grpc.DataServiceStub(channel)
        version = stub.RegisterDatasetVersion(pb.RegisterDatasetVersionRequest(
            dataset="bench", source=dataset_pb2.DatasetSource(urls=[path.name], tree_name="events",
                                                             branches=bench_data.FLAT_BRANCHES)),
            metadata=md).version.version_id
        reader = DatasetReader(channel, metadata=md)

        def read(with_cut: bool) -> tuple[float, int]:
            t = time.perf_counter()
            rows = sum(b.num_rows for b in reader.iter_batches(
                "bench", version, branches=["met"], batch_size=args.batch_size, cut=cut if with_cut else ""))
            return time.perf_counter() - t, rows

        read(True)  # warm-up: the file's baskets in the page cache
        plain_s, all_rows = read(False)
        cut_s, kept = read(True)
        idle = probe(address, 3)
        runs: list[float] = []
        stop = threading.Event()

        def reading() -> None:
            while not stop.is_set():
                runs.append(read(True)[0])

        readers = [threading.Thread(target=reading) for _ in range(2)]
        for thread in readers:
            thread.start()
        time.sleep(1)
        during = probe(address, 10)
        stop.set()
        for thread in readers:
            thread.join()
    rows = [
        {"measure": "health check p50 while 2 clients read with the costliest cut",
         "beamops": round(during["p50_ms"], 2),
         "baseline": round(idle["p50_ms"], 2), "unit": "ms", "ratio": round(during["p50_ms"] / idle["p50_ms"], 2),
         "goal": "< 50 ms"},
        {"measure": f"read of {args.events} events with the costliest cut vs without", "beamops": round(cut_s, 2),
         "baseline": round(plain_s, 2), "unit": "s", "ratio": round(plain_s / cut_s, 2), "goal": None},
    ]
    report = {"benchmark": "cut_cost", "machine": f"{platform.node()} {platform.processor()}", "rows": rows,
              "details": {"cut_characters": len(cut), "events": all_rows, "kept": kept, "health_idle": idle,
                          "health_during": during, "reads_during": len(runs), "read_s_during": runs}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
