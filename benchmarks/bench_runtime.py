"""What the shared runtime costs per call: a beamops server (metrics, errors and auth
interceptors, health, reflection) against a bare grpc.aio server with the same servicer.

Same process layout for both: the server in a child process, the client here, sequential unary
calls and 16 concurrent callers. Writes JSON (see run_all.py) to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from beamops.registry.v1 import model_pb2, registry_service_pb2 as pb, registry_service_pb2_grpc  # noqa: E402


class EchoRegistry(registry_service_pb2_grpc.RegistryServiceServicer):
    async def GetModel(self, request, context):
        return pb.GetModelResponse(model=model_pb2.Model(name=request.name))


def serve(kind: str, port_queue, tokens_path: str) -> None:
    async def main() -> None:
        if kind == "bare":
            server = grpc.aio.server()
            registry_service_pb2_grpc.add_RegistryServiceServicer_to_server(EchoRegistry(), server)
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
        else:
            from beamops.runtime.server import Service, create_grpc_server
            from beamops.runtime.settings import ServiceSettings

            class BenchSettings(ServiceSettings):
                service_name = "bench"

            running = await create_grpc_server(
                BenchSettings.load(["--port", "0", "--tokens-file", tokens_path]),
                [Service(pb.DESCRIPTOR.services_by_name["RegistryService"], EchoRegistry(),
                         registry_service_pb2_grpc.add_RegistryServiceServicer_to_server)],
            )
            server, port = running.server, running.port
        port_queue.put(port)
        await server.wait_for_termination()

    asyncio.run(main())


async def measure(port: int, metadata, calls: int, concurrency: int) -> dict:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        request = pb.GetModelRequest(name="jet-tagger")
        for _ in range(200):
            await stub.GetModel(request, metadata=metadata)
        latencies: list[float] = []

        async def worker(n: int) -> None:
            for _ in range(n):
                start = time.perf_counter()
                await stub.GetModel(request, metadata=metadata)
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
        "calls_per_s": len(latencies) / elapsed,
    }


def run(kind: str, tokens_path: str, token: str, calls: int, concurrency: int) -> dict:
    ports = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(kind, ports, tokens_path), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=30)
        metadata = (("authorization", f"Bearer {token}"),) if kind == "beamops" else None
        return asyncio.run(measure(port, metadata, calls, concurrency))
    finally:
        server.terminate()
        server.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--calls", type=int, default=4000)
    args = parser.parse_args()

    from beamops.common.v1 import auth_pb2
    from beamops.runtime.auth import TokenStore

    with tempfile.TemporaryDirectory() as tmp:
        tokens_path = os.path.join(tmp, "tokens.json")
        token = TokenStore(Path(tokens_path)).create("bench", auth_pb2.ROLE_READER)
        rows = []
        for concurrency in (1, 16):
            # Interleave the two to spread machine noise over both.
            bare1 = run("bare", tokens_path, token, args.calls, concurrency)
            ours = run("beamops", tokens_path, token, args.calls, concurrency)
            bare2 = run("bare", tokens_path, token, args.calls, concurrency)
            bare = {k: (bare1[k] + bare2[k]) / 2 for k in bare1}
            rows.append({"measure": f"unary p50, concurrency {concurrency}", "beamops": ours["p50_ms"],
                         "baseline": bare["p50_ms"], "unit": "ms", "ratio": ours["p50_ms"] / bare["p50_ms"],
                         "goal": "added latency small against a real RPC"})
            rows.append({"measure": f"unary throughput, concurrency {concurrency}",
                         "beamops": ours["calls_per_s"], "baseline": bare["calls_per_s"], "unit": "calls/s",
                         "ratio": ours["calls_per_s"] / bare["calls_per_s"], "goal": ""})
    report = {
        "benchmark": "runtime (interceptors vs bare grpc.aio)",
        "machine": f"{platform.node()} {os.cpu_count()} cpus",
        "rows": rows,
    }
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
