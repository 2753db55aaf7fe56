"""Data service benchmark: streaming through the service vs uproot.iterate directly (a flat file
and a NanoAOD-shaped one with 310 branches), hashing a 200-file dataset vs sha256sum,
re-registering it vs its first registration, and the service's peak memory.

    .venv/bin/python benchmarks/bench_data.py --out bench-results/data.json
    .venv/bin/python benchmarks/bench_data.py --events 200000 --files 20   # a quick run
    .venv/bin/python benchmarks/bench_data.py --large   # also a > 1 GB flat file: peak RSS

The files are generated into --data on the first run, named by their parameters, and reused
afterwards (about 3.1 GB for the 2M-event NanoAOD-shaped file, 2 GB for the 200 files, 95 MB for
the flat file). Each part starts the data service as its own process (so client and server do
not share a GIL, and its peak RSS is that part's) and measures side by side in one run. All
figures are ratios or absolute numbers from this machine, in the JSON written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import nanoaod  # benchmarks/nanoaod.py
import uproot
from beamops.common.v1 import auth_pb2
from beamops.data.hashing import sha256_local
from beamops.data.v1 import data_service_pb2 as pb
from beamops.data.v1 import data_service_pb2_grpc, dataset_pb2
from beamops.data_stream import DatasetReader
from beamops.runtime.auth import TokenStore

from services import free_port, service  # benchmarks/services.py

ROOT = Path(__file__).resolve().parents[1]
FLAT_BRANCHES = ["met", "ht", "n_jet", "weight", "jet_pt", "jet_eta"]


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def best_of(n: int, fn: Callable[[], object]) -> tuple[float, object]:
    runs = [timed(fn) for _ in range(n)]
    return min(t for t, _ in runs), runs[-1][1]


def write_flat_file(path: Path, events: int, seed: int) -> None:
    """The synthetic signal file of scripts/generate_root_data.py (6 flat and jagged branches)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from generate_root_data import write_file

    write_file(path, events, seed=seed, signal=True)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Client:
    stub: data_service_pb2_grpc.DataServiceStub
    reader: DatasetReader
    metadata: tuple
    pid: int  # the service's process

    def register(self, urls: list[str], tree: str, branches: Sequence[str] = ()) -> pb.RegisterDatasetVersionResponse:
        request = pb.RegisterDatasetVersionRequest(dataset="bench", source=dataset_pb2.DatasetSource(
            urls=urls, tree_name=tree, branches=branches))
        return self.stub.RegisterDatasetVersion(request, metadata=self.metadata)

    def stream(self, version_id: str, branches: list[str], batch_size: int) -> int:
        """Rows received, reading every batch as Arrow record batches."""
        return sum(b.num_rows for b in self.reader.iter_batches(
            "bench", version_id, branches=branches, batch_size=batch_size))


