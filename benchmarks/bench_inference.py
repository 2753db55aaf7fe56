"""Inference benchmark: Predict through the inference service against ModelInfer sent straight to
the same Triton model with tritonclient, same inputs, same machine, one run; and embedded mode
(beamops.load_model) against ONNX Runtime called directly.

Starts a registry and an inference service (with its gateway, which runs the bundled Triton in its
own process) as processes, and the bundled tritonserver binary on the same model repository entries
as the baseline (Triton's own gRPC front); publishes a 6 -> 16 -> 3 MLP, deploys it, then
measures, for Predict through the gateway
(the data plane, the address for fast calls) and through the service's own port (which passes
Predict to the gateway: a hop more):
p50/p99 of one small request (sequential; through the gateway also by model and alias),
throughput with 16 concurrent clients, throughput of 1 MB requests (4 clients); and embedded vs
direct. ``--separate-triton`` runs the service's Triton as a tritonserver process of its own
(``triton_in_gateway=false``), the arrangement before Triton moved into the gateway.

    .venv/bin/python benchmarks/bench_inference.py --out bench-results/bench_inference.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import tritonclient.grpc as tc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import beamops  # noqa: E402
from beamops.common.v1 import auth_pb2  # noqa: E402
from beamops.inference.triton.bundled import BundledTriton, TritonPaths  # noqa: E402
from beamops.inference.v1 import deployment_pb2 as dpb, inference_service_pb2 as pb  # noqa: E402
from beamops.inference.v1 import inference_service_pb2_grpc  # noqa: E402
from beamops.runtime.auth import TokenStore  # noqa: E402
from beamops.tensors import to_tensor  # noqa: E402
from tests.fixtures.inference import MLP_SIGNATURE, N_FEATURES, mlp_onnx  # noqa: E402
from services import free_port, publish_onnx, service  # noqa: E402  (benchmarks/services.py)

OPTIONS = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]


def _latencies(call, n: int) -> list[float]:
    for _ in range(min(200, n)):
        call()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        out.append(time.perf_counter() - t)
    return out


def _throughput(call, clients: int, seconds: float) -> float:
    counts = [0] * clients
    stop = time.perf_counter() + seconds

    def work(i: int) -> None:
        while time.perf_counter() < stop:
            call()
            counts[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--separate-triton", action="store_true",
                        help="the service's Triton as its own process, not inside the gateway")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    tokens = TokenStore(work / "tokens.json")
    admin = tokens.create("bench", auth_pb2.ROLE_ADMIN)
    service_token = tokens.create("inference-service", auth_pb2.ROLE_PUBLISHER)
    md = (("authorization", f"Bearer {admin}"),)
    reg_port, inf_port, gateway_port, triton_port = free_port(), free_port(), free_port(), free_port()
    subprocess.run(["bash", str(ROOT / "services/inference/triton/install.sh")], check=True)
    subprocess.run(["bash", str(ROOT / "services/inference/gateway/build.sh")], check=True)
    data = mlp_onnx(seed=1)
    rows = []
    with service("registry", reg_port, work), \
            service("inference", inf_port, work, registry_address=f"127.0.0.1:{reg_port}",
                    registry_token=service_token, triton_venv=str(ROOT / ".venv-triton"),
                    gateway_port=str(gateway_port),
                    triton_in_gateway=str(not args.separate_triton).lower()):
        version = publish_onnx(f"127.0.0.1:{reg_port}", md, "mlp", data, MLP_SIGNATURE)

        channel = grpc.insecure_channel(f"127.0.0.1:{inf_port}", options=OPTIONS)
        inf = inference_service_pb2_grpc.InferenceServiceStub(channel)
        big_rows = (1 << 20) // (4 * N_FEATURES)
        for name, max_batch in (("mlp", 0), ("mlp-big", big_rows)):
            inf.Deploy(pb.DeployRequest(model="mlp", name=name, target=dpb.DeploymentTarget(alias="production"),
                                        serving=dpb.ServingConfig(max_batch_size=max_batch)), metadata=md)
        version = version.replace(".", "_")
        # The baseline: the bundled tritonserver binary (its own gRPC front) on the same model
        # repository entries. The service runs Triton inside its gateway, so its port is not
        # Triton's own front.
        paths = TritonPaths.from_install(ROOT / ".venv-triton", work / "inference" / "triton-models")
        direct = BundledTriton(paths, triton_port, free_port(), free_port(), log_path=work / "tritonserver.log")
        direct.start()
        direct.wait_ready(120)
        triton = tc.InferenceServerClient(f"127.0.0.1:{triton_port}")
        for model in (f"mlp__{version}", f"mlp-big__{version}"):
            triton.load_model(model)

        def direct_call(model: str, x: np.ndarray):
            inp = tc.InferInput("x", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            return lambda: triton.infer(model, [inp])

        def service_call(stub, name: str, x: np.ndarray):
            request = pb.PredictRequest(deployment=name, inputs=[to_tensor("x", x)])
            return lambda: stub.Predict(request, metadata=md)

        small = np.random.default_rng(0).normal(size=(1, N_FEATURES)).astype(np.float32)
        big = np.random.default_rng(1).normal(size=(big_rows, N_FEATURES)).astype(np.float32)
        gateway = inference_service_pb2_grpc.InferenceServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{gateway_port}", options=OPTIONS))
        paths = (("gateway", gateway), ("service", inf))  # what a client calls: port 50055 or 50054
        direct_small = direct_call(f"mlp__{version}", small)
        dir_ = _latencies(direct_small, args.requests)
        for path, stub in paths:
            svc = _latencies(service_call(stub, "mlp", small), args.requests)
            added = statistics.median(svc) - statistics.median(dir_)
            rows += [
                {"measure": f"{path}: single small request p50", "beamops": _pct(svc, 50),
                 "baseline": _pct(dir_, 50), "unit": "ms", "ratio": _pct(dir_, 50) / _pct(svc, 50),
                 "goal": "added p50 < 0.3 ms"},
                {"measure": f"{path}: single small request p99", "beamops": _pct(svc, 99),
                 "baseline": _pct(dir_, 99), "unit": "ms", "ratio": _pct(dir_, 99) / _pct(svc, 99), "goal": ""},
                {"measure": f"{path}: added p50 latency", "beamops": added * 1e3, "baseline": 0.0, "unit": "ms",
                 "ratio": None, "goal": "< 0.3 ms"},
            ]
        # By model and alias (what control software often names): served by the gateway itself
        # when a deployment follows the alias, as here.
        by_alias = pb.PredictRequest(model=dpb.ModelSelector(model="mlp", alias="production"),
                                     inputs=[to_tensor("x", small)])
        alias_lat = _latencies(lambda: gateway.Predict(by_alias, metadata=md), args.requests)
        rows.append({"measure": "gateway: single small request by model alias, p50", "beamops": _pct(alias_lat, 50),
                     "baseline": _pct(dir_, 50), "unit": "ms", "ratio": _pct(dir_, 50) / _pct(alias_lat, 50),
                     "goal": "as by deployment"})
        d16 = _throughput(direct_small, 16, args.seconds)
        for path, stub in paths:
            s16 = _throughput(service_call(stub, "mlp", small), 16, args.seconds)
            rows.append({"measure": f"{path}: throughput, 16 clients, 1-row requests", "beamops": s16,
                         "baseline": d16, "unit": "req/s", "ratio": s16 / d16, "goal": ">= 0.8"})
        dbig = _throughput(direct_call(f"mlp-big__{version}", big), 4, args.seconds) * big.nbytes / 1e6
        for path, stub in paths:
            sbig = _throughput(service_call(stub, "mlp-big", big), 4, args.seconds) * big.nbytes / 1e6
            rows.append({"measure": f"{path}: throughput, 1 MB requests, 4 clients", "beamops": sbig,
                         "baseline": dbig, "unit": "MB/s", "ratio": sbig / dbig, "goal": ">= 0.8"})

        client = beamops.Client(admin, registry_address=f"127.0.0.1:{reg_port}")
        model = beamops.load_model("mlp", "production", client, cache_dir=work / "cache")
        client.close()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        emb = _latencies(lambda: model.predict(x=small), args.requests * 5)
        raw = _latencies(lambda: session.run(None, {"x": small}), args.requests * 5)
        rows.append({"measure": "embedded predict vs onnxruntime, 1 row, p50", "beamops": _pct(emb, 50),
                     "baseline": _pct(raw, 50), "unit": "ms", "ratio": _pct(raw, 50) / _pct(emb, 50),
                     "goal": ">= 0.9"})
        triton.close()
        direct.stop()
        channel.close()
    for row in rows:
        for key in ("beamops", "baseline", "ratio"):
            if isinstance(row[key], float):
                row[key] = round(row[key], 4)
    report = {"benchmark": "inference",
              "machine": f"{platform.node()} ({os.cpu_count()} cpus, python {platform.python_version()})",
              "rows": rows,
              "notes": "ratio = baseline/beamops for latencies, beamops/baseline for throughput; "
                       "bundled Triton (CPU, Python backend running ONNX Runtime); the service's "
                       + ("tritonserver process" if args.separate_triton else "Triton inside the gateway")
                       + " against the tritonserver binary's own gRPC front"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
