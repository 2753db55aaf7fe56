"""Triton inside beamops-gateway's process (its in-process library, loaded by the gateway), reached
with tritonclient on the loopback port where the gateway serves the part of Triton's gRPC API that
the inference service calls: it loads an ONNX MLP through the bundled Python backend and answers
like ONNX Runtime, alone and under concurrent requests of mixed sizes; callers without the
gateway's token and what the service does not call are refused; SIGTERM stops Triton with the
gateway and leaves no stub or shared memory."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from beamops.inference.gateway.supervisor import EmbeddedTriton, command, spawn
from beamops.inference.triton.bundled import TritonPaths
from beamops.inference.triton.supervisor import free_port

from tests.fixtures.inference import N_FEATURES, mlp_onnx
from tests.fixtures.triton import check_concurrent_mixed_sizes, live_children, write_mlp_entry

pytestmark = pytest.mark.integration


TOKEN = "test-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def _start(gateway_binary: Path, embedded: EmbeddedTriton, triton_port: int, log: Path):
    args = command(gateway_binary, listen="127.0.0.1:0", service=f"127.0.0.1:{free_port()}",
                   triton=f"127.0.0.1:{triton_port}", max_message_bytes=64 << 20,
                   infer_timeout_s=30, drift_samples_per_s=0, coalesce_in_flight=1,
                   embedded=embedded)
    with open(log, "wb") as out:
        process = spawn(args, TOKEN, out, embedded)  # the token on stdin, as the service passes it
    deadline = time.monotonic() + 120
    while "listening on" not in log.read_text(errors="replace"):
        assert process.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.05)
    return process


def test_triton_in_gateway_serves_onnx_like_onnxruntime(triton_venv, gateway_binary, tmp_path):
    repository = tmp_path / "models"
    onnx_bytes = mlp_onnx(seed=3)
    write_mlp_entry(repository, "mlp", onnx_bytes)
    embedded = EmbeddedTriton(TritonPaths.from_install(triton_venv, repository), tmp_path / "pid")
    triton_port = free_port()
    log = tmp_path / "gateway.log"
    process = _start(gateway_binary, embedded, triton_port, log)
    try:
        assert "Triton in this process" in log.read_text()
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{triton_port}")
        # Only the service, with the gateway's token, reaches this Triton.
        for headers in (None, {"authorization": "Bearer wrong"}):
            with pytest.raises(InferenceServerException) as refused:
                client.load_model("mlp", headers=headers)
            assert refused.value.status() == "StatusCode.UNAUTHENTICATED", refused.value
        assert client.is_server_live(headers=AUTH) and client.is_server_ready(headers=AUTH)
        assert not client.is_model_ready("mlp", headers=AUTH)
        client.load_model("mlp", headers=AUTH, client_timeout=60)
        assert client.is_model_ready("mlp", headers=AUTH)

        session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(1).normal(size=(32, N_FEATURES)).astype(np.float32)
        inp = grpcclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        outputs = [grpcclient.InferRequestedOutput(n) for n in ("label", "probabilities")]
        result = client.infer("mlp", [inp], outputs=outputs, headers=AUTH)
        expected_probabilities, expected_label = session.run(None, {"x": x})
        assert np.allclose(result.as_numpy("probabilities"), expected_probabilities, rtol=1e-5, atol=1e-6)
        assert result.as_numpy("label").reshape(-1).tolist() == expected_label.tolist()

        # Concurrent requests of mixed sizes: each gets its own rows back (the embedded server
        # answers every in-flight request from Triton's threads).
        check_concurrent_mixed_sizes(client, "mlp", session, copies=8, headers=AUTH)

        stubs = live_children(process.pid)

        # Triton's own refusals keep their codes; the server stays up.
        bad = grpcclient.InferInput("nope", list(x.shape), "FP32")
        bad.set_data_from_numpy(x)
        with pytest.raises(InferenceServerException) as refused:
            client.infer("mlp", [bad], headers=AUTH)
        assert refused.value.status() == "StatusCode.INVALID_ARGUMENT", refused.value
        with pytest.raises(InferenceServerException) as unknown:
            client.infer("other", [inp], headers=AUTH)
        assert unknown.value.status() == "StatusCode.NOT_FOUND", unknown.value
        # Only what the service calls is served: no repository index, no shared memory.
        for call in (client.get_model_repository_index, client.get_system_shared_memory_status):
            with pytest.raises(InferenceServerException) as refused:
                call(headers=AUTH)
            assert refused.value.status() == "StatusCode.UNIMPLEMENTED", refused.value
        with pytest.raises(InferenceServerException) as refused:
            client.load_model("mlp", config='{"max_batch_size": 8}', headers=AUTH)
        assert refused.value.status() == "StatusCode.INVALID_ARGUMENT", refused.value

        client.unload_model("mlp", headers=AUTH)
        deadline = time.monotonic() + 30
        while client.is_model_ready("mlp", headers=AUTH):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.is_server_live(headers=AUTH)
        client.close()
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    assert code == 0, log.read_text()[-3000:]
    assert re.search(r"stopped", log.read_text())
    assert stubs  # the model ran in a Python-backend stub, a child of the gateway ...
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # ... which Triton ended when it stopped
    assert not list(Path("/dev/shm").glob(embedded.shm_prefix + "*"))

