"""Data service benchmark: streaming through the service vs uproot.iterate directly, hashing vs
sha256sum, re-registration vs first registration, and the service's peak memory.

    .venv/bin/python benchmarks/bench_data.py --events 2000000 --out bench-results/data.json
    .venv/bin/python benchmarks/bench_data.py --large   # also a > 1 GB file: the service's peak RSS

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


def runs_of(n: int, fn) -> tuple[list[float], object]:
    """Wall times of ``n`` runs of ``fn`` (and its last result)."""
    times, result = [], None
    for _ in range(n):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def best_of(n: int, fn):
    times, result = runs_of(n, fn)
    return min(times), result


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_service(data_dir: Path, work: Path, batch_size: int) -> tuple[subprocess.Popen, str, str]:
    """The data service as its own process (so client and server do not share a GIL)."""
    tokens = TokenStore(work / "tokens.json")
    token = tokens.create("bench", auth_pb2.ROLE_ADMIN)
    port = free_port()
    env = {**os.environ, "BEAMOPS_DATA_PORT": str(port), "BEAMOPS_DATA_VAR_DIR": str(work / "var"),
           "BEAMOPS_DATA_TOKENS_FILE": str(work / "tokens.json"),
           "BEAMOPS_DATA_DATA_ROOTS": json.dumps([str(data_dir)]), "BEAMOPS_DATA_LOG_LEVEL": "WARNING",
           "BEAMOPS_DATA_DEFAULT_BATCH_SIZE": str(batch_size)}
    server = subprocess.Popen([sys.executable, "-m", "beamops.data.server"], env=env)
    return server, f"127.0.0.1:{port}", token


def connect(address: str) -> grpc.Channel:
    channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)])
    grpc.channel_ready_future(channel).result(timeout=30)
    return channel


def register(stub, md, path: Path):
    request = pb.RegisterDatasetVersionRequest(dataset="bench", source=dataset_pb2.DatasetSource(
        urls=[path.name], tree_name="events", branches=BRANCHES))
    return request, stub.RegisterDatasetVersion(request, metadata=md)


def large_file_memory(args) -> dict:
    """Stream a generated file larger than 1 GB through a fresh service; its peak RSS (VmHWM)."""
    folder = Path(tempfile.mkdtemp(prefix="beamops-bench-large-", dir=args.large_dir))
    work = Path(tempfile.mkdtemp(prefix="beamops-bench-"))
    path = folder / f"signal_{args.large_events}.root"
    server = None
    try:
        print(f"generating {path} ({args.large_events} events) ...", flush=True)
        write_file(path, args.large_events, seed=2, signal=True)
        size = path.stat().st_size
        server, address, token = start_service(folder, work, args.batch_size)
        channel = connect(address)
        md = (("authorization", f"Bearer {token}"),)
        stub = data_service_pb2_grpc.DataServiceStub(channel)
        _, first = register(stub, md, path)
        rss_after_register = peak_rss_mb(server.pid)
        reader = DatasetReader(channel, metadata=md)
        start = time.perf_counter()
        rows = sum(b.num_rows for b in reader.iter_batches(
            "bench", first.version.version_id, branches=BRANCHES, batch_size=args.batch_size))
        elapsed = time.perf_counter() - start
        assert rows == args.large_events, rows
        channel.close()
        return {"events": rows, "file_bytes": size, "stream_s": elapsed, "events_per_s": rows / elapsed,
                "service_peak_rss_mb_after_register": rss_after_register,
                "service_peak_rss_mb": peak_rss_mb(server.pid), "goal_mb": 500}
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        shutil.rmtree(folder, ignore_errors=True)  # the >1 GB file never stays behind
        shutil.rmtree(work, ignore_errors=True)


def rows(results: dict) -> list[dict]:
    """The run_all.py rows (ratios: beamops / baseline as throughput; times inverted)."""
    out = []
    stream = results.get("stream")
    if stream:
        out.append({"measure": f"stream {results['events']} events, 6 branches (vs uproot.iterate)",
                    "beamops": round(stream["service_events_per_s"]), "baseline": round(stream["uproot_events_per_s"]),
                    "unit": "events/s", "ratio": round(stream["throughput_ratio"], 3), "goal": ">= 0.8x"})
    if "hash" in results:
        h = results["hash"]
        out.append({"measure": "sha256 of the file (vs sha256sum)", "beamops": round(h["MBps"]),
                    "baseline": round(h["sha256sum_MBps"]), "unit": "MB/s",
                    "ratio": round(h["throughput_ratio"], 2), "goal": ">= 0.8x"})
    if "register" in results:
        r = results["register"]
        out.append({"measure": "re-register unchanged file (vs first registration)", "beamops": round(r["again_s"], 4),
                    "baseline": round(r["first_s"], 4), "unit": "s", "ratio": round(r["ratio"], 3), "goal": "< 0.05"})
    large = results.get("large_file")
    if large:
        out.append({"measure": f"service peak RSS streaming a {large['file_bytes'] / 1e9:.2f} GB file",
                    "beamops": round(large["service_peak_rss_mb"]), "baseline": None, "unit": "MB",
                    "ratio": None, "goal": "< 500 MB"})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "beamops-bench-data")
    parser.add_argument("--batch-size", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--large", action="store_true",
                        help="also stream a generated file > 1 GB and record the service's peak RSS "
                             "(generates it in --large-dir, deletes it after; a few minutes)")
    parser.add_argument("--large-events", type=int, default=22_000_000, help="events of the large file (~1.1 GB)")
    parser.add_argument("--large-dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--out", type=Path, default=Path("bench-results/data.json"))
    args = parser.parse_args()

    path = args.data / f"signal_{args.events}.root"
    if not path.exists():
        print(f"generating {path} ...", flush=True)
        write_file(path, args.events, seed=1, signal=True)
    size = path.stat().st_size
    work = Path(tempfile.mkdtemp(prefix="beamops-bench-"))
    server, address, token = start_service(args.data, work, args.batch_size)
    results: dict = {"benchmark": "data", "events": args.events, "file_bytes": size, "batch_size": args.batch_size,
                     "machine": platform.platform(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()}
    try:
        channel = connect(address)
        stub = data_service_pb2_grpc.DataServiceStub(channel)
        md = (("authorization", f"Bearer {token}"),)

        # hashing: sha256sum vs our streamed hash (no cache)
        t_sum, _ = best_of(args.repeat, lambda: subprocess.run(["sha256sum", str(path)], check=True,
                                                               capture_output=True))
        t_ours, _ = best_of(args.repeat, lambda: sha256_local(str(path)))
        results["hash"] = {"sha256sum_s": t_sum, "service_hash_s": t_ours, "throughput_ratio": t_sum / t_ours,
                           "MBps": size / t_ours / 1e6, "sha256sum_MBps": size / t_sum / 1e6}

        # registration: first (hashes, inspects) vs again (cached hash)
        start = time.perf_counter()
        request, first = register(stub, md, path)
        t_first = time.perf_counter() - start
        t_again, again = best_of(args.repeat, lambda: stub.RegisterDatasetVersion(request, metadata=md))
        assert again.version.version_id == first.version.version_id and not again.created
        results["register"] = {"first_s": t_first, "again_s": t_again, "ratio": t_again / t_first}

        # streaming: uproot.iterate directly vs through the service, same branches and step,
        # alternating (direct, service) so both see the same load; every run is kept
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

        service()  # warm up: first read of the file, imports
        direct_runs, service_runs = [], []
        for _ in range(args.repeat):
            t, n_direct = runs_of(1, direct)
            direct_runs += t
            t, n_service = runs_of(1, service)
            service_runs += t
            assert n_direct == n_service == args.events
        ratios = [d / s for d, s in zip(direct_runs, service_runs)]
        t_direct, t_service = min(direct_runs), min(service_runs)
        results["stream"] = {"uproot_iterate_s": direct_runs, "service_s": service_runs,
                             "run_ratios": ratios, "throughput_ratio": t_direct / t_service,
                             "median_run_ratio": sorted(ratios)[len(ratios) // 2],
                             "uproot_events_per_s": args.events / t_direct,
                             "service_events_per_s": args.events / t_service}
        results["service_peak_rss_mb"] = peak_rss_mb(server.pid)
        channel.close()
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    if args.large:
        results["large_file"] = large_file_memory(args)
    results["rows"] = rows(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
