"""Idle streams: what thousands of open server streams cost a service, next to its health check.

Starts the registry as its own process (SQLite, default settings), opens ``--streams``
``WatchAliasEvents`` streams with a reader token over ``--connections`` channels at once from
this process, and measures the registry's RSS and peak RSS (/proc) idle, while the streams are
open and after they are closed, and the health check's latency from a second process (so this
process's own event loop does not count) idle and while they are open. The token is then revoked:
the streams the server holds end UNAUTHENTICATED (their count says how many it held).

    .venv/bin/python benchmarks/bench_idle_streams.py --out bench-results/bench_idle_streams.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
from collections import Counter
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from beamops.common.v1 import auth_pb2  # noqa: E402
from beamops.registry.v1 import registry_service_pb2 as rpb, registry_service_pb2_grpc  # noqa: E402
from beamops.runtime.auth import TokenStore  # noqa: E402
from tests.fixtures.registry_process import RegistryProcess  # noqa: E402
from tests.fixtures.services import free_port  # noqa: E402
from health_probe import probe  # noqa: E402  (benchmarks/health_probe.py)



def _memory_mb(pid: int) -> dict[str, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            values[line.split(":")[0]] = int(line.split()[1]) / 1024
    return values


def _health_p50_ms(address: str) -> float:
    return probe(address, 2)["p50_ms"]


async def _measure(proc: RegistryProcess, store: TokenStore, token: str, streams: int, connections: int,
                   settle_s: float) -> dict:
    metadata = (("authorization", f"Bearer {token}"),)
    channels = [grpc.aio.insecure_channel(proc.address) for _ in range(connections)]
    stubs = [registry_service_pb2_grpc.RegistryServiceStub(c) for c in channels]
    for stub in stubs:
        await stub.ListModels(rpb.ListModelsRequest(), metadata=metadata)
    idle, idle_health = _memory_mb(proc.process.pid), await asyncio.to_thread(_health_p50_ms, proc.address)
    calls = [stubs[i % connections].WatchAliasEvents(rpb.WatchAliasEventsRequest(), metadata=metadata)
             for i in range(streams)]
    reads = [asyncio.ensure_future(c.read()) for c in calls]
    await asyncio.sleep(settle_s)
    ended_early = sum(f.done() for f in reads)
    open_memory = _memory_mb(proc.process.pid)
    open_health = await asyncio.to_thread(_health_p50_ms, proc.address)
    store.revoke("bench-reader")
    await asyncio.wait(reads, timeout=60)
    ended = Counter((f.exception().code().name if f.exception() else "message") if f.done() else "open"
                    for f in reads)
    for call in calls:
        call.cancel()
    await asyncio.gather(*reads, return_exceptions=True)
    for channel in channels:
        await channel.close()
    await asyncio.sleep(5)
    return {"idle": idle, "open": open_memory, "after": _memory_mb(proc.process.pid), "ended_early": ended_early,
            "ended_at_revocation": dict(ended), "health_p50_ms": {"idle": idle_health, "open": open_health}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--settle-s", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        tmp = Path(tmp)
        store = TokenStore(tmp / "tokens.json")
        token = store.create("bench-reader", auth_pb2.ROLE_READER)
        proc = RegistryProcess(port=free_port(), var_dir=tmp / "var", tokens_path=tmp / "tokens.json",
                               database_url=f"sqlite:///{tmp / 'registry.db'}", log_path=tmp / "registry.log")
        proc.start()
        try:
            result = asyncio.run(_measure(proc, store, token, args.streams, args.connections, args.settle_s))
        finally:
            proc.close()
    grown = result["open"]["VmHWM"] - result["idle"]["VmRSS"]
    rows = [
        {"measure": f"registry peak RSS above idle, {args.streams} idle streams", "beamops": round(grown, 1),
         "baseline": None, "unit": "MB", "ratio": None, "goal": "< 100"},
        {"measure": f"health check p50 with {args.streams} idle streams open",
         "beamops": round(result["health_p50_ms"]["open"], 2), "baseline": round(result["health_p50_ms"]["idle"], 2),
         "unit": "ms", "ratio": round(result["health_p50_ms"]["open"] / result["health_p50_ms"]["idle"], 2),
         "goal": "< 50 ms"},
    ]
    report = {"benchmark": "idle_streams", "machine": f"{platform.node()} {platform.processor()}", "rows": rows,
              "details": result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
