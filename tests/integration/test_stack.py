"""`make up` / `make down`: four services and the inference gateway SERVING, reflection, the admin
token, nothing left behind."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from beamops.registry.v1 import registry_service_pb2 as pb, registry_service_pb2_grpc
from beamops.health import health_status
from beamops.runtime.stack import GATEWAY_PORT, SERVICES


def test_up_starts_four_serving_services_with_reflection_and_a_token(stack):
    offset, tmp_path, output, command, env = stack
    for service in SERVICES:
        assert health_status(f"127.0.0.1:{service.port + offset}") == "SERVING", service.name
    assert health_status(f"127.0.0.1:{GATEWAY_PORT + offset}") == "SERVING"
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["token"] in output
    assert config["registry_address"] == f"127.0.0.1:{50051 + offset}"
    assert config["inference_address"] == f"127.0.0.1:{GATEWAY_PORT + offset}"  # through the gateway
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == 0o600

    with grpc.insecure_channel(config["registry_address"]) as channel:
        names = set(ProtoReflectionDescriptorDatabase(channel).get_services())
        assert {"beamops.registry.v1.RegistryService", "grpc.health.v1.Health"} <= names
        stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        with pytest.raises(grpc.RpcError) as anonymous:
            stub.GetModel(pb.GetModelRequest(name="x"), timeout=5)
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as admitted:
            stub.GetModel(pb.GetModelRequest(name="x"), timeout=5,
                          metadata=(("authorization", f"Bearer {config['token']}"),))
        assert admitted.value.code() not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)

    # A second `up` keeps the running services and the same token.
    again = subprocess.run([*command, "up"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and config["token"] in again.stdout

    status = subprocess.run([*command, "status"], env=env, capture_output=True, text=True)
    assert status.returncode == 0 and status.stdout.count("SERVING") == 5


def test_down_leaves_nothing_running(stack):
    offset, tmp_path, _, command, env = stack
    pids = [int(p.read_text()) for p in (tmp_path / "var" / "run").glob("*.pid")]
    assert len(pids) == 5  # the four services and their supervisor
    # And what the inference service started: the bundled Triton and the gateway (called right
    # after `up`, so a stop that races the service's start is covered too).
    inference = tmp_path / "var" / "inference"
    pids += [int((inference / "triton" / "tritonserver.pid").read_text()),
             int((inference / "gateway" / "gateway.pid").read_text())]
    down = subprocess.run([*command, "down"], env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 0
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    for service in SERVICES:
        assert health_status(f"127.0.0.1:{service.port + offset}") == "DOWN"
    assert health_status(f"127.0.0.1:{GATEWAY_PORT + offset}") == "DOWN"  # stopped with its service
    status = subprocess.run([*command, "status"], env=env, capture_output=True, text=True)
    assert status.returncode == 1


def test_a_killed_inference_service_takes_its_gateway_along_and_comes_back_with_everything(stack):
    import os
    import signal
    import time

    offset, tmp_path, _, command, env = stack
    var = tmp_path / "var"
    service_pid = int((var / "run" / "inference.pid").read_text())
    gateway_pid = int((var / "inference" / "gateway" / "gateway.pid").read_text())
    triton_pid = int((var / "inference" / "triton" / "tritonserver.pid").read_text())
    os.kill(service_pid, signal.SIGKILL)
    for _ in range(200):  # bounded: ~20 s
        if not Path(f"/proc/{gateway_pid}").exists() or "zombie" in Path(
                f"/proc/{gateway_pid}/status").read_text().lower():
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the gateway kept running after its service was killed")
    # The supervisor restarts the service (tests/integration/test_stack_supervision.py); `up`
    # meanwhile waits for it, with no second copy started.
    again = subprocess.run([*command, "up"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert health_status(f"127.0.0.1:{GATEWAY_PORT + offset}") == "SERVING"
    assert int((var / "inference" / "gateway" / "gateway.pid").read_text()) != gateway_pid
    # The Triton the killed service left behind was stopped by the new one, not left running.
    assert not Path(f"/proc/{triton_pid}").exists() or "zombie" in Path(
        f"/proc/{triton_pid}/status").read_text().lower()
    assert int((var / "inference" / "triton" / "tritonserver.pid").read_text()) != triton_pid
