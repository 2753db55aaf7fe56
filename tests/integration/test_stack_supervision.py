"""`make up`'s supervisor: a SIGKILLed service (the inference service, the data service) is started
again with no one running `make up`; `status` shows the restart and the last exit; `down` stops
the supervisor first and leaves no process behind; a stale supervisor pid file (a reboot reused
the pid) is not taken for the supervisor. Every wait is a bounded poll; nothing asserts on time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from beamops.health import health_status
from beamops.inference.v1 import inference_service_pb2 as inference_pb, inference_service_pb2_grpc
from beamops.registry.v1 import registry_service_pb2 as registry_pb, registry_service_pb2_grpc
from beamops.runtime.stack import GATEWAY_PORT, SERVICES

PORTS = {s.name: s.port for s in SERVICES}


def gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "zombie" in status.read_text().lower()
    except OSError:
        return True


def pid_of(var: Path, name: str) -> int:
    return int((var / "run" / f"{name}.pid").read_text())


def wait_for(predicate, what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s  # a bound on the wait, not something asserted
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.2)


def restarted(var: Path, name: str, old: int, offset: int) -> bool:
    try:
        pid = pid_of(var, name)
    except (OSError, ValueError):
        return False
    return pid != old and not gone(pid) and health_status(f"127.0.0.1:{PORTS[name] + offset}") == "SERVING"


def status_of(command, env) -> subprocess.CompletedProcess:
    return subprocess.run([*command, "status"], env=env, capture_output=True, text=True, timeout=60)


def row(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(f"{name} "))


def test_killed_services_are_restarted_status_shows_it_and_down_leaves_nothing(stack):
    offset, tmp_path, _, command, env = stack
    var = tmp_path / "var"
    supervisor = int((var / "run" / "supervisor.pid").read_text())
    before = status_of(command, env)
    assert before.returncode == 0, before.stdout + before.stderr
    assert f"supervisor: running (pid {supervisor})" in before.stdout
    assert row(before.stdout, "inference").split()[3] == "0"

    killed = {name: pid_of(var, name) for name in ("inference", "data")}
    for pid in killed.values():
        os.kill(pid, signal.SIGKILL)
    for name, old in killed.items():
        wait_for(lambda n=name, o=old: restarted(var, n, o, offset), f"{name} SERVING again with a new pid")
    wait_for(lambda: health_status(f"127.0.0.1:{GATEWAY_PORT + offset}") == "SERVING", "the gateway back")

    # The restarted inference service and its new gateway answer an authenticated call: Predict
    # for a deployment that does not exist is NOT_FOUND (not UNAVAILABLE, not UNAUTHENTICATED).
    token = json.loads((tmp_path / "config.json").read_text())["token"]
    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(f"127.0.0.1:{GATEWAY_PORT + offset}") as channel:
        stub = inference_service_pb2_grpc.InferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as predicted:
            stub.Predict(inference_pb.PredictRequest(deployment="no-such-deployment"), timeout=30,
                         metadata=metadata)
        assert predicted.value.code() == grpc.StatusCode.NOT_FOUND, predicted.value.details()
    # The registry, not killed, is the same process and still answers.
    with grpc.insecure_channel(f"127.0.0.1:{PORTS['registry'] + offset}") as channel:
        stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        with pytest.raises(grpc.RpcError) as looked_up:
            stub.GetModel(registry_pb.GetModelRequest(name="x"), timeout=10, metadata=metadata)
        assert looked_up.value.code() == grpc.StatusCode.NOT_FOUND

    after = status_of(command, env)
    assert after.returncode == 0, after.stdout + after.stderr
    assert after.stdout.count("SERVING") == 5
    for name in ("inference", "data"):
        line = row(after.stdout, name)
        assert line.split()[3] == "1" and "killed by SIGKILL" in line, line
    assert row(after.stdout, "registry").split()[3] == "0"
    state = json.loads((var / "run" / "supervisor.json").read_text())
    assert state["supervisor_pid"] == supervisor
    for name, old in killed.items():
        record = state["services"][name]
        assert (record["restarts"], record["last_exit"], record["last_exit_pid"]) == (1, "killed by SIGKILL", old)
        assert record["pid"] == pid_of(var, name) and record["state"] == "running"
    log = (var / "log" / "supervisor.log").read_text()
    assert f"inference (pid {killed['inference']}) killed by SIGKILL" in log
    assert "inference restarted" in log and "data restarted" in log

    # A second `up` keeps the supervisor and the restarted services.
    again = subprocess.run([*command, "up"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert int((var / "run" / "supervisor.pid").read_text()) == supervisor
    assert all(pid_of(var, name) != old for name, old in killed.items())

    # `down`: the supervisor first (nothing restarted), then every service, its gateway, its Triton.
    inference = var / "inference"
    pids = [supervisor, *(pid_of(var, s.name) for s in SERVICES),
            int((inference / "gateway" / "gateway.pid").read_text()),
            int((inference / "triton" / "tritonserver.pid").read_text())]
    down = subprocess.run([*command, "down"], env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "stopped the supervisor" in down.stdout
    for pid in pids:
        assert gone(pid), pid
    for service in SERVICES:
        assert health_status(f"127.0.0.1:{service.port + offset}") == "DOWN"
    final = status_of(command, env)
    assert final.returncode == 1 and "supervisor: not running" in final.stdout


def test_a_stale_supervisor_pid_file_is_not_the_supervisor_and_up_supervises_again(stack):
    offset, tmp_path, _, command, env = stack
    var = tmp_path / "var"
    pid_file = var / "run" / "supervisor.pid"
    first = int(pid_file.read_text())
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: gone(first), "the supervisor gone")
    other = subprocess.Popen(["sleep", "600"])  # as after a reboot: the pid is now another program's
    try:
        pid_file.write_text(str(other.pid))
        unsupervised = status_of(command, env)
        assert unsupervised.returncode == 1
        assert "ALERT: the supervisor is not running" in unsupervised.stdout
        assert unsupervised.stdout.count("SERVING") == 5  # the services themselves still run

        services = {s.name: pid_of(var, s.name) for s in SERVICES}
        up = subprocess.run([*command, "up"], env=env, capture_output=True, text=True, timeout=120)
        assert up.returncode == 0, up.stdout + up.stderr
        assert other.poll() is None  # not taken for the supervisor: left alone
    finally:
        other.kill()
        other.wait()
    second = int(pid_file.read_text())
    assert second not in (first, other.pid) and not gone(second)
    assert {s.name: pid_of(var, s.name) for s in SERVICES} == services  # adopted, not started again
    assert "already runs" in (var / "log" / "supervisor.log").read_text()

    # The new supervisor restarts an adopted service too (it has no exit status for it).
    os.kill(services["registry"], signal.SIGKILL)
    wait_for(lambda: restarted(var, "registry", services["registry"], offset), "registry SERVING again")
    wait_for(lambda: "status unknown" in row(status_of(command, env).stdout, "registry"),
             "status showing the registry's restart")
    assert row(status_of(command, env).stdout, "registry").split()[3] == "1"


FAKE_SUPERVISOR = """
import subprocess, sys
from pathlib import Path
from beamops.runtime.stack import Stack
from beamops.runtime.supervisor import RestartPolicy

