"""compose.yaml agrees with the code: Dockerfiles exist, variables are settings, ports are defaults;
and it publishes only what is meant to be reachable (docs/security.md, threat 13): beamops' own
authenticated ports, on 127.0.0.1 unless BEAMOPS_BIND says otherwise; the internal parts on an
internal network; no secret written in the file; Dask with TLS, its own certificates, and its own
data token.

No Docker engine runs here, so this is how the file stays true.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "compose.yaml").read_text()
COMPOSE = yaml.safe_load(TEXT)
SERVICES = ["registry", "data", "training", "inference"]
AWS_CREDENTIALS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}
# Parts without authentication of their own (or with the cluster's credentials only): never published.
INTERNAL_PARTS = ["postgres", "minio", "minio-buckets", "triton", "dask-scheduler", "dask-worker"]
PUBLISHED = re.compile(r"\$\{BEAMOPS_BIND:-127\.0\.0\.1\}:(\d+):(\d+)")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN", re.IGNORECASE)
REQUIRED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?[^}]+\}")  # ${NAME:?message}: no default
DASK_TLS = "/var/lib/beamops/dask-tls"


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
    published = [PUBLISHED.fullmatch(p).group(1) for p in entry["ports"]]
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
    assert (variable(environment["AWS_ACCESS_KEY_ID"]), variable(environment["AWS_SECRET_ACCESS_KEY"])) == (
        variable(minio["MINIO_ROOT_USER"]), variable(minio["MINIO_ROOT_PASSWORD"])) == (
        "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD")
    creator_env = creator["environment"]
    assert (variable(creator_env["MINIO_ROOT_USER"]), variable(creator_env["MINIO_ROOT_PASSWORD"])) == (
        "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD")
    assert '"$$MINIO_ROOT_USER" "$$MINIO_ROOT_PASSWORD"' in " ".join(creator["command"])


def variable(value: str) -> str:
    """The variable a required reference (``${NAME:?message}``) names."""
    match = REQUIRED.fullmatch(value)
    assert match, f"{value!r} is not a required variable (${{NAME:?message}})"
    return match.group(1)


def networks_of(name: str) -> list[str]:
    entry = COMPOSE["services"][name]
    networks = entry.get("networks")
    return list(networks) if networks is not None else ([] if "network_mode" in entry else ["default"])


def internal_networks() -> set[str]:
    return {n for n, spec in (COMPOSE.get("networks") or {}).items() if (spec or {}).get("internal") is True}


# ---------------------------------------------------------------- threat 13: what compose exposes


def test_only_beamops_own_authenticated_ports_are_published():
    publishing = {name for name, entry in COMPOSE["services"].items() if entry.get("ports")}
    assert publishing <= set(SERVICES), f"published, without beamops' authentication: {publishing - set(SERVICES)}"
    for name in INTERNAL_PARTS:
        assert "ports" not in COMPOSE["services"][name], name


@pytest.mark.parametrize("name", SERVICES)
def test_published_ports_bind_to_a_variable_defaulting_to_localhost(name):
    for port in COMPOSE["services"][name]["ports"]:
        assert isinstance(port, str), f"{name}: write ports as \"${{BEAMOPS_BIND:-127.0.0.1}}:HOST:CONTAINER\""
        match = PUBLISHED.fullmatch(port)
        assert match, f"{name}: {port!r} does not bind to ${{BEAMOPS_BIND:-127.0.0.1}}"
        assert match.group(1) == match.group(2)
    assert "BEAMOPS_BIND" in (ROOT / ".env.example").read_text()


def test_the_only_variable_with_a_default_is_the_bind_address():
    """Every ${...} in the file is ${NAME:?message} (required), but ${BEAMOPS_BIND:-127.0.0.1}."""
    references = re.findall(r"(?<!\$)\$\{[^}]*\}", TEXT)
    assert references
    for reference in references:
        assert reference == "${BEAMOPS_BIND:-127.0.0.1}" or REQUIRED.fullmatch(reference), reference
    assert not re.search(r"(?<!\$)\$[A-Za-z_]", TEXT), "use ${NAME:?message}, or $$NAME for the container's shell"


def test_no_secret_is_written_in_the_file():
    """A PASSWORD/SECRET/KEY/TOKEN variable is a required reference, or the path of a mounted file;
    a URL's password too; no literal credential anywhere."""
    for name, entry in COMPOSE["services"].items():
        environment = entry.get("environment") or {}
        assert isinstance(environment, dict), f"{name}: write environment as a mapping"
        mounts = [v.split(":")[1] for v in entry.get("volumes", [])]
        for key, value in environment.items():
            value = str(value)
            if SECRET_NAME.search(key):
                if value.startswith("/"):  # a file holding the secret (Dask TLS keys, the worker token)
                    assert any(value.startswith(m + "/") for m in mounts), f"{name}: {key} is on no volume"
                    continue
                variable(value)
            for userinfo in re.findall(r"://[^/@\s]+:([^/@\s]+)@", value):
                variable(userinfo)
    for literal in ("beamops-secret", "POSTGRES_PASSWORD: beamops", "beamops:beamops@"):
        assert literal not in TEXT
    generator = (ROOT / "scripts" / "compose_env.sh").read_text()
    for secret in ("POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"):
        assert f"${{{secret}:?" in TEXT
        assert re.search(rf"^{secret}=\S*\$\(random \d+\)$", generator, re.MULTILINE), (
            f"scripts/compose_env.sh does not make a random {secret}")
        assert re.search(rf"^{secret}=$", (ROOT / ".env.example").read_text(), re.MULTILINE)
    for ignore in (".gitignore", ".dockerignore"):  # never committed, never copied into an image
        assert ".env" in (ROOT / ignore).read_text().splitlines(), ignore


