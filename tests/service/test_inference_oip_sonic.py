"""CMSSW SONIC's calls to the gateway's Triton protocol (inference.GRPCInferenceService), made by a
C++ program built with Triton's own grpc_service.proto (clients/cpp-sonic/sonic_sequence.cc), in
SONIC's order, over mutual TLS with no metadata at all: the client certificate alone stands for
the caller, through the inference service's client_certificates_file. Outputs are checked against
ONNX Runtime running the same model bytes.

The C++ program is built once per session (minutes on two cores); the inference service runs in
this test's event loop, so the program runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest

from beamops.inference.v1 import deployment_pb2 as dpb, inference_service_pb2 as pb
from beamops.inference.v1 import inference_service_pb2_grpc
from beamops.tensors import to_tensor
from tests.fixtures.inference import N_FEATURES, mlp_onnx, sha256

pytestmark = [pytest.mark.usefixtures("gateway_binary"), pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
SONIC = ROOT / "clients" / "cpp-sonic"
BUILD_TIMEOUT_S = 780
MODEL = mlp_onnx(seed=3)


@pytest.fixture(scope="session")
def sonic_sequence() -> Path:
    """clients/cpp-sonic/build/sonic_sequence, built unoptimised (as client_programs builds C++)."""
    build = SONIC / "build"
    for command in (["cmake", "-S", str(SONIC), "-B", str(build), "-DCMAKE_BUILD_TYPE=Debug",
                     "-DCMAKE_CXX_FLAGS_DEBUG=-O0"],
                    ["cmake", "--build", str(build), "-j2"]):
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    program = build / "sonic_sequence"
    assert program.is_file()
    return program


def _subject(certificate: Path) -> str:
    """The certificate's subject in RFC 2253 form, as the gateway reports a verified one."""
    out = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", str(certificate)],
                         check=True, capture_output=True, text=True).stdout.strip()
    return out.removeprefix("subject=").strip()


def _x(rows: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, N_FEATURES)).astype(np.float32)


@contextlib.asynccontextmanager
async def _served(stack, certificates, tmp_path: Path, subject: str, **settings):
    """The service with its gateway over mutual TLS, ``subject`` mapped to reader "cms-hlt" by
    client_certificates_file, "jets" (alias production) deployed; yields the server."""
    mapping = tmp_path / "client-certificates.json"
    mapping.write_text(json.dumps({subject: {"name": "cms-hlt", "role": "reader"}}))
    tls = certificates
    await stack.publish("jets", MODEL, alias="production")
    async with stack.inference("gateway", tls_cert_file=tls.server_cert, tls_key_file=tls.server_key,
                               tls_client_ca_file=tls.ca, client_certificates_file=mapping,
                               gateway_open_metadata=False, **settings) as (server, _):
        credentials = grpc.ssl_channel_credentials(root_certificates=tls.ca.read_bytes(),
                                                   private_key=tls.client_key.read_bytes(),
                                                   certificate_chain=tls.client_cert.read_bytes())
        async with grpc.aio.secure_channel(f"localhost:{server.gateway_port}", credentials) as channel:
            gateway = inference_service_pb2_grpc.InferenceServiceStub(channel)
            await gateway.Deploy(pb.DeployRequest(model="jets", target=dpb.DeploymentTarget(alias="production")),
                                 metadata=stack.md("deployer"))
            # Served once the gateway's route table has it (a token: whatever the certificate maps to).
            await gateway.Predict(pb.PredictRequest(deployment="jets", inputs=[to_tensor("x", _x(1))]),
                                  metadata=stack.md("reader"))
        yield server


def _run(program: Path, certificates, port: int, x: np.ndarray, tmp_path: Path,
         *extra: str) -> subprocess.CompletedProcess:
    raw = tmp_path / f"x-{x.shape[0]}.f32"
    raw.write_bytes(x.astype("<f4").tobytes())
    tls = certificates
    return subprocess.run(
        [str(program), "--address", f"localhost:{port}", "--ca", str(tls.ca), "--cert", str(tls.client_cert),
         "--key", str(tls.client_key), "--model", "jets", "--batch", str(x.shape[0]), "--input-raw", str(raw),
         "--features", str(x.shape[1]), *extra],
        capture_output=True, text=True, timeout=120)


