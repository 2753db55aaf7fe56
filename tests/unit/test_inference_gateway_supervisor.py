"""How the service starts beamops-gateway: its command line, its environment (the token, no
beamops secrets), the addresses, and the settings that drive them."""

from __future__ import annotations

from pathlib import Path

import pytest

from beamops.inference.gateway.supervisor import (
    TOKEN_ENV, EmbeddedTriton, GatewayTls, command, environment, local_address,
    missing_binary_message,
)
from beamops.inference.server import check_gateway_settings
from beamops.inference.settings import DEFAULT_GATEWAY_BINARY, InferenceSettings
from beamops.inference.triton.bundled import TritonPaths

ROOT = Path(__file__).resolve().parents[2]


def test_command_line_has_every_flag_of_the_design():
    args = command(Path("/opt/beamops-gateway"), listen="0.0.0.0:50055", service="127.0.0.1:50054",
                   triton="127.0.0.1:8001", max_message_bytes=64 << 20, infer_timeout_s=30.0,
                   drift_samples_per_s=200, coalesce_in_flight=2)
    assert args[0] == "/opt/beamops-gateway"
    assert args[-1] == "--exit-with-parent"  # no orphan gateway serving after the service died
    flags = dict(zip(args[1:-1:2], args[2:-1:2]))
    assert flags == {"--listen": "0.0.0.0:50055", "--service": "127.0.0.1:50054",
                     "--triton": "127.0.0.1:8001", "--max-message-bytes": str(64 << 20),
                     "--infer-timeout": "30", "--drift-samples-per-s": "200",
                     "--coalesce-in-flight": "2"}
    assert "2.5" in command(Path("g"), listen="a:1", service="b:2", triton="c:3",
                            max_message_bytes=1, infer_timeout_s=2.5, drift_samples_per_s=0,
                            coalesce_in_flight=1)


def test_environment_has_no_token_and_no_beamops_settings():
    """The token goes on the gateway's stdin: its environment, which the processes its Triton
    starts inherit (model code), holds no credential."""
    env = environment({"PATH": "/usr/bin", "BEAMOPS_INFERENCE_REGISTRY_TOKEN": "bmo_x",
                       "BEAMOPS_GATEWAY_TOKEN": "stale"})
    assert env == {"PATH": "/usr/bin"} and TOKEN_ENV not in env


def _paths(library: Path | None) -> TritonPaths:
    return TritonPaths(venv=Path("/v"), backend_dir=Path("/v/backends"), model_repository=Path("/m"),
                       tritonserver=Path("/v/bin/tritonserver"),
                       library_path=(Path("/py/lib"), Path("/v/libs")), library=library)


def test_embedded_triton_flags_and_environment():
    embedded = EmbeddedTriton(_paths(Path("/v/libs/libtritonserver-1.so")), Path("/var/t.pid"))
    args = command(Path("g"), listen="a:1", service="b:2", triton="127.0.0.1:3",
                   max_message_bytes=1, infer_timeout_s=1, drift_samples_per_s=0,
                   coalesce_in_flight=1, embedded=embedded)
    flags = dict(zip(args[1:-1:2], args[2:-1:2]))
    assert flags["--triton-library"] == "/v/libs/libtritonserver-1.so"
    assert flags["--triton-repository"] == "/m" and flags["--triton-backends"] == "/v/backends"
    assert flags["--triton-backend-config"] == f"python,shm-region-prefix-name={embedded.shm_prefix}"
    assert embedded.shm_prefix != EmbeddedTriton(embedded.paths, Path("x")).shm_prefix
    # The stubs' environment (see triton.bundled.environment) on top of the gateway's own.
    env = environment({"PATH": "/usr/bin", "PYTHONPATH": "/platform", "BEAMOPS_INFERENCE_PORT": "1",
                       "BEAMOPS_INFERENCE_REGISTRY_TOKEN": "bmo_x"}, embedded=embedded)
    assert not [k for k in env if k.startswith("BEAMOPS_")]
    assert env["LD_LIBRARY_PATH"] == "/py/lib:/v/libs" and env["PATH"] == "/v/bin:/usr/bin"
    assert "PYTHONPATH" not in env and env["PYTHONNOUSERSITE"] == "1"
    with pytest.raises(FileNotFoundError, match="libtritonserver"):
        EmbeddedTriton(_paths(None), Path("/var/t.pid"))