@pytest.mark.parametrize("name", INTERNAL_PARTS)
def test_internal_parts_are_only_on_an_internal_network(name):
    networks = networks_of(name)
    assert networks, name
    assert set(networks) <= internal_networks(), f"{name} is on {networks}, not only on an internal network"


def test_every_service_names_its_networks():
    """No service falls onto compose's default network (not internal, reachable from everywhere)."""
    for name in COMPOSE["services"]:
        assert "default" not in networks_of(name), f"{name}: list its networks (or network_mode: none)"
    for name in ("registry", "training", "inference", "data"):  # they reach the internal parts
        assert set(networks_of(name)) & internal_networks(), name
        assert set(networks_of(name)) - internal_networks(), f"{name}: its published port needs a front network"


def test_dask_runs_with_tls_and_its_own_certificates():
    from beamops.training.cluster_secrets import tls_files

    files = {k: str(v) for k, v in tls_files(Path(DASK_TLS)).items()}
    scheduler, worker = COMPOSE["services"]["dask-scheduler"], COMPOSE["services"]["dask-worker"]
    assert scheduler["command"][:2] == ["dask", "scheduler"]
    command = scheduler["command"]
    assert "--protocol" in command and command[command.index("--protocol") + 1] == "tls"
    assert worker["command"][:3] == ["dask", "worker", "tls://dask-scheduler:8786"]
    for entry, role in ((scheduler, "scheduler"), (worker, "worker")):
        assert "--no-dashboard" in entry["command"]  # no unauthenticated HTTP front
        environment = entry["environment"]
        assert str(environment["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"]).lower() == "true"
        assert environment["DASK_DISTRIBUTED__COMM__TLS__CA_FILE"] == files["ca"]
        assert environment[f"DASK_DISTRIBUTED__COMM__TLS__{role.upper()}__CERT"] == files[f"{role}_cert"]
        assert environment[f"DASK_DISTRIBUTED__COMM__TLS__{role.upper()}__KEY"] == files[f"{role}_key"]
        assert f"dask-tls:{DASK_TLS}:ro" in entry["volumes"]
        assert entry["depends_on"]["dask-init"] == {"condition": "service_completed_successfully"}

    # the training service connects as the client, with settings the service reads and accepts
    from beamops.training.settings import TrainingSettings

    training = COMPOSE["services"]["training"]
    environment = training["environment"]
    prefix = TrainingSettings.model_config["env_prefix"]
    settings = TrainingSettings(**{k[len(prefix):].lower(): v for k, v in environment.items()
                                   if k.startswith(prefix + "DASK_")})
    assert settings.dask_scheduler == "tls://dask-scheduler:8786"
    assert (str(settings.dask_tls_ca_file), str(settings.dask_tls_cert_file), str(settings.dask_tls_key_file)) == (
        files["ca"], files["client_cert"], files["client_key"])
    assert f"dask-tls:{DASK_TLS}:ro" in training["volumes"]
    assert training["depends_on"]["dask-init"] == {"condition": "service_completed_successfully"}

    # made by the one-shot job, into the volume they all mount
    init = COMPOSE["services"]["dask-init"]
    assert init["command"][:3] == ["python", "-m", "beamops.training.cluster_secrets"]
    assert f"--tls-dir={DASK_TLS}" in init["command"]
    assert f"dask-tls:{DASK_TLS}" in init["volumes"]
    assert init["build"] == scheduler["build"] == worker["build"] == training["build"]  # one dask version


def test_dask_workers_read_with_their_own_token_only_they_mount():
    from beamops.training.worker import WORKER_TOKEN_ENV

    worker = COMPOSE["services"]["dask-worker"]
    token_file = worker["environment"][WORKER_TOKEN_ENV]
    init = COMPOSE["services"]["dask-init"]
    assert f"--worker-token-file={token_file}" in init["command"]
    assert "--tokens-file=/var/lib/beamops/auth/tokens.json" in init["command"]
    volume = next(v.split(":")[0] for v in worker["volumes"] if token_file.startswith(v.split(":")[1] + "/"))
    assert f"{volume}:{token_file.rsplit('/', 1)[0]}:ro" in worker["volumes"]
    holders = {name for name, entry in COMPOSE["services"].items()
               if any(v.split(":")[0] == volume for v in entry.get("volumes", []))}
    assert holders == {"dask-init", "dask-worker"}
    for name, entry in COMPOSE["services"].items():  # no user token, no token at all, in the file
        for key in (entry.get("environment") or {}):
            assert not (key.endswith("_TOKEN") or key == "BEAMOPS_TRAINING_SERVICE_TOKEN"), f"{name}: {key}"


def test_long_running_parts_restart_and_one_shot_jobs_do_not():
    """Docker restarts a crashed service (as `make up`'s supervisor does); a one-shot job, which
    others wait for with service_completed_successfully or which is run by hand (a profile), must
    not be started again once it is done."""
    services = COMPOSE["services"]
    one_shot = {name for name, entry in services.items() if entry.get("profiles")}
    for entry in services.values():
        depends = entry.get("depends_on", {})
        if isinstance(depends, dict):
            one_shot |= {d for d, c in depends.items() if c.get("condition") == "service_completed_successfully"}
    assert one_shot == {"minio-buckets", "dask-init", "tokens"}
    for name, entry in services.items():
        if name in one_shot:
            assert entry.get("restart", "no") == "no", f"{name} is a one-shot job: it must not restart"
        else:
            assert entry.get("restart") in ("unless-stopped", "on-failure", "always"), \
                f"{name} runs for good: give it `restart: unless-stopped`"
