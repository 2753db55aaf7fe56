"""SIGTERM: health turns NOT_SERVING, in-flight calls finish, the process exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from beamops.registry.v1 import registry_service_pb2 as pb, registry_service_pb2_grpc
from beamops.health import health_status

from tests.fixtures.services import free_port, wait_for_health

ROOT = Path(__file__).resolve().parents[2]


def start(module: str, port: int, env_prefix: str, tmp_path: Path, tokens_path: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.update({
        f"{env_prefix}PORT": str(port),
        f"{env_prefix}VAR_DIR": str(tmp_path / "var"),
        f"{env_prefix}TOKENS_FILE": str(tokens_path),
        f"{env_prefix}DRAIN_S": "1.5",
        f"{env_prefix}LOG_JSON": "false",
    })
    process = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env)
    wait_for_health(port)
    return process


def test_in_flight_call_finishes_and_health_reports_not_serving(tmp_path, tokens):
    port = free_port()
    process = start("tests.fakes.scripted_registry", port, "BEAMOPS_", tmp_path, tokens.path)
    try:
        outcome = {}

        def slow_call():
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
                outcome["reply"] = stub.GetModel(
                    pb.GetModelRequest(name="slow-2.5"), metadata=tokens.metadata("reader"), timeout=20
                )

        caller = threading.Thread(target=slow_call)
        caller.start()
        time.sleep(0.5)  # the call is now in flight
        process.send_signal(signal.SIGTERM)
        wait_for_health(port, want="NOT_SERVING", timeout=5)
        caller.join(timeout=20)
        assert outcome["reply"].model.name == "slow-2.5"
        assert process.wait(timeout=20) == 0
        assert health_status(f"127.0.0.1:{port}") == "DOWN"
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize("service", ["registry", "data", "training", "inference"])
def test_each_service_stops_cleanly_on_sigterm(service, tmp_path, tokens):
    port = free_port()
    process = start(f"beamops.{service}.server", port, f"BEAMOPS_{service.upper()}_", tmp_path, tokens.path)
    try:
        process.send_signal(signal.SIGTERM)
        wait_for_health(port, want="NOT_SERVING", timeout=5)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
