"""Load benchmark: each service under 1, 8 and 32 concurrent clients, next to its health check.

Starts the four services as their own processes (registry on SQLite, data, training with local
workers, inference with its bundled Triton), prepares what the calls need (a model with an
alias and an ONNX artifact, a dataset version, a finished training job, a deployment), then,
from this process (the clients; one gRPC channel each, grpc.aio), drives each service for
``--seconds`` per concurrency level with:

- registry: 80 % ResolveAlias, 20 % CreateParametersVersion (a new version each, unique
  idempotency key, the same primary artifact);
- data: 50 % GetDatasetVersion, 50 % ReadDatasetVersion of 100 entries x 2 branches (Arrow stream,
  read to the end);
- inference: Predict of one row on a 6 -> 16 -> 3 MLP;
- training: 50 % GetJob, 50 % ListJobs (page of 10).

Every measure is taken side by side with the gRPC health check of the same process at the same
concurrency (the floor of any call there: transport, interceptors, event loop). Reported per
service and concurrency: sustained throughput (successful calls per second over the window,
after a warm-up), p50 and p99 latency, error rate; per-RPC p50/p99 in ``details``.

    .venv/bin/python benchmarks/bench_load.py --out bench-results/bench_load.json
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Awaitable, Callable

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from beamops.common.v1 import auth_pb2, lineage_pb2  # noqa: E402
from beamops.data.v1 import data_service_pb2 as dpb, data_service_pb2_grpc, dataset_pb2  # noqa: E402
from beamops.inference.v1 import deployment_pb2, inference_service_pb2 as ipb, inference_service_pb2_grpc  # noqa: E402
from beamops.registry.v1 import model_pb2, registry_service_pb2 as rs, registry_service_pb2_grpc  # noqa: E402
from beamops.runtime.auth import TokenStore  # noqa: E402
from beamops.tensors import to_tensor  # noqa: E402
from beamops.training.v1 import job_pb2, training_service_pb2 as ts, training_service_pb2_grpc  # noqa: E402
from tests.fixtures.inference import MLP_SIGNATURE, N_FEATURES, mlp_onnx  # noqa: E402
from tests.fixtures.training import zmumu_mass_spec  # noqa: E402
from tests.real_data import REAL_DATA  # noqa: E402
from services import free_port, service  # noqa: E402  (benchmarks/services.py)

SERVICES = ("registry", "data", "inference", "training")
OPTIONS = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
CALL_TIMEOUT_S = 60.0
Op = Callable[[int], Awaitable[str]]  # one call; returns the RPC's name


# ---------------------------------------------------------------------------------------- setup

def prepare(ports: dict[str, int], md) -> dict:
    """What the calls need; returns the names and ids they use."""
    def channel(name: str) -> grpc.Channel:
        return grpc.insecure_channel(f"127.0.0.1:{ports[name]}", options=OPTIONS)

    reg = registry_service_pb2_grpc.RegistryServiceStub(channel("registry"))
    data = mlp_onnx(seed=1)
    reg.CreateModel(rs.CreateModelRequest(name="load-mlp"), metadata=md)
    reg.CreateModelType(rs.CreateModelTypeRequest(model="load-mlp", version="1.0.0", signature=MLP_SIGNATURE,
                                                  framework=model_pb2.FRAMEWORK_ONNX), metadata=md)
    header = rs.UploadArtifactRequest.Header(model="load-mlp", format=model_pb2.ARTIFACT_FORMAT_ONNX,
                                             filename="mlp.onnx", sha256=hashlib.sha256(data).hexdigest(),
                                             size_bytes=len(data))
    artifact = reg.UploadArtifact(iter([rs.UploadArtifactRequest(header=header),
                                        rs.UploadArtifactRequest(chunk=data)]), metadata=md).artifact
    params = reg.CreateParametersVersion(rs.CreateParametersVersionRequest(
        model="load-mlp", model_type_version="1.0.0", primary_artifact_id=artifact.artifact_id,
        idempotency_key="setup"), metadata=md).parameters
    reg.SetAlias(rs.SetAliasRequest(model="load-mlp", alias="production", version=params.version,
                                    reason="load benchmark"), metadata=md)

    dat = data_service_pb2_grpc.DataServiceStub(channel("data"))
    version = dat.RegisterDatasetVersion(dpb.RegisterDatasetVersionRequest(
        dataset="zmumu", source=dataset_pb2.DatasetSource(urls=["uproot-Zmumu.root"], tree_name="events")),
        metadata=md).version
    split = dat.DeriveDatasetVersion(dpb.DeriveDatasetVersionRequest(
        parent=lineage_pb2.DatasetVersionRef(dataset="zmumu", version_id=version.version_id),
        split=dataset_pb2.SplitDerivation(train_fraction=0.6, validation_fraction=0.2, test_fraction=0.2,
                                          seed=1)), metadata=md).version

    train = training_service_pb2_grpc.TrainingServiceStub(channel("training"))
    job_ids = []
    for i in range(3):
        spec = zmumu_mass_spec(split, model=f"load-zmumu-{i}", max_iter=3, executor=job_pb2.EXECUTOR_LOCAL)
        job = train.SubmitJob(ts.SubmitJobRequest(spec=spec), metadata=md).job
        for _ in train.WatchJob(ts.WatchJobRequest(job_id=job.job_id, exclude_log_lines=True), metadata=md,
                                timeout=300):
            pass
        job_ids.append(job.job_id)

    inf = inference_service_pb2_grpc.InferenceServiceStub(channel("inference"))
    inf.Deploy(ipb.DeployRequest(model="load-mlp", name="mlp",
                                 target=deployment_pb2.DeploymentTarget(alias="production")), metadata=md)
    x = np.random.default_rng(0).normal(size=(1, N_FEATURES)).astype(np.float32)
    inf.Predict(ipb.PredictRequest(deployment="mlp", inputs=[to_tensor("x", x)]), metadata=md, timeout=120)
    return {"artifact_id": artifact.artifact_id, "dataset_version": version.version_id, "job_ids": job_ids,
            "x": x}


def workloads(ports: dict[str, int], md, ctx: dict) -> dict[str, Callable[[grpc.aio.Channel], Op]]:
    """For each service: given a client's channel, the function that makes one call of the mix."""
    chance = random.Random(1)
    run = uuid.uuid4().hex[:8]
    counter = iter(range(10**9))

    def registry(channel) -> Op:
        stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        resolve = rs.ResolveAliasRequest(model="load-mlp", alias="production")

        async def op(_i: int) -> str:
            if chance.random() < 0.8:
                await stub.ResolveAlias(resolve, metadata=md, timeout=CALL_TIMEOUT_S)
                return "ResolveAlias"
            await stub.CreateParametersVersion(rs.CreateParametersVersionRequest(
                model="load-mlp", model_type_version="1.0.0", primary_artifact_id=ctx["artifact_id"],
                idempotency_key=f"load-{run}-{next(counter)}"), metadata=md, timeout=CALL_TIMEOUT_S)
            return "CreateParametersVersion"
        return op

    def data(channel) -> Op:
        stub = data_service_pb2_grpc.DataServiceStub(channel)
        ref = lineage_pb2.DatasetVersionRef(dataset="zmumu", version_id=ctx["dataset_version"])
        get = dpb.GetDatasetVersionRequest(dataset="zmumu", version_id=ctx["dataset_version"])
        read = dpb.ReadDatasetVersionRequest(version=ref, branches=["E1", "px1"],
                                             entry_range=dataset_pb2.EntryRange(start=0, stop=100))

        async def op(_i: int) -> str:
            if chance.random() < 0.5:
                await stub.GetDatasetVersion(get, metadata=md, timeout=CALL_TIMEOUT_S)
                return "GetDatasetVersion"
            async for _ in stub.ReadDatasetVersion(read, metadata=md, timeout=CALL_TIMEOUT_S):
                pass
            return "ReadDatasetVersion"
        return op

    def inference(channel) -> Op:
        stub = inference_service_pb2_grpc.InferenceServiceStub(channel)
        request = ipb.PredictRequest(deployment="mlp", inputs=[to_tensor("x", ctx["x"])])

        async def op(_i: int) -> str:
            await stub.Predict(request, metadata=md, timeout=CALL_TIMEOUT_S)
            return "Predict"
        return op

    def training(channel) -> Op:
        stub = training_service_pb2_grpc.TrainingServiceStub(channel)
        gets = [ts.GetJobRequest(job_id=j) for j in ctx["job_ids"]]
        listing = ts.ListJobsRequest(page_size=10)

        async def op(i: int) -> str:
            if chance.random() < 0.5:
                await stub.GetJob(gets[i % len(gets)], metadata=md, timeout=CALL_TIMEOUT_S)
                return "GetJob"
            await stub.ListJobs(listing, metadata=md, timeout=CALL_TIMEOUT_S)
            return "ListJobs"
        return op

    return {"registry": registry, "data": data, "inference": inference, "training": training}


