"""Typed service settings, read from environment variables and command-line flags.

Each service subclasses :class:`ServiceSettings` with its own prefix (``BEAMOPS_REGISTRY_``, ...)
and its own fields. Settings are read once, in ``main``, with :meth:`ServiceSettings.load`;
nothing reads the environment at import time.

Precedence: command-line flags, then ``<PREFIX><FIELD>`` environment variables, then defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self, Sequence

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class ServiceSettings(BaseSettings):
    """What every service needs. Subclasses set ``model_config`` with their ``env_prefix``."""

    model_config = SettingsConfigDict(env_prefix="BEAMOPS_", extra="forbid")

    service_name: ClassVar[str] = "service"

    host: str = Field("127.0.0.1", description="Address to listen on (0.0.0.0 in containers).")
    port: int = Field(0, description="gRPC port; 0 picks a free one.")
    metrics_port: int | None = Field(
        None, description="Prometheus /metrics port; unset disables, 0 picks a free one."
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address /metrics listens on. It has no authentication and names "
        "every model and deployment, so loopback unless set (a Prometheus on a private network: "
        "that network's address, or 0.0.0.0 behind a firewall).")
    var_dir: Path = Field(Path("var"), description="Folder for this service's state.")
    max_message_bytes: int = Field(64 * MiB, description="Largest gRPC message accepted or sent.")
    max_request_bytes: int = Field(
        8 * MiB, description="Largest request message accepted (at most max_message_bytes): what "
        "one caller can make the server hold per call.")
    max_concurrent_calls: int = Field(
        2000, description="Calls and streams served at once; more are RESOURCE_EXHAUSTED.")
    max_streams_per_connection: int = Field(
        100, description="Calls at once on one client connection (HTTP/2 MAX_CONCURRENT_STREAMS).")
    drain_s: float = Field(
        1.0, description="On SIGTERM, time spent NOT_SERVING but still answering, for load balancers."
    )
    grace_period_s: float = Field(10.0, description="Time in-flight calls get to finish on SIGTERM.")
    keepalive_time_s: float = Field(30.0, description="Interval of keepalive pings to clients.")
    keepalive_timeout_s: float = Field(10.0, description="Time to wait for a keepalive answer.")
    auth_enabled: bool = Field(True, description="Require a bearer token on every call.")
    tokens_file: Path | None = Field(
        None, description="Hashed tokens shared by all services (default <var_dir>/auth/tokens.json)."
    )
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate chain: serve TLS instead of plaintext (with tls_key_file).")
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA bundle: require client certificates signed by it (mutual TLS).")
    client_certificates_file: Path | None = Field(
        None, description="JSON object: verified client certificate subject (RFC 2253, e.g. "
        "\"CN=cms-hlt,O=CERN\") -> {\"name\": principal, \"role\": \"reader\"}: such a certificate "
        "stands for that principal when a caller sends no token (as grid sites map X.509 DNs); the "
        "inference gateway's Open Inference Protocol fronts use it (CMSSW SONIC sends no headers).")
    jwt_jwks_file: Path | None = Field(
        None, description="JWKS (JSON) of the identity provider: also accept its JWT bearer tokens.")
    jwt_jwks_url: str = Field(
        "", description="JWKS URL of the identity provider (https://; e.g. Keycloak's "
        ".../protocol/openid-connect/certs): fetched at start, refreshed every 5 minutes and after "
        "key rotation. Instead of jwt_jwks_file.")
    jwt_issuer: str = Field("", description="Required 'iss' of JWTs (the OpenID Connect issuer URL).")
    jwt_audience: str = Field("", description="Required 'aud' of JWTs (the client id beamops has there).")
    jwt_role_claim: str = Field(
        "beamops_role", description="Claim holding the role name(s); dots reach nested claims.")
    jwt_name_claim: str = Field("sub", description="Claim naming the principal (falls back to 'sub').")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_json: bool = Field(True, description="One JSON object per log line.")

    @property
    def tokens_path(self) -> Path:
        return self.tokens_file or self.var_dir / "auth" / "tokens.json"

    @classmethod
    def load(cls, argv: Sequence[str] | None = None) -> Self:
        """Read flags (``--port 50051``) over environment variables over defaults."""
        return cls(_cli_parse_args=list(argv) if argv is not None else [],
                   _cli_prog_name=f"beamops-{cls.service_name}",
                   _cli_kebab_case=True)