def test_triton_runs_in_the_gateway_by_default():
    assert InferenceSettings().triton_in_gateway
    assert not InferenceSettings.load(["--triton-in-gateway", "false"]).triton_in_gateway


def test_local_address_reaches_wildcard_listeners_on_loopback():
    assert local_address("0.0.0.0", 50054) == "127.0.0.1:50054"
    assert local_address("", 1) == "127.0.0.1:1"
    assert local_address("10.1.2.3", 50055) == "10.1.2.3:50055"
    assert local_address("::1", 7) == "[::1]:7"


def test_gateway_settings_defaults():
    s = InferenceSettings(host="0.0.0.0")
    assert s.gateway_port == 0 and s.gateway_host == "0.0.0.0"
    assert s.gateway_auth_cache_s == 5.0 and s.gateway_drift_samples_per_s == 200
    assert s.resolved_gateway_binary == DEFAULT_GATEWAY_BINARY
    assert DEFAULT_GATEWAY_BINARY == ROOT / "services" / "inference" / "gateway" / "bin" / "beamops-gateway"
    s = InferenceSettings.load(["--gateway-port", "50055", "--gateway-host", "127.0.0.1",
                                "--gateway-binary", "/x/gw"])
    assert (s.gateway_port, s.gateway_host) == (50055, "127.0.0.1")
    assert s.resolved_gateway_binary == Path("/x/gw")
    for field, value in (("gateway_auth_cache_s", -1), ("gateway_drift_samples_per_s", -1)):
        with pytest.raises(ValueError, match=field):
            InferenceSettings(**{field: value})


def test_a_missing_binary_refuses_to_start_with_the_way_to_build_it(tmp_path):
    missing = tmp_path / "nope" / "beamops-gateway"
    with pytest.raises(FileNotFoundError) as error:
        check_gateway_settings(InferenceSettings(gateway_binary=str(missing)))
    assert "make gateway" in str(error.value) and str(missing) in str(error.value)
    assert "make gateway" in missing_binary_message(missing)


def test_with_tls_the_gateway_serves_the_services_certificate():
    args = command(Path("g"), listen="0.0.0.0:50055", service="127.0.0.1:41000", triton="t:1",
                   max_message_bytes=1, infer_timeout_s=1, drift_samples_per_s=1, coalesce_in_flight=1,
                   tls=GatewayTls(Path("/etc/b/cert.pem"), Path("/etc/b/key.pem"), Path("/etc/b/ca.pem")))
    flags = dict(zip(args[1:-1:2], args[2:-1:2]))
    assert (flags["--tls-cert"], flags["--tls-key"], flags["--tls-client-ca"]) == (
        "/etc/b/cert.pem", "/etc/b/key.pem", "/etc/b/ca.pem")
    plain = command(Path("g"), listen="a:1", service="b:2", triton="c:3", max_message_bytes=1,
                    infer_timeout_s=1, drift_samples_per_s=1, coalesce_in_flight=1)
    assert not any(a.startswith("--tls") for a in plain)


def test_a_gateway_left_behind_by_a_killed_service_is_stopped(tmp_path):
    import subprocess
    import sys

    from beamops.inference.gateway.supervisor import GatewaySupervisor

    binary = tmp_path / "beamops-gateway"
    binary.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
    binary.chmod(0o755)
    other = tmp_path / "other-program"
    other.write_text(binary.read_text())
    other.chmod(0o755)
    run_dir = tmp_path / "gateway"
    run_dir.mkdir()
    supervisor = GatewaySupervisor(binary, run_dir, host="127.0.0.1", port=0, service="s:1",
                                   triton="t:2", token="x", max_message_bytes=1,
                                   infer_timeout_s=1, drift_samples_per_s=1, coalesce_in_flight=1)
    leftover = subprocess.Popen([str(binary)])
    unrelated = subprocess.Popen([str(other)])
    try:
        (run_dir / "gateway.pid").write_text(str(unrelated.pid))
        assert supervisor.stop_leftover() is False  # another program: left alone
        assert unrelated.poll() is None
        (run_dir / "gateway.pid").write_text(str(leftover.pid))
        assert supervisor.stop_leftover() is True
        assert leftover.wait(5) == -15  # SIGTERM
        assert not (run_dir / "gateway.pid").exists()
        assert supervisor.stop_leftover() is False  # nothing left
    finally:
        for process in (leftover, unrelated):
            process.kill()
            process.wait()
