"""Data service benchmark: streaming through the service vs uproot.iterate directly, hashing vs
sha256sum, re-registration vs first registration, and the service's peak memory.

    .venv/bin/python benchmarks/bench_data.py --events 2000000 --out bench-results/data.json

Generates a synthetic file (scripts/generate_root_data.py) unless it exists, starts the data
service as its own process (so client and server do not share a GIL), and measures side by side
in one run. All figures are ratios or absolute numbers from this machine, in the JSON written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import uproot

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from generate_root_data import write_file  # noqa: E402

from beamops.common.v1 import auth_pb2  # noqa: E402
from beamops.data.hashing import sha256_local  # noqa: E402
from beamops.data.v1 import data_service_pb2 as pb  # noqa: E402
from beamops.data.v1 import data_service_pb2_grpc, dataset_pb2  # noqa: E402
from beamops.data_stream import DatasetReader  # noqa: E402
from beamops.runtime.auth import TokenStore  # noqa: E402

BRANCHES = ["met", "ht", "n_jet", "weight", "jet_pt", "jet_eta"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def best_of(n: int, fn):
    times, result = [], None
    for _ in range(n):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "beamops-bench-data")
    parser.add_argument("--batch-size", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-results/data.json"))
    args = parser.parse_args()

    path = args.data / f"signal_{args.events}.root"
    if not path.exists():
        print(f"generating {path} ...", flush=True)
        write_file(path, args.events, seed=1, signal=True)
    size = path.stat().st_size
    work = Path(tempfile.mkdtemp(prefix="beamops-bench-"))
    tokens = TokenStore(work / "tokens.json")
    token = tokens.create("bench", auth_pb2.ROLE_ADMIN)
    port = free_port()
    env = {**os.environ, "BEAMOPS_DATA_PORT": str(port), "BEAMOPS_DATA_VAR_DIR": str(work / "var"),
           "BEAMOPS_DATA_TOKENS_FILE": str(work / "tokens.json"),
           "BEAMOPS_DATA_DATA_ROOTS": json.dumps([str(args.data)]), "BEAMOPS_DATA_LOG_LEVEL": "WARNING",
           "BEAMOPS_DATA_DEFAULT_BATCH_SIZE": str(args.batch_size)}
    server = subprocess.Popen([sys.executable, "-m", "beamops.data.server"], env=env)
    results: dict = {"events": args.events, "file_bytes": size, "batch_size": args.batch_size,
                     "machine": platform.platform(), "cpus": os.cpu_count()}
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[
            ("grpc.max_receive_message_length", 256 * 1024 * 1024)])
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = data_service_pb2_grpc.DataServiceStub(channel)
        md = (("authorization", f"Bearer {token}"),)

        # hashing: sha256sum vs our streamed hash (no cache)
        t_sum, _ = best_of(args.repeat, lambda: subprocess.run(["sha256sum", str(path)], check=True,
                                                               capture_output=True))
        t_ours, _ = best_of(args.repeat, lambda: sha256_local(str(path)))
        results["hash"] = {"sha256sum_s": t_sum, "service_hash_s": t_ours,
                           "throughput_ratio": t_sum / t_ours, "MBps": size / t_ours / 1e6}

        # registration: first (hashes, inspects) vs again (cached hash)
        request = pb.RegisterDatasetVersionRequest(dataset="bench", source=dataset_pb2.DatasetSource(
            urls=[path.name], tree_name="events", branches=BRANCHES))
        start = time.perf_counter()
        first = stub.RegisterDatasetVersion(request, metadata=md)
        t_first = time.perf_counter() - start
        t_again, again = best_of(args.repeat, lambda: stub.RegisterDatasetVersion(request, metadata=md))
        assert again.version.version_id == first.version.version_id and not again.created
        results["register"] = {"first_s": t_first, "again_s": t_again, "ratio": t_again / t_first}

        # streaming: uproot.iterate directly vs through the service, same branches and step
        def direct() -> int:
            n = 0
            for chunk in uproot.iterate(f"{path}:events", BRANCHES, step_size=args.batch_size,
                                        library="ak"):
                n += len(chunk)
            return n

        reader = DatasetReader(channel, metadata=md)

        def service() -> int:
            return sum(b.num_rows for b in reader.iter_batches(
                "bench", first.version.version_id, branches=BRANCHES, batch_size=args.batch_size))

        t_direct, n_direct = best_of(args.repeat, direct)
        t_service, n_service = best_of(args.repeat, service)
        assert n_direct == n_service == args.events
        results["stream"] = {"uproot_iterate_s": t_direct, "service_s": t_service,
                             "throughput_ratio": t_direct / t_service,
                             "service_events_per_s": args.events / t_service}
        results["service_peak_rss_mb"] = peak_rss_mb(server.pid)
        channel.close()
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
