"""Registry benchmark: create-version, get, resolve-alias and resolve-IOV through gRPC.

Starts a real registry server process per database engine (SQLite in a temporary folder, and a
throw-away PostgreSQL 15 cluster, or --postgres-url), calls it through the generated stubs with a
real token, and reports throughput and p50/p99 latency, sequential (one client) and concurrent
(--threads clients), next to a gRPC health check as the floor. MLflow is not compared here (not installed; see services/registry/README.md).

    .venv/bin/python benchmarks/bench_registry.py --out bench-results/registry.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from beamops.common.v1 import auth_pb2, tensor_pb2  # noqa: E402
from beamops.registry.v1 import iov_pb2, model_pb2, registry_service_pb2 as rs, registry_service_pb2_grpc  # noqa: E402
from beamops.runtime.auth import TokenStore  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def registry_process(database_url: str, workdir: Path) -> Iterator[tuple[str, str]]:
    """A registry server in its own process; yields (address, publisher+deployer token)."""
    tokens = TokenStore(workdir / "tokens.json")
    token = tokens.create("bench", auth_pb2.ROLE_DEPLOYER)
    port = _free_port()
    env = dict(os.environ, BEAMOPS_REGISTRY_PORT=str(port), BEAMOPS_REGISTRY_VAR_DIR=str(workdir / "var"),
               BEAMOPS_REGISTRY_TOKENS_FILE=str(workdir / "tokens.json"),
               BEAMOPS_REGISTRY_DATABASE_URL=database_url, BEAMOPS_REGISTRY_LOG_LEVEL="WARNING")
    proc = subprocess.Popen([sys.executable, "-m", "beamops.registry.server"], env=env)
    address = f"127.0.0.1:{port}"
    try:
        channel = grpc.insecure_channel(address)
        grpc.channel_ready_future(channel).result(timeout=60)
        channel.close()
        yield address, token
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def measure(call: Callable[[int], None], n: int, threads: int = 1) -> dict:
    """Run call(i) n times over ``threads`` threads; throughput and latency percentiles."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(n))

    def worker() -> None:
        mine = []
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            start = time.perf_counter()
            call(i)
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    start = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()
    return {
        "n": n, "threads": threads, "ops_per_s": round(n / wall, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 3),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 3),
    }


def bench_engine(address: str, token: str, n: int, threads: int) -> dict:
    channel = grpc.insecure_channel(address)
    stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
    md = (("authorization", f"Bearer {token}"),)
    sig = tensor_pb2.Signature(inputs=[tensor_pb2.TensorSpec(name="x", dtype=tensor_pb2.DATA_TYPE_FLOAT32,
                                                             shape=[-1, 4])])
    results: dict[str, dict] = {}
    for model in ("bench-seq", "bench-par"):
        stub.CreateModel(rs.CreateModelRequest(name=model), metadata=md)
        stub.CreateModelType(rs.CreateModelTypeRequest(model=model, version="1.0.0", signature=sig,
                                                       framework=model_pb2.FRAMEWORK_ONNX), metadata=md)

    def create(model: str) -> Callable[[int], None]:
        def call(i: int) -> None:
            stub.CreateParametersVersion(rs.CreateParametersVersionRequest(
                model=model, model_type_version="1.0.0", metrics={"auc": random.random()},
                idempotency_key=f"{model}-{i}"), metadata=md)
        return call

    n_create = max(50, n // 4)
    results["create_version"] = measure(create("bench-seq"), n_create)
    results["create_version_concurrent"] = measure(create("bench-par"), n_create, threads)

    stub.SetAlias(rs.SetAliasRequest(model="bench-seq", alias="production", version="1.7"), metadata=md)
    stub.CreateIovTag(rs.CreateIovTagRequest(name="bench-tag", model="bench-seq", kind=iov_pb2.IOV_KIND_RUN),
                      metadata=md)
    for k in range(100):
        stub.AppendIov(rs.AppendIovRequest(tag="bench-tag", since=1000 * k + 1, version=f"1.{k % n_create}"),
                       metadata=md)

    def get(i: int) -> None:
        stub.GetParametersVersion(rs.GetParametersVersionRequest(model="bench-seq", version=f"1.{i % n_create}"),
                                  metadata=md)

    def resolve_alias(i: int) -> None:
        stub.ResolveAlias(rs.ResolveAliasRequest(model="bench-seq", alias="production"), metadata=md)

    def resolve_iov(i: int) -> None:
        stub.ResolveIov(rs.ResolveIovRequest(tag="bench-tag", point=random.randint(1, 100_000)), metadata=md)

    health = health_pb2_grpc.HealthStub(channel)

    def health_check(i: int) -> None:  # the floor: one gRPC round trip, no database
        health.Check(health_pb2.HealthCheckRequest(service=""))

    for name, call in (("grpc_health_check_baseline", health_check), ("get_version", get), ("resolve_alias", resolve_alias), ("resolve_iov", resolve_iov)):
        call(0)  # warm up
        results[name] = measure(call, n)
        results[name + "_concurrent"] = measure(call, n, threads)
    channel.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="where to write the JSON results")
    parser.add_argument("-n", type=int, default=2000, help="calls per read operation (creates: n/4)")
    parser.add_argument("--threads", type=int, default=8, help="clients in the concurrent runs")
    parser.add_argument("--postgres-url", default="", help="use this PostgreSQL instead of a throw-away one")
    parser.add_argument("--engines", default="sqlite,postgresql")
    args = parser.parse_args()

    report = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "node": platform.node()},
              "engines": {}}
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        tmp = Path(tmp)
        for engine in args.engines.split(","):
            workdir = tmp / engine
            workdir.mkdir()
            with contextlib.ExitStack() as stack:
                if engine == "sqlite":
                    url = f"sqlite:///{workdir / 'registry.db'}"
                elif args.postgres_url:
                    url = args.postgres_url
                else:
                    from tests.fixtures.postgres import throwaway_postgres

                    server = stack.enter_context(throwaway_postgres())
                    with server.admin_connect() as conn:
                        conn.execute('CREATE DATABASE "bench"')
                    url = server.url("bench")
                address, token = stack.enter_context(registry_process(url, workdir))
                print(f"benchmarking {engine} ...", file=sys.stderr)
                report["engines"][engine] = bench_engine(address, token, args.n, args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    for engine, ops in report["engines"].items():
        for op, r in ops.items():
            print(f"{engine:10s} {op:28s} {r['ops_per_s']:9.1f} ops/s  p50 {r['p50_ms']:7.3f} ms  "
                  f"p99 {r['p99_ms']:7.3f} ms  ({r['threads']} thread(s))")


if __name__ == "__main__":
    main()