@contextlib.contextmanager
def data_service(data_dir: Path, batch_size: int) -> Iterator[Client]:
    """A fresh data service (its own process, empty state) reading ``data_dir``."""
    work = Path(tempfile.mkdtemp(prefix="beamops-bench-"))
    token = TokenStore(work / "tokens.json").create("bench", auth_pb2.ROLE_ADMIN)
    port = free_port()
    try:
        with service("data", port, work, data_roots=json.dumps([str(data_dir)]),
                     default_batch_size=str(batch_size)) as proc:
            channel = grpc.insecure_channel(f"127.0.0.1:{port}",
                                            options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)])
            md = (("authorization", f"Bearer {token}"),)
            try:
                yield Client(data_service_pb2_grpc.DataServiceStub(channel), DatasetReader(channel, metadata=md),
                             md, proc.pid)
            finally:
                channel.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) used so far by process ``pid``, or by this one."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def side_by_side(direct: Callable[[], int], through_service: Callable[[], int], server_pid: int,
                 repeat: int, events: int) -> dict:
    """Alternating (direct, service) runs, so both see the same load, after one warm-up run
    through the service (first read of the file, imports); every run is kept. Also the CPU
    seconds each path used (this process; through the service: this process and the server),
    which a busy machine changes less than the wall times."""
    through_service()
    direct_runs, service_runs, direct_cpu, client_cpu, server_cpu = [], [], [], [], []
    for _ in range(repeat):
        cpu = cpu_s()
        t, n_direct = timed(direct)
        direct_runs.append(t)
        direct_cpu.append(cpu_s() - cpu)
        cpu, server = cpu_s(), cpu_s(server_pid)
        t, n_service = timed(through_service)
        service_runs.append(t)
        client_cpu.append(cpu_s() - cpu)
        server_cpu.append(cpu_s(server_pid) - server)
        assert n_direct == n_service == events, (n_direct, n_service, events)
    ratios = [d / s for d, s in zip(direct_runs, service_runs)]
    t_direct, t_service = min(direct_runs), min(service_runs)
    return {"uproot_iterate_s": direct_runs, "service_s": service_runs, "run_ratios": ratios,
            "throughput_ratio": t_direct / t_service, "median_run_ratio": sorted(ratios)[len(ratios) // 2],
            "uproot_events_per_s": events / t_direct, "service_events_per_s": events / t_service,
            "uproot_cpu_s": direct_cpu, "service_client_cpu_s": client_cpu, "service_server_cpu_s": server_cpu}


def iterate_count(path: Path, tree: str, branches: list[str], step: int) -> int:
    """What a user would otherwise run: uproot.iterate over the same branches and step."""
    return sum(len(chunk) for chunk in uproot.iterate(f"{path}:{tree}", branches, step_size=step, library="ak"))


# -- the parts ----------------------------------------------------------------------------------

def flat_stream(args) -> dict:
    """The 6-branch flat file (2M events by default) through the service vs uproot.iterate."""
    path = args.data / f"signal_{args.events}.root"
    if not path.exists():
        print(f"generating {path} ...", flush=True)
        write_flat_file(path, args.events, seed=1)
    with data_service(args.data, args.batch_size) as client:
        version = client.register([path.name], "events", FLAT_BRANCHES).version.version_id
        result = side_by_side(lambda: iterate_count(path, "events", FLAT_BRANCHES, args.batch_size),
                              lambda: client.stream(version, FLAT_BRANCHES, args.batch_size),
                              client.pid, args.repeat, args.events)
        result["service_peak_rss_mb"] = peak_rss_mb(client.pid)
    return {"events": args.events, "file_bytes": path.stat().st_size, "batch_size": args.batch_size, **result}


def nanoaod_stream(args) -> dict:
    """100 of the 310 branches of a NanoAOD-shaped file through the service vs uproot.iterate."""
    path = args.data / f"nanoaod_{args.events}_v{nanoaod.VERSION}.root"
    if not path.exists():
        print(f"generating {path} (a few minutes for 2M events) ...", flush=True)
        nanoaod.write_nanoaod(path, args.events)
    branches = nanoaod.selection()
    step = args.nano_batch_size
    with data_service(args.data, step) as client:
        start = time.perf_counter()
        version = client.register([path.name], nanoaod.TREE).version  # every branch
        register_s = time.perf_counter() - start
        rss_after_register = peak_rss_mb(client.pid)
        result = side_by_side(lambda: iterate_count(path, nanoaod.TREE, branches, step),
                              lambda: client.stream(version.version_id, branches, step),
                              client.pid, args.repeat, args.events)
        result["service_peak_rss_mb"] = peak_rss_mb(client.pid)
    with uproot.open(path) as file:
        tree = file[nanoaod.TREE]
        jagged = sum(1 for b in branches if tree[b].typename.endswith("[]"))
        file_branches = len(tree.branches)
    return {"events": args.events, "file_bytes": path.stat().st_size, "file_branches": file_branches,
            "branches": len(branches), "jagged_branches": jagged, "batch_size": step,
            "register_s": register_s, "service_peak_rss_mb_after_register": rss_after_register, **result}


def many_files(args) -> dict:
    """A dataset of --files NanoAOD-shaped files (a glob source): sha256 of them all vs sha256sum,
    the first registration (hashes and inspects every file) vs registering it again unchanged."""
    folder = args.data / f"nanoaod_files_{args.files}x{args.file_events}_v{nanoaod.VERSION}"
    if not folder.exists():
        print(f"generating {args.files} files into {folder} ...", flush=True)
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        for i in range(args.files):
            nanoaod.write_nanoaod(partial / f"part_{i:03d}.root", args.file_events, seed=100 + i)
        partial.rename(folder)
    paths = sorted(str(p) for p in folder.glob("*.root"))
    size = sum(os.path.getsize(p) for p in paths)

    def sha256sum() -> None:
        subprocess.run(["sha256sum", *paths], check=True, capture_output=True)

    def ours() -> None:
        for p in paths:
            sha256_local(p)

    sha256sum()  # warm up: the files in the page cache for both
    t_sum, _ = best_of(args.repeat, sha256sum)
    t_ours, _ = best_of(args.repeat, ours)
    with data_service(args.data, args.batch_size) as client:
        source = [f"{folder.name}/*.root"]
        t_first, first = timed(lambda: client.register(source, nanoaod.TREE))
        t_again, again = best_of(args.repeat, lambda: client.register(source, nanoaod.TREE))
        assert again.version.version_id == first.version.version_id and not again.created
        assert len(first.version.files) == args.files
    return {"files": args.files, "bytes": size, "events_per_file": args.file_events,
            "hash": {"sha256sum_s": t_sum, "service_hash_s": t_ours, "throughput_ratio": t_sum / t_ours,
                     "MBps": size / t_ours / 1e6, "sha256sum_MBps": size / t_sum / 1e6},
            "register": {"first_s": t_first, "again_s": t_again, "ratio": t_again / t_first,
                         "first_MBps": size / t_first / 1e6}}


def large_file_memory(args) -> dict:
    """Stream a generated flat file larger than 1 GB through a fresh service; its peak RSS (VmHWM)."""
    folder = Path(tempfile.mkdtemp(prefix="beamops-bench-large-", dir=args.large_dir))
    path = folder / f"signal_{args.large_events}.root"
    try:
        print(f"generating {path} ({args.large_events} events) ...", flush=True)
        write_flat_file(path, args.large_events, seed=2)
        with data_service(folder, args.batch_size) as client:
            version = client.register([path.name], "events", FLAT_BRANCHES).version.version_id
            rss_after_register = peak_rss_mb(client.pid)
            elapsed, rows = timed(lambda: client.stream(version, FLAT_BRANCHES, args.batch_size))
            assert rows == args.large_events, rows
            return {"events": rows, "file_bytes": path.stat().st_size, "stream_s": elapsed,
                    "events_per_s": rows / elapsed, "service_peak_rss_mb_after_register": rss_after_register,
                    "service_peak_rss_mb": peak_rss_mb(client.pid), "goal_mb": 500}
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the >1 GB file never stays behind


def rows(results: dict) -> list[dict]:
    """The run_all.py rows (ratios: beamops / baseline as throughput; times inverted)."""
    out = []
    nano = results.get("nanoaod")
    if nano:
        out.append({"measure": f"stream {nano['events']} NanoAOD-shaped events, {nano['branches']} of "
                               f"{nano['file_branches']} branches ({nano['jagged_branches']} jagged) "
                               "(vs uproot.iterate)",
                    "beamops": round(nano["service_events_per_s"]), "baseline": round(nano["uproot_events_per_s"]),
                    "unit": "events/s", "ratio": round(nano["throughput_ratio"], 3), "goal": ">= 0.9x"})
        out.append({"measure": f"service peak RSS streaming them ({nano['file_bytes'] / 1e9:.2f} GB file)",
                    "beamops": round(nano["service_peak_rss_mb"]), "baseline": None, "unit": "MB",
                    "ratio": None, "goal": "< 500 MB"})
    many = results.get("many_files")
    if many:
        h, r = many["hash"], many["register"]
        out.append({"measure": f"sha256 of {many['files']} files, {many['bytes'] / 1e9:.2f} GB (vs sha256sum)",
                    "beamops": round(h["MBps"]), "baseline": round(h["sha256sum_MBps"]), "unit": "MB/s",
                    "ratio": round(h["throughput_ratio"], 2), "goal": ">= 0.8x"})
        out.append({"measure": f"first registration of the {many['files']} files: hash and inspect (vs sha256sum)",
                    "beamops": round(r["first_MBps"]), "baseline": round(h["sha256sum_MBps"]), "unit": "MB/s",
                    "ratio": round(h["sha256sum_s"] / r["first_s"], 3), "goal": "(informational)"})
        out.append({"measure": f"re-register the unchanged {many['files']}-file dataset (vs first registration)",
                    "beamops": round(r["again_s"], 4), "baseline": round(r["first_s"], 4), "unit": "s",
                    "ratio": round(r["ratio"], 3), "goal": "< 0.05"})
    flat = results.get("flat")
    if flat:
        out.append({"measure": f"stream {flat['events']} events, 6 branches (vs uproot.iterate)",
                    "beamops": round(flat["service_events_per_s"]), "baseline": round(flat["uproot_events_per_s"]),
                    "unit": "events/s", "ratio": round(flat["throughput_ratio"], 3), "goal": ">= 0.8x"})
    large = results.get("large_file")
    if large:
        out.append({"measure": f"service peak RSS streaming a {large['file_bytes'] / 1e9:.2f} GB flat file",
                    "beamops": round(large["service_peak_rss_mb"]), "baseline": None, "unit": "MB",
                    "ratio": None, "goal": "< 500 MB"})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2_000_000,
                        help="events of the flat file and of the NanoAOD-shaped file (fewer: a quick run)")
    parser.add_argument("--files", type=int, default=200, help="files of the registered dataset")
    parser.add_argument("--file-events", type=int, default=6_500, help="events per file (~10 MB)")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "beamops-bench-data",
                        help="where the generated files are kept between runs")
    parser.add_argument("--batch-size", type=int, default=200_000, help="entries per batch, flat file")
    parser.add_argument("--nano-batch-size", type=int, default=100_000,
                        help="entries per batch, NanoAOD-shaped file (the service's default)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["nanoaod", "files", "flat"], help="run one part")
    parser.add_argument("--large", action="store_true",
                        help="also stream a generated flat file > 1 GB and record the service's peak RSS "
                             "(generates it in --large-dir, deletes it after; a few minutes)")
    parser.add_argument("--large-events", type=int, default=22_000_000, help="events of the large file (~1.1 GB)")
    parser.add_argument("--large-dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--out", type=Path, default=Path("bench-results/data.json"))
    args = parser.parse_args()

    results: dict = {"benchmark": "data", "machine": platform.platform(), "cpus": os.cpu_count(),
                     "load_avg_start": os.getloadavg()}
    started = time.perf_counter()
    for key, part, run in (("nanoaod", "nanoaod", nanoaod_stream), ("many_files", "files", many_files),
                           ("flat", "flat", flat_stream)):
        if args.only in (None, part):
            print(f"-- {part}", flush=True)
            results[key] = run(args)
    if args.large:
        results["large_file"] = large_file_memory(args)
    results["wall_s"] = time.perf_counter() - started
    results["load_avg_end"] = os.getloadavg()
    results["rows"] = rows(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