def health(channel) -> Op:
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest()

    async def op(_i: int) -> str:
        await stub.Check(request, timeout=CALL_TIMEOUT_S)
        return "Health/Check"
    return op


# ---------------------------------------------------------------------------------------- load

async def drive(address: str, make_op: Callable[[grpc.aio.Channel], Op], concurrency: int, seconds: float,
                warmup: float) -> dict:
    """``concurrency`` clients, each with its own channel, calling back to back for ``seconds``."""
    channels = [grpc.aio.insecure_channel(address, options=OPTIONS) for _ in range(concurrency)]
    ops = [make_op(c) for c in channels]
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: Counter[str] = Counter()
    ok = 0
    start = time.perf_counter() + warmup
    end = start + seconds

    async def client(i: int) -> None:
        nonlocal ok
        while (t0 := time.perf_counter()) < end:
            try:
                name = await ops[i](i)
            except grpc.aio.AioRpcError as exc:
                if t0 >= start:
                    errors[exc.code().name] += 1
                continue
            if t0 >= start:
                latencies[name].append(time.perf_counter() - t0)
                ok += 1

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    for channel in channels:
        await channel.close()
    every = [v for values in latencies.values() for v in values]
    failed = sum(errors.values())
    return {
        "throughput": ok / seconds,
        "p50_ms": _pct(every, 50), "p99_ms": _pct(every, 99),
        "error_rate": failed / max(1, ok + failed), "errors": dict(errors), "calls": ok + failed,
        "per_rpc": {name: {"calls": len(v), "p50_ms": _pct(v, 50), "p99_ms": _pct(v, 99)}
                    for name, v in sorted(latencies.items())},
    }


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.asarray(values) * 1e3, q)), 3) if values else None