async def test_sonic_sequence_with_a_mapped_client_certificate_equals_onnx_runtime(
        inference_stack, certificates, sonic_sequence, tmp_path):
    stack = inference_stack
    async with _served(stack, certificates, tmp_path, _subject(certificates.client_cert)) as server:
        session = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
        for rows in (1, 8):
            x = _x(rows, seed=rows)
            done = await asyncio.to_thread(_run, sonic_sequence, certificates, server.gateway_port, x, tmp_path)
            assert done.returncode == 0, (rows, done.stdout, done.stderr)
            answer = json.loads(done.stdout)
            probabilities, label = session.run(["probabilities", "label"], {"x": x})
            assert answer["server"] == "beamops" and answer["max_batch_size"] == 64
            assert answer["inputs"] == ["x"] and answer["model_version"] == "1.0"
            assert answer["success_count"] >= 1
            outputs = answer["outputs"]
            assert set(outputs) == {"probabilities", "label"}
            assert (outputs["probabilities"]["datatype"], outputs["probabilities"]["shape"]) == ("FP32", [rows, 3])
            assert (outputs["label"]["datatype"], outputs["label"]["shape"]) == ("INT64", [rows])
            np.testing.assert_allclose(np.array(outputs["probabilities"]["data"], dtype=np.float32).reshape(rows, 3),
                                       probabilities, rtol=1e-5, atol=1e-6)
            assert outputs["label"]["data"] == label.tolist()


async def test_an_unmapped_client_certificate_is_unauthenticated(inference_stack, certificates, sonic_sequence,
                                                                tmp_path):
    stack = inference_stack
    async with _served(stack, certificates, tmp_path, "CN=someone else,O=CERN") as server:
        done = await asyncio.to_thread(_run, sonic_sequence, certificates, server.gateway_port, _x(2), tmp_path)
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert done.stdout == ""
        assert "UNAUTHENTICATED" in done.stderr, done.stderr
        assert "/work" not in done.stderr and "Traceback" not in done.stderr, done.stderr


async def test_with_config_checksums_sonic_pins_the_artifact_it_runs(inference_stack, certificates,
                                                                    sonic_sequence, tmp_path):
    """gateway_config_checksums: ModelConfig names the artifact's sha256 as Triton's checksum
    agent does; SONIC's comparison with its local config.pbtxt passes for the artifact that is
    served and fails for any other, in either version form."""
    stack = inference_stack
    async with _served(stack, certificates, tmp_path, _subject(certificates.client_cert),
                       gateway_config_checksums=True) as server:
        def run(version: str, digest: str) -> subprocess.CompletedProcess:
            return _run(sonic_sequence, certificates, server.gateway_port, _x(2), tmp_path, "--version", version,
                        "--checksum", f"{version}/model.onnx=SHA256:{digest}")

        for version in ("1.0", "1000000", "production"):
            done = await asyncio.to_thread(run, version, sha256(MODEL))
            assert done.returncode == 0, (version, done.stdout, done.stderr)
            assert json.loads(done.stdout)["model_version"] == "1.0"
            done = await asyncio.to_thread(run, version, sha256(b"another artifact"))
            assert done.returncode == 1 and done.stdout == "", (version, done.stdout, done.stderr)
            assert f"incorrect checksums on the remote server: {version}/model.onnx" in done.stderr, done.stderr
        # A local config without the entries no longer matches (SONIC compares both ways).
        done = await asyncio.to_thread(_run, sonic_sequence, certificates, server.gateway_port, _x(2), tmp_path,
                                       "--version", "1.0")
        assert done.returncode == 1 and "incorrect checksums" in done.stderr, done.stderr

