"""compose.yaml agrees with the code: Dockerfiles exist, variables are settings, ports are defaults.

No Docker engine runs here, so this is how the file stays true.
"""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = ["registry", "data", "training", "inference"]
AWS_CREDENTIALS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}


def settings_class(name: str):
    module = importlib.import_module(f"beamops.{name}.settings")
    return getattr(module, f"{name.capitalize()}Settings")


def test_every_beamops_service_is_in_compose():
    assert set(SERVICES) <= set(COMPOSE["services"])


@pytest.mark.parametrize("name,entry", [(n, e) for n, e in COMPOSE["services"].items() if "build" in e])
def test_build_contexts_and_dockerfiles_exist(name, entry):
    context = ROOT / entry["build"]["context"]
    assert context.is_dir()
    assert (context / entry["build"]["dockerfile"]).is_file()


@pytest.mark.parametrize("name", SERVICES)
def test_environment_variables_are_settings_the_service_reads(name):
    settings = settings_class(name)
    prefix = settings.model_config["env_prefix"]
    environment = COMPOSE["services"][name]["environment"]
    for key in environment:
        if key in AWS_CREDENTIALS:  # boto3 reads these itself (registry's S3 artifact store)
            assert name == "registry" and environment["BEAMOPS_REGISTRY_ARTIFACT_STORE"].startswith("s3://")
            continue
        assert key.startswith(prefix), f"{name}: {key} does not start with {prefix}"
        field = key[len(prefix):].lower()
        assert field in settings.model_fields, f"{name}: {key} is not a setting of {settings.__name__}"


@pytest.mark.parametrize("name", SERVICES)
def test_ports_agree_with_defaults(name):
    default = settings_class(name).model_fields["port"].default
    entry = COMPOSE["services"][name]
    prefix = settings_class(name).model_config["env_prefix"]
    assert int(entry["environment"][f"{prefix}PORT"]) == default
    dockerfile = (ROOT / entry["build"]["dockerfile"]).read_text()
    assert f"{prefix}PORT={default}" in dockerfile
    published = [p.split("#")[0].strip().split(":")[1] for p in entry["ports"]]
    if name == "inference":  # and its gateway, which the health check goes through
        from beamops.runtime.stack import GATEWAY_HTTP_PORT, GATEWAY_PORT

        assert int(entry["environment"][f"{prefix}GATEWAY_PORT"]) == GATEWAY_PORT
        assert int(entry["environment"][f"{prefix}GATEWAY_HTTP_PORT"]) == GATEWAY_HTTP_PORT
        assert f"{prefix}GATEWAY_PORT={GATEWAY_PORT}" in dockerfile
        assert f"{prefix}GATEWAY_HTTP_PORT={GATEWAY_HTTP_PORT}" in dockerfile
        assert "COPY --from=gateway" in dockerfile
        assert published == [str(default), str(GATEWAY_PORT), str(GATEWAY_HTTP_PORT)]
        assert str(GATEWAY_PORT) in entry["healthcheck"]["test"]
        return
    assert published == [str(default)]
    assert str(default) in entry["healthcheck"]["test"]


@pytest.mark.parametrize("name", SERVICES)
def test_dockerfile_runs_the_installed_command(name):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    dockerfile = (ROOT / COMPOSE["services"][name]["build"]["dockerfile"]).read_text()
    assert f'CMD ["beamops-{name}"]' in dockerfile
    assert f"beamops-{name}" in scripts


def test_dependencies_name_existing_services():
    for name, entry in COMPOSE["services"].items():
        for dependency in entry.get("depends_on", []):
            assert dependency in COMPOSE["services"], f"{name} depends on unknown {dependency}"


def test_shared_tokens_file_is_on_a_volume_every_service_mounts():
    for name in SERVICES:
        entry = COMPOSE["services"][name]
        tokens = entry["environment"][f"BEAMOPS_{name.upper()}_TOKENS_FILE"]
        mounts = [v.split(":")[1] for v in entry["volumes"]]
        assert any(tokens.startswith(m + "/") for m in mounts), name


def test_registry_keeps_artifacts_in_the_bucket_compose_creates():
    from beamops.registry.s3_location import S3Location
    from beamops.registry.settings import RegistrySettings

    environment = COMPOSE["services"]["registry"]["environment"]
    settings = RegistrySettings(artifact_store=environment["BEAMOPS_REGISTRY_ARTIFACT_STORE"],
                                s3_endpoint_url=environment["BEAMOPS_REGISTRY_S3_ENDPOINT_URL"])
    bucket = S3Location.parse(settings.artifact_store).bucket
    creator = COMPOSE["services"]["minio-buckets"]
    assert f"local/{bucket}" in " ".join(creator["command"])
    assert COMPOSE["services"]["registry"]["depends_on"]["minio-buckets"] == {
        "condition": "service_completed_successfully"}
    minio = COMPOSE["services"]["minio"]["environment"]
    assert (environment["AWS_ACCESS_KEY_ID"], environment["AWS_SECRET_ACCESS_KEY"]) == (
        minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"])