def rows_for(name: str, mix: str, concurrency: int, load: dict, floor: dict) -> list[dict]:
    label = f"{name} {mix}, {concurrency} client{'s' if concurrency > 1 else ''}"

    def ratio(a, b):
        return round(a / b, 3) if a and b else None

    return [
        {"measure": f"{label}: throughput", "beamops": round(load["throughput"], 1),
         "baseline": round(floor["throughput"], 1), "unit": "calls/s",
         "ratio": ratio(load["throughput"], floor["throughput"]), "goal": "(vs health check)"},
        {"measure": f"{label}: p50", "beamops": load["p50_ms"], "baseline": floor["p50_ms"], "unit": "ms",
         "ratio": ratio(floor["p50_ms"], load["p50_ms"]), "goal": ""},
        {"measure": f"{label}: p99", "beamops": load["p99_ms"], "baseline": floor["p99_ms"], "unit": "ms",
         "ratio": ratio(floor["p99_ms"], load["p99_ms"]), "goal": ""},
        {"measure": f"{label}: error rate", "beamops": round(100 * load["error_rate"], 3),
         "baseline": round(100 * floor["error_rate"], 3), "unit": "%", "ratio": None, "goal": "0"},
    ]


MIXES = {
    "registry": "80% ResolveAlias + 20% CreateParametersVersion",
    "data": "50% GetDatasetVersion + 50% ReadDatasetVersion(100 entries)",
    "inference": "Predict (1 row)",
    "training": "50% GetJob + 50% ListJobs",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/bench_load.json"))
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window per level")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured start of each level")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--services", default=",".join(SERVICES))
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    chosen = [s for s in args.services.split(",") if s]

    subprocess.run(["bash", str(ROOT / "services/inference/triton/install.sh")], check=True)
    work = Path(tempfile.mkdtemp(prefix="beamops-bench-load-"))
    tokens = TokenStore(work / "tokens.json")
    admin = tokens.create("bench", auth_pb2.ROLE_ADMIN)
    service_token = tokens.create("inference-service", auth_pb2.ROLE_PUBLISHER)
    md = (("authorization", f"Bearer {admin}"),)
    ports = {name: free_port() for name in SERVICES}
    addr = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    rows, details = [], []
    with service("registry", ports["registry"], work), \
            service("data", ports["data"], work, data_roots=json.dumps([str(REAL_DATA)])), \
            service("training", ports["training"], work, data_address=addr["data"],
                    registry_address=addr["registry"]), \
            service("inference", ports["inference"], work, registry_address=addr["registry"],
                    registry_token=service_token, triton_venv=str(ROOT / ".venv-triton"),
                    triton_grpc_port=str(free_port())):
        print("preparing ...", flush=True)
        ctx = prepare(ports, md)
        loads = workloads(ports, md, ctx)
        for name in chosen:
            for concurrency in levels:
                floor = asyncio.run(drive(addr[name], health, concurrency, args.seconds, args.warmup))
                load = asyncio.run(drive(addr[name], loads[name], concurrency, args.seconds, args.warmup))
                print(f"{name:9s} c={concurrency:<3d} {load['throughput']:8.1f} calls/s  p50 {load['p50_ms']} ms  "
                      f"p99 {load['p99_ms']} ms  errors {load['error_rate']:.2%}   (health: "
                      f"{floor['throughput']:.1f} calls/s, p50 {floor['p50_ms']} ms)", flush=True)
                rows += rows_for(name, MIXES[name], concurrency, load, floor)
                details.append({"service": name, "concurrency": concurrency, "mix": MIXES[name],
                                "load": load, "health_check": floor})
    report = {
        "benchmark": "load",
        "machine": f"{platform.node()} ({os.cpu_count()} cpus, python {platform.python_version()})",
        "rows": rows,
        "details": details,
        "seconds_per_level": args.seconds,
        "notes": "clients in this process (grpc.aio, one channel per client), each service in its own "
                 "process on the same machine; baseline = grpc.health.v1 Check of the same process at the "
                 "same concurrency; ratio = beamops/baseline for throughput, baseline/beamops for latency",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
