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
    with_retry = [c for c in config["methodConfig"] if "retryPolicy" in c]
    retried = {n["method"] for c in with_retry for n in c["name"]}
    assert "GetModel" in retried and "ResolveAlias" in retried and "DownloadArtifact" in retried
    assert "CreateParametersVersion" not in retried and "SetAlias" not in retried
    assert all(c["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"] for c in with_retry)


def test_unary_calls_have_deadlines_and_reads_wait_for_a_restarting_service():
    config = json.loads(service_config("registry"))
    by_method = {n["method"]: c for c in config["methodConfig"] for n in c["name"]}
    assert len(by_method) == sum(len(c["name"]) for c in config["methodConfig"])  # each method once
    for method in ("GetModel", "ResolveAlias", "CreateParametersVersion", "SetAlias"):
        assert by_method[method]["timeout"] == "30.0s", method
    assert by_method["ResolveAlias"]["waitForReady"] is True
    assert "waitForReady" not in by_method["CreateParametersVersion"]  # writes fail fast
    assert "timeout" not in by_method["DownloadArtifact"] and "UploadArtifact" not in by_method  # streams
