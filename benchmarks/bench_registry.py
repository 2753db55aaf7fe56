"""Registry benchmark: create-version, get, resolve-alias and resolve-IOV through gRPC, next to
MLflow's model registry on the same database engine, in the same run.

Starts a real registry server process per database engine (SQLite in a temporary folder, and a
throw-away PostgreSQL 15 cluster, or --postgres-url), calls it through the generated stubs with a
real token, and reports throughput and p50/p99 latency, sequential (one client) and concurrent
(--threads clients), next to a gRPC health check as the floor.

MLflow runs from its own virtual environment, ``.venv-bench-mlflow`` (created with pip on first
use; mlflow is never a project dependency; --no-mlflow skips it): benchmarks/mlflow_registry_worker.py
drives MlflowClient (create_model_version, get_model_version_by_alias) against a ``sqlite:///``
file in the same folder, or a database of the same PostgreSQL cluster, twice: in process (no
server: the most favourable case for MLflow, since beamops is measured through gRPC), and
through MLflow's own tracking server over HTTP on a fresh store (how a lab shares one MLflow
registry: the like-for-like comparison with a beamops registry server).

The JSON has the raw figures per engine and ``rows`` in the run_all.py format. Throughput rows:
ratio = beamops / baseline. Latency rows: ratio = baseline p50 / beamops p50 (above 1: beamops
is faster); the IOV rows' baseline is the gRPC health check (no MLflow equivalent).

    .venv/bin/python benchmarks/bench_registry.py --out bench-results/registry.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from timing import measure  # benchmarks/timing.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from beamops.common.v1 import auth_pb2, tensor_pb2  # noqa: E402
from beamops.registry.v1 import iov_pb2, model_pb2, registry_service_pb2 as rs, registry_service_pb2_grpc  # noqa: E402
from beamops.runtime.auth import TokenStore  # noqa: E402
from services import free_port, service  # noqa: E402  (benchmarks/services.py)

MLFLOW_VENV = ROOT / ".venv-bench-mlflow"
MLFLOW_REQUIREMENTS = ["mlflow>=2.16,<4", "psycopg[binary]>=3.1,<4"]


def mlflow_python(venv: Path = MLFLOW_VENV) -> Path:
    """The Python of the MLflow benchmark venv, created (pip install mlflow) if missing."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import mlflow, psycopg"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"creating {venv} with {' '.join(MLFLOW_REQUIREMENTS)} (once) ...", file=sys.stderr)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *MLFLOW_REQUIREMENTS], check=True)
    return python


