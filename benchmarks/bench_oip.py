"""Open Inference Protocol benchmark: perf_analyzer (Triton's own load generator) through beamops'
gateway against the tritonserver binary on the same model, same machine, one run; REST JSON and
binary through tritonclient.http against Triton's own HTTP front.

Starts a registry and an inference service (its gateway runs the bundled Triton in its process)
as processes, publishes a 6 -> 16 -> 3 MLP, deploys it as "mlp" following alias production, and
starts the bundled tritonserver binary on the same model repository entry as the baseline. Then:
perf_analyzer over gRPC at concurrency 1 and 16 (throughput, p50), over HTTP (binary tensors) at
concurrency 1, and a tritonclient.http loop with JSON tensors.

    .venv/bin/python benchmarks/bench_oip.py --out bench-results/bench_oip.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
import tritonclient.grpc as tc
import tritonclient.http as th
from tritonclient.grpc import service_pb2, service_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from beamops.common.v1 import auth_pb2  # noqa: E402
from beamops.inference.triton.bundled import BundledTriton, TritonPaths  # noqa: E402
from beamops.inference.v1 import deployment_pb2 as dpb, inference_service_pb2 as pb  # noqa: E402
from beamops.inference.v1 import inference_service_pb2_grpc  # noqa: E402
from beamops.runtime.auth import TokenStore  # noqa: E402
from tests.fixtures.inference import MLP_SIGNATURE, N_FEATURES, mlp_onnx  # noqa: E402
from services import free_port, publish_onnx, service, set_alias  # noqa: E402  (benchmarks/services.py)

PERF_ANALYZER = ROOT / ".tools" / "bin" / "perf_analyzer"
SUMMARY = re.compile(r"Concurrency: (\d+), throughput: ([\d.]+) infer/sec, latency (\d+) usec")


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def perf(model: str, url: str, protocol: str, concurrency: int, *headers: str) -> tuple[float, float]:
    """perf_analyzer's throughput (infer/s) and p50 latency (ms) at one concurrency."""
    args = [str(PERF_ANALYZER), "-m", model, "-u", url, "-i", protocol, "--shape", f"x:{N_FEATURES}",
            "--concurrency-range", str(concurrency), "--percentile", "50", "--measurement-interval", "3000",
            "-s", "25", "--max-trials", "10"]
    for h in headers:
        args += ["-H", h]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    found = SUMMARY.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"perf_analyzer failed on {url}:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return float(found.group(2)), int(found.group(3)) / 1000


def json_rest(url: str, model: str, headers: dict, seconds: float) -> float:
    """Requests per second of sequential JSON-tensor inference with tritonclient.http."""
    client = th.InferenceServerClient(url)
    x = np.random.default_rng(0).normal(size=(1, N_FEATURES)).astype(np.float32)
    inp = th.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=False)
    outputs = [th.InferRequestedOutput("probabilities", binary_data=False)]
    client.infer(model, [inp], outputs=outputs, headers=headers)
    n, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        client.infer(model, [inp], outputs=outputs, headers=headers)
        n += 1
    client.close()
    return n / seconds


def first_change(call, changed, timeout_s: float = 30.0) -> float:
    """Seconds until ``changed(call())`` holds, calling as fast as one caller can."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if changed(call()):
            return time.monotonic() - started
    return float("inf")


def stream_end_after_revocation(address: str, model: str, tokens: TokenStore, name: str) -> float:
    """Seconds from revoking ``name``'s token to the end of its open, idle ModelStreamInfer."""
    token = tokens.create(name, auth_pb2.ROLE_READER)
    sent: queue.Queue = queue.Queue()
    x = np.zeros((1, N_FEATURES), np.float32)
    request = service_pb2.ModelInferRequest(
        model_name=model, id="s1", raw_input_contents=[x.tobytes()],
        inputs=[service_pb2.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=list(x.shape))])
    with grpc.insecure_channel(address) as channel:
        answers = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer(
            iter(sent.get, None), metadata=(("authorization", f"Bearer {token}"),))
        sent.put(request)
        next(answers)  # answered: the stream is open and admitted
        started = time.monotonic()
        tokens.revoke(name)
        try:
            next(answers)  # nothing more is sent: it ends by itself
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
                raise
        ended = time.monotonic() - started
        sent.put(None)
    return ended


