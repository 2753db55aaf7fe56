"""Connection settings: arguments, then environment, then `make up`'s config file, then defaults."""

from __future__ import annotations

import json

from beamops.channels import service_config
from beamops.config import Connection


def test_precedence(tmp_path, monkeypatch):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"token": "from-file", "registry_address": "file:1", "data_address": "file:2"}))
    monkeypatch.setenv("BEAMOPS_CONFIG", str(config))
    monkeypatch.delenv("BEAMOPS_TOKEN", raising=False)
    monkeypatch.setenv("BEAMOPS_DATA_ADDRESS", "env:2")
    connection = Connection.resolve(registry_address=None)
    assert connection.token == "from-file"
    assert connection.registry_address == "file:1"
    assert connection.data_address == "env:2"
    assert connection.inference_address == "127.0.0.1:50054"
    monkeypatch.setenv("BEAMOPS_TOKEN", "from-env")
    assert Connection.resolve().token == "from-env"
    assert Connection.resolve("from-arg", data_address="arg:2").data_address == "arg:2"
    assert Connection.resolve("from-arg").token == "from-arg"


def test_missing_config_file_gives_localhost_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("BEAMOPS_CONFIG", str(tmp_path / "absent.json"))
    monkeypatch.delenv("BEAMOPS_TOKEN", raising=False)
    monkeypatch.delenv("BEAMOPS_REGISTRY_ADDRESS", raising=False)
    connection = Connection.resolve()
    assert connection.token is None and connection.registry_address == "127.0.0.1:50051"


def test_only_calls_without_side_effects_are_retried():
    config = json.loads(service_config("registry"))
    retried = {n["method"] for n in config["methodConfig"][0]["name"]}
    assert "GetModel" in retried and "ResolveAlias" in retried and "DownloadArtifact" in retried
    assert "CreateParametersVersion" not in retried and "SetAlias" not in retried
    assert config["methodConfig"][0]["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