def bench_mlflow(python: Path, uri: str, n: int, creates: int, threads: int, server: bool = False) -> dict:
    done = subprocess.run([str(python), str(Path(__file__).with_name("mlflow_registry_worker.py")),
                           "--uri", uri, "-n", str(n), "--creates", str(creates), "--threads", str(threads),
                           *(["--server"] if server else [])],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def registry_process(database_url: str, workdir: Path) -> Iterator[tuple[str, str]]:
    """A registry server in its own process; yields (address, publisher+deployer token)."""
    token = TokenStore(workdir / "tokens.json").create("bench", auth_pb2.ROLE_DEPLOYER)
    port = free_port()
    with service("registry", port, workdir, database_url=database_url):
        yield f"127.0.0.1:{port}", token


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

    for name, call in (("grpc_health_check_baseline", health_check), ("get_version", get),
                       ("resolve_alias", resolve_alias), ("resolve_iov", resolve_iov)):
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
    parser.add_argument("--no-mlflow", action="store_true", help="skip the MLflow comparison")
    args = parser.parse_args()
    python = None if args.no_mlflow else mlflow_python()

    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "node": platform.node()}
    report = {"benchmark": "registry", "machine": machine,
              "engines": {}, "mlflow": {}, "mlflow_server": {}}
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        tmp = Path(tmp)
        for engine in args.engines.split(","):
            workdir = tmp / engine
            workdir.mkdir()
            with contextlib.ExitStack() as stack:
                mlflow_url = mlflow_server_url = ""
                if engine == "sqlite":
                    url = f"sqlite:///{workdir / 'registry.db'}"
                    mlflow_url = f"sqlite:///{workdir / 'mlflow.db'}"
                    mlflow_server_url = f"sqlite:///{workdir / 'mlflow-server.db'}"
                elif args.postgres_url:
                    url = args.postgres_url
                else:
                    from tests.fixtures.postgres import throwaway_postgres

                    server = stack.enter_context(throwaway_postgres())
                    with server.admin_connect() as conn:
                        conn.execute('CREATE DATABASE "bench"')
                    url = server.url("bench")
                    with server.admin_connect() as conn:
                        conn.execute('CREATE DATABASE "mlflow"')
                        conn.execute('CREATE DATABASE "mlflow_server"')
                    mlflow_url, mlflow_server_url = server.url("mlflow"), server.url("mlflow_server")
                with registry_process(url, workdir) as (address, token):
                    print(f"benchmarking beamops on {engine} ...", file=sys.stderr)
                    report["engines"][engine] = bench_engine(address, token, args.n, args.threads)
                if python is not None and mlflow_url:
                    print(f"benchmarking MLflow on {engine} ...", file=sys.stderr)
                    report["mlflow"][engine] = bench_mlflow(python, mlflow_url, args.n, max(50, args.n // 4),
                                                            args.threads)
                    print(f"benchmarking MLflow's tracking server on {engine} ...", file=sys.stderr)
                    report["mlflow_server"][engine] = bench_mlflow(python, mlflow_server_url, args.n,
                                                                   max(50, args.n // 4), args.threads, server=True)
    report["rows"] = rows(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    names = {"engines": "beamops", "mlflow": "mlflow", "mlflow_server": "mlflow-http"}
    for system in ("engines", "mlflow", "mlflow_server"):
        for engine, ops in report[system].items():
            for op, r in ops.items():
                if isinstance(r, dict):
                    print(f"{names[system]:11s} {engine:10s} {op:38s} "
                          f"{r['ops_per_s']:9.1f} ops/s  p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms  "
                          f"({r['threads']} thread(s){', errors %d' % r['errors'] if r.get('errors') else ''})")
    for row in report["rows"]:
        print(f"{row['measure']:52s} beamops {row['beamops']:>9} baseline {row['baseline']!s:>9} "
              f"{row['unit']:6s} ratio {row['ratio']!s:>6}  goal {row['goal']}")


def rows(report: dict) -> list[dict]:
    """The run_all.py rows: beamops next to MLflow in process and MLflow's tracking server (or
    the gRPC floor), per engine."""
    out = []
    for engine, ours in report["engines"].items():
        theirs = report["mlflow"].get(engine, {})
        for system, via in (("mlflow", "in process"), ("mlflow_server", "tracking server")):
            mlflow = report.get(system, {}).get(engine, {})
            for op, label in (("create_version", "1 client"), ("create_version_concurrent", "8 clients")):
                base = mlflow.get(op, {}).get("ops_per_s")
                out.append({"measure": f"create version, {engine}, {label} (vs MLflow {via})",
                            "beamops": ours[op]["ops_per_s"], "baseline": base, "unit": "ops/s",
                            "ratio": round(ours[op]["ops_per_s"] / base, 2) if base else None,
                            "goal": ">= 3x MLflow"})
        served = report.get("mlflow_server", {}).get(engine, {}).get("resolve_alias")
        for op, baseline, name in (("resolve_alias", theirs.get("resolve_alias"), "MLflow get_model_version_by_alias"),
                                   ("resolve_alias", served, "MLflow tracking server"),
                                   ("resolve_iov", ours["grpc_health_check_baseline"], "gRPC health check"),
                                   ("get_version", ours["grpc_health_check_baseline"], "gRPC health check")):
            base = baseline.get("p50_ms") if baseline else None
            out.append({"measure": f"{op.replace('_', ' ')} p50, {engine} (vs {name})", "beamops": ours[op]["p50_ms"],
                        "baseline": base, "unit": "ms",
                        "ratio": round(base / ours[op]["p50_ms"], 2) if base else None,
                        "goal": "< 1 ms" if op != "get_version" else ""})
    return out


if __name__ == "__main__":
    main()
