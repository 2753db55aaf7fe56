"""The bundled Triton (nvidia-pytriton's tritonserver, CPU, Python backend) serves an ONNX MLP
through triton/model/model.py with the same outputs as ONNX Runtime in this process."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from beamops.inference.triton.bundled import BundledTriton, TritonPaths

from tests.fixtures.inference import N_CLASSES, N_FEATURES, mlp_onnx
from tests.fixtures.triton import check_concurrent_mixed_sizes, write_mlp_entry

# Answers with the stub's sys.prefix and numpy version: proves model.py runs in .venv-triton.
PROBE_MODEL_PY = '''
import sys
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        info = np.array([sys.prefix, np.__version__], dtype=object)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("info", info)]) for _ in requests]
'''


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_bundled_triton_serves_onnx_like_onnxruntime(triton_venv: Path, tmp_path: Path) -> None:
    repository = tmp_path / "models"
    onnx_bytes = mlp_onnx()

    write_mlp_entry(repository, "mlp", onnx_bytes)
    probe = repository / "probe"
    (probe / "1").mkdir(parents=True)
    (probe / "1" / "model.py").write_text(PROBE_MODEL_PY)
    (probe / "config.pbtxt").write_text(
        'name: "probe"\nbackend: "python"\nmax_batch_size: 0\n'
        'input [ { name: "in" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
        'output [ { name: "info" data_type: TYPE_STRING dims: [ 2 ] } ]\n'
        "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
    )

    paths = TritonPaths.from_install(triton_venv, repository)
    grpc_port, http_port, metrics_port = _free_ports(3)
    triton = BundledTriton(
        paths, grpc_port, http_port, metrics_port, log_path=tmp_path / "tritonserver.log"
    )
    triton.start()
    try:
        triton.wait_ready(timeout=120)
        pid = triton.pid
        client = grpcclient.InferenceServerClient(triton.grpc_url)
        assert client.is_server_ready()

        client.load_model("probe", client_timeout=60)
        request = grpcclient.InferInput("in", [1], "FP32")
        request.set_data_from_numpy(np.zeros(1, np.float32))
        prefix, numpy_version = client.infer("probe", [request]).as_numpy("info")
        assert Path(prefix.decode()).resolve() == triton_venv.resolve()
        assert int(numpy_version.decode().split(".")[0]) < 2

        client.load_model("mlp", client_timeout=60)
        assert client.is_model_ready("mlp")
        x = np.random.default_rng(1).normal(size=(32, N_FEATURES)).astype(np.float32)
        inp = grpcclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        outputs = [grpcclient.InferRequestedOutput(n) for n in ("probabilities", "label")]
        result = client.infer("mlp", [inp], outputs=outputs)

        session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        expected_probabilities, expected_label = session.run(None, {"x": x})
        probabilities = result.as_numpy("probabilities")
        label = result.as_numpy("label")
        assert probabilities.shape == (32, N_CLASSES)
        assert np.allclose(probabilities, expected_probabilities, rtol=1e-5, atol=1e-6)
        assert label.reshape(-1).tolist() == expected_label.tolist()

        # Concurrent requests of different sizes, merged by the dynamic batcher into one
        # model.py execute, each get their own rows back.
        check_concurrent_mixed_sizes(client, "mlp", session, copies=4)
        stats = client.get_inference_statistics("mlp").model_stats[0]
        assert stats.execution_count < stats.inference_count

        # A wrong input name is refused by Triton with an error, and the server stays up.
        bad = grpcclient.InferInput("nope", list(x.shape), "FP32")
        bad.set_data_from_numpy(x)
        with pytest.raises(InferenceServerException):
            client.infer("mlp", [bad])
        assert client.is_server_live()
        client.close()
    finally:
        triton.stop()

    assert not triton.is_running()
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # neither tritonserver nor any stub is left in its process group
    assert not list(Path("/dev/shm").glob(triton.shm_prefix + "*"))
