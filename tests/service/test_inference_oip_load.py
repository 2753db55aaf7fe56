"""perf_analyzer, Triton's own load generator (the tritonclient 2.51 wheel's binary, installed by
scripts/install_perf_analyzer.sh), against beamops' Open Inference Protocol front: it reads the
model's metadata, config and statistics as it does from Triton, and none of its requests fails,
also while the alias the deployment follows moves ten times and the deployment is rolled back.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from beamops.inference.v1 import deployment_pb2 as dpb, inference_service_pb2 as pb
from beamops.tensors import to_tensor
from tests.fixtures.inference import mlp_onnx
from tests.service.test_inference_oip import _x

ROOT = Path(__file__).resolve().parents[2]
PERF_ANALYZER = Path(os.environ.get("BEAMOPS_PERF_ANALYZER", ROOT / ".tools" / "bin" / "perf_analyzer"))

pytestmark = [pytest.mark.usefixtures("gateway_binary"), pytest.mark.timeout(300)]


@pytest.fixture
def perf_analyzer() -> Path:
    if not PERF_ANALYZER.is_file():
        raise RuntimeError(f"{PERF_ANALYZER} is missing: run scripts/install_perf_analyzer.sh (make system-deps)")
    return PERF_ANALYZER


@pytest.fixture
async def following(inference_stack):
    """"jets" 1.0 and 1.1, alias production on 1.0, deployment "jets" following it. The alias is
    never polled: moves reach the deployment only as the registry pushes them."""
    stack = inference_stack
    await stack.publish("jets", mlp_onnx(seed=3), alias="production")
    await stack.publish("jets", mlp_onnx(seed=4))
    async with stack.inference("gateway", alias_poll_interval_s=3600) as (server, gateway):
        await gateway.Deploy(pb.DeployRequest(model="jets", target=dpb.DeploymentTarget(alias="production")),
                             metadata=stack.md("deployer"))
        await gateway.Predict(pb.PredictRequest(deployment="jets", inputs=[to_tensor("x", _x(1))]),
                              metadata=stack.md("reader"))
        yield stack, server, gateway


async def _run(perf_analyzer: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(str(perf_analyzer), *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode, out.decode(errors="replace")


def _args(server, token: str, *extra: str) -> list[str]:
    # perf_analyzer's -H sends the value after the colon with its leading space, which beamops
    # takes as a bearer token as any HTTP server would.
    return ["-m", "jets", "-u", server.gateway_address, "-i", "grpc", "-H", f"authorization: Bearer {token}",
            "--shape", "x:6", "-b", "4", *extra]


async def test_perf_analyzer_with_a_token_header_gets_no_errors(following, perf_analyzer):
    stack, server, _ = following
    code, out = await _run(perf_analyzer, *_args(server, stack.tokens.reader, "--concurrency-range", "1:4:3",
                                                 "--measurement-mode", "count_windows",
                                                 "--measurement-request-count", "200", "--max-trials", "4",
                                                 # any three windows in a row are "stable": on a busy
                                                 # machine the test is about errors, not about noise
                                                 "-s", "1000"))
    assert code == 0, out
    # It measured throughput at both concurrencies, with the server-side counts of ModelStatistics.
    assert len(re.findall(r"Concurrency: \d+, throughput: [\d.]+ infer/sec", out)) == 2, out
    assert "Server:" in out and "Inference count:" in out, out
    assert "error" not in out.lower(), out


async def test_perf_analyzer_is_refused_without_a_token(following, perf_analyzer):
    _, server, _ = following
    code, out = await _run(perf_analyzer, "-m", "jets", "-u", server.gateway_address, "-i", "grpc",
                           "--measurement-request-count", "10", "--measurement-mode", "count_windows")
    assert code != 0, out
    assert "token" in out.lower(), out


async def test_no_request_fails_across_ten_alias_moves_and_a_rollback(following, perf_analyzer):
    stack, server, gateway = following
    load = asyncio.create_task(_run(perf_analyzer, *_args(
        server, stack.tokens.reader, "--concurrency-range", "4", "--measurement-interval", "10000",
        "--measurement-mode", "time_windows", "-s", "1000")))  # three windows of 10 s
    versions = ["1.1", "1.0"] * 5
    await asyncio.sleep(1)  # perf_analyzer has read the model's metadata and config
    try:
        for version in versions:
            await stack.set_alias("jets", "production", version)
            # The deployment follows: wait until it serves the version (the gateway then too).
            for _ in range(100):
                got = await gateway.GetDeployment(pb.GetDeploymentRequest(name="jets"), metadata=stack.md("reader"))
                d = got.deployment
                if d.parameters.version == version and d.state == dpb.DEPLOYMENT_STATE_READY:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"the deployment did not follow production to {version}")
        rolled = await gateway.Rollback(pb.RollbackRequest(name="jets", expected_parameters_version="1.0",
                                                           reason="test"), metadata=stack.md("deployer"))
        assert rolled.deployment.parameters.version == "1.1"
        assert not load.done(), "perf_analyzer ended before the moves did: lengthen its windows"
    finally:
        code, out = await load
    assert code == 0, out
    assert "error" not in out.lower(), out