def grpc_infer(address: str, model: str, token: str):
    """One ModelInfer with stock tritonclient: the answer's model_version, or "refused"."""
    client = tc.InferenceServerClient(address)
    x = np.zeros((1, N_FEATURES), np.float32)
    inp = tc.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)

    def call() -> str:
        try:
            return client.infer(model, [inp], headers={"authorization": f"Bearer {token}"}).get_response().model_version
        except tc.InferenceServerException as exc:
            if "UNAUTHENTICATED" in str(exc.status()):
                return "refused"
            raise
    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--moves", type=int, default=20)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-oip-"))
    tokens = TokenStore(work / "tokens.json")
    admin = tokens.create("bench", auth_pb2.ROLE_ADMIN)
    service_token = tokens.create("inference-service", auth_pb2.ROLE_PUBLISHER)
    md = (("authorization", f"Bearer {admin}"),)
    reg_port, inf_port, gateway_port, http_port = free_port(), free_port(), free_port(), free_port()
    for script in ("services/inference/triton/install.sh", "services/inference/gateway/build.sh",
                   "scripts/install_perf_analyzer.sh"):
        subprocess.run(["bash", str(ROOT / script)], check=True)
    rows = []
    with service("registry", reg_port, work), \
            service("inference", inf_port, work, registry_address=f"127.0.0.1:{reg_port}",
                    registry_token=service_token, triton_venv=str(ROOT / ".venv-triton"),
                    gateway_port=str(gateway_port), gateway_http_port=str(http_port)):
        version = publish_onnx(f"127.0.0.1:{reg_port}", md, "mlp", mlp_onnx(seed=1), MLP_SIGNATURE)
        with grpc.insecure_channel(f"127.0.0.1:{inf_port}") as channel:
            inference_service_pb2_grpc.InferenceServiceStub(channel).Deploy(
                pb.DeployRequest(model="mlp", target=dpb.DeploymentTarget(alias="production")), metadata=md)
        triton_model = f"mlp__{version.replace('.', '_')}"
        paths = TritonPaths.from_install(ROOT / ".venv-triton", work / "inference" / "triton-models")
        direct = BundledTriton(paths, free_port(), free_port(), free_port(), log_path=work / "tritonserver.log")
        direct.start()
        direct.wait_ready(120)
        triton = tc.InferenceServerClient(f"127.0.0.1:{direct.grpc_port}")
        triton.load_model(triton_model)
        triton.close()
        token = f"authorization: Bearer {admin}"
        beamops_grpc, triton_grpc = f"127.0.0.1:{gateway_port}", f"127.0.0.1:{direct.grpc_port}"
        for concurrency in (1, 16):
            t_tp, t_p50 = perf(triton_model, triton_grpc, "grpc", concurrency)
            b_tp, b_p50 = perf("mlp", beamops_grpc, "grpc", concurrency, token)
            rows += [
                {"measure": f"OIP gRPC, perf_analyzer, concurrency {concurrency}: throughput", "beamops": b_tp,
                 "baseline": t_tp, "unit": "infer/s", "ratio": b_tp / t_tp, "goal": ">= 0.9"},
                {"measure": f"OIP gRPC, perf_analyzer, concurrency {concurrency}: p50", "beamops": b_p50,
                 "baseline": t_p50, "unit": "ms", "ratio": t_p50 / b_p50,
                 "goal": "added <= 0.15 ms" if concurrency == 1 else ""},
            ]
            if concurrency == 1:
                rows.append({"measure": "OIP gRPC, concurrency 1: added p50", "beamops": b_p50 - t_p50,
                             "baseline": 0.0, "unit": "ms", "ratio": None, "goal": "<= 0.15 ms"})
        t_tp, _ = perf(triton_model, f"127.0.0.1:{direct.http_port}", "http", 1)
        b_tp, _ = perf("mlp", f"127.0.0.1:{http_port}", "http", 1, token)
        rows.append({"measure": "OIP REST binary tensors, perf_analyzer, concurrency 1: throughput",
                     "beamops": b_tp, "baseline": t_tp, "unit": "infer/s", "ratio": b_tp / t_tp, "goal": ">= 0.9"})
        t_json = json_rest(f"127.0.0.1:{direct.http_port}", triton_model, {}, args.seconds)
        b_json = json_rest(f"127.0.0.1:{http_port}", "mlp", {"authorization": f"Bearer {admin}"}, args.seconds)
        rows.append({"measure": "OIP REST JSON tensors, tritonclient.http, sequential: throughput",
                     "beamops": b_json, "baseline": t_json, "unit": "req/s", "ratio": b_json / t_json,
                     "goal": ">= 0.9"})
        direct.stop()

        # Changes reaching traffic: a revoked token's first refusal, an alias move's first answer.
        refusals = []
        for i in range(5):
            token_i = tokens.create(f"night-shift-{i}", auth_pb2.ROLE_READER)
            call = grpc_infer(beamops_grpc, "mlp", token_i)
            call()  # admitted: the gateway caches the answer
            tokens.revoke(f"night-shift-{i}")
            refusals.append(first_change(call, lambda v: v == "refused"))
        rows.append({"measure": "token revoked -> first refusal (OIP gRPC), p50 of 5", "beamops": _median(refusals),
                     "baseline": None, "unit": "s", "ratio": None, "goal": "< 0.1 s"})
        ends = [stream_end_after_revocation(beamops_grpc, "mlp", tokens, f"stream-shift-{i}") for i in range(5)]
        rows.append({"measure": "token revoked -> its open ModelStreamInfer ends, max of 5", "beamops": max(ends),
                     "baseline": None, "unit": "s", "ratio": None, "goal": "< 1 s"})
        second = publish_onnx(f"127.0.0.1:{reg_port}", md, "mlp", mlp_onnx(seed=2), MLP_SIGNATURE, alias="",
                              new_model=False)
        moves, call = [], grpc_infer(beamops_grpc, "mlp", admin)
        for i in range(args.moves):
            target = second if i % 2 == 0 else version
            set_alias(f"127.0.0.1:{reg_port}", md, "mlp", "production", target)
            moves.append(first_change(call, lambda v, t=target: v == t))
        rows += [{"measure": f"alias moved -> first answer from the new version, p50 of {len(moves)}",
                  "beamops": _median(moves), "baseline": None, "unit": "s", "ratio": None, "goal": "< 0.5 s"},
                 {"measure": f"alias moved -> first answer from the new version, max of {len(moves)}",
                  "beamops": max(moves), "baseline": None, "unit": "s", "ratio": None, "goal": "< 0.5 s"}]
    for row in rows:
        for key in ("beamops", "baseline", "ratio"):
            if isinstance(row[key], float):
                row[key] = round(row[key], 4)
    report = {"benchmark": "oip",
              "machine": f"{platform.node()} ({os.cpu_count()} cpus, python {platform.python_version()})",
              "rows": rows,
              "notes": "ratio = beamops/baseline for throughput, baseline/beamops for latency; baseline: the "
                       "bundled tritonserver binary's own gRPC and HTTP fronts on the same model entry; "
                       "beamops: the gateway (Triton inside its process), token checked on every call"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
