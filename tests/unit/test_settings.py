"""Settings: per-service prefix, flags over environment over defaults, read only when asked."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from beamops.registry.settings import RegistrySettings
from beamops.inference.settings import InferenceSettings


def test_environment_uses_the_service_prefix(monkeypatch):
    monkeypatch.setenv("BEAMOPS_REGISTRY_PORT", "6000")
    monkeypatch.setenv("BEAMOPS_INFERENCE_PORT", "7000")
    assert RegistrySettings.load([]).port == 6000
    assert InferenceSettings.load([]).port == 7000


def test_flags_win_over_environment(monkeypatch):
    monkeypatch.setenv("BEAMOPS_REGISTRY_PORT", "6000")
    settings = RegistrySettings.load(["--port", "6001", "--auth-enabled", "false"])
    assert settings.port == 6001 and settings.auth_enabled is False


def test_defaults_are_the_documented_ports_and_auth_is_on():
    assert RegistrySettings.load([]).port == 50051
    assert InferenceSettings.load([]).port == 50054
    assert RegistrySettings.load([]).auth_enabled is True


def test_tokens_file_defaults_under_var_dir(tmp_path):
    settings = RegistrySettings.load(["--var-dir", str(tmp_path)])
    assert settings.tokens_path == tmp_path / "auth" / "tokens.json"


def test_bad_values_are_refused(monkeypatch):
    monkeypatch.setenv("BEAMOPS_REGISTRY_PORT", "not-a-port")
    with pytest.raises(ValidationError):
        RegistrySettings.load([])


@pytest.mark.parametrize("service", ["registry", "data", "training", "inference"])
def test_importing_a_service_reads_no_environment(service):
    env = dict(os.environ, **{f"BEAMOPS_{service.upper()}_PORT": "not-a-port"})
    code = f"import beamops.{service}.server"  # would fail if settings were read at import
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