class Fake(Stack):  # the real supervisor loop over stand-ins: training exits at once, always
    def _start(self, service):
        code = "raise SystemExit(4)" if service.name == "training" else "import time; time.sleep(600)"
        process = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.DEVNULL)
        self._pid_file(service).write_text(str(process.pid))
        return process.pid

Fake(Path(sys.argv[1]), int(sys.argv[2])).supervise(RestartPolicy(first_delay_s=0.1, give_up_after=3))
"""


def test_a_crash_loop_is_given_up_on_with_an_alert_and_sigterm_stops_only_the_supervisor(tmp_path, capsys):
    import sys

    from beamops.runtime.stack import Stack
    from tests.fixtures.stack import free_offset

    var, offset = tmp_path / "var", free_offset()
    stack = Stack(var, offset)
    stack.run_dir.mkdir(parents=True)
    # Its command line names beamops.runtime.stack and supervise, as `up`'s does: `status` takes it for the supervisor.
    supervisor = subprocess.Popen([sys.executable, "-c", FAKE_SUPERVISOR, str(var), str(offset),
                                   "beamops.runtime.stack", "supervise"], stdout=subprocess.PIPE, text=True)
    stack.supervisor_pid_file.write_text(str(supervisor.pid))
    started: list[int] = []
    try:
        def training_gave_up() -> bool:
            try:
                state = json.loads(stack.state_file.read_text())
            except (OSError, ValueError):
                return False
            return state["services"]["training"]["state"] == "gave up"

        wait_for(training_gave_up, "the supervisor giving up on training", timeout_s=60)
        state = json.loads(stack.state_file.read_text())
        started = [state["services"][name]["pid"] for name in ("registry", "data", "inference")]
        training = state["services"]["training"]
        assert (training["restarts"], training["last_exit"], training["pid"]) == (2, "exit code 4", None)
        assert all(state["services"][name]["restarts"] == 0 for name in ("registry", "data", "inference"))

        assert stack.status() is False
        shown = capsys.readouterr().out
        assert "ALERT: the supervisor gave up on training" in shown
        assert "exit code 4" in row(shown, "training") and "GAVE UP" in row(shown, "training")

        supervisor.send_signal(signal.SIGTERM)
        log = supervisor.communicate(timeout=30)[0]
        assert supervisor.returncode == 0
        assert "ALERT: training (pid" in log and "gave up on training" in log
        assert log.count("training restarted") == 2
        assert not any(gone(pid) for pid in started)  # SIGTERM stops restarting; `down` stops the services
        assert json.loads(stack.state_file.read_text())["running"] is False
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        for pid in started:
            os.kill(pid, signal.SIGKILL)
